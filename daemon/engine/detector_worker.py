"""The detector worker process: ONNX Runtime sessions that score batches of features.

``WorkerPool`` (``engine.scoring``) spawns one process per slot with ``worker_main`` as its
target. A spawned process imports only what its target's module imports, so this module and
everything below it stay free of torch: a worker needs ONNX Runtime and numpy, and starts in well
under a second with a fraction of the memory a torch import costs (every restart after a crash
pays that price again).

Each bundle is loaded by folder and by the sha256 of the model card the daemon verified, checked
signature included: a worker never loads a bundle that changed after the daemon checked it.

Protocol on the pipe: the worker sends ``("ready", providers)`` or ``("failed", reason)``;
then, for each ``(batch_id, features)`` it receives, ``(batch_id, raw)`` with ``raw`` shaped
(models, windows), or ``(batch_id, "error text")`` for a batch that failed; ``None`` ends it.
"""

from __future__ import annotations

from multiprocessing.connection import Connection

import numpy as np


def worker_main(
    connection: Connection, bundles: list[tuple[str, str | None]], threads: int, device: str
) -> None:  # pragma: no cover - runs in the child process (covered by the pool tests)
    """``bundles``: (folder, card sha256 or None) for each model, in the pool's order."""
    try:
        from dfd.detectors.bundle import load_bundle
        from dfd.detectors.runtime import DetectorSession

        sessions = [
            DetectorSession(
                load_bundle(folder, expected_card_sha256=digest), threads=threads, device=device
            )
            for folder, digest in bundles
        ]
        connection.send(("ready", [s.providers[0] for s in sessions]))
    except Exception as error:  # noqa: BLE001 - reported to the parent, which logs and refuses
        connection.send(("failed", f"{type(error).__name__}: {error}"))
        return
    while True:
        try:
            message = connection.recv()
        except (EOFError, KeyboardInterrupt):
            return
        if message is None:
            return
        batch_id, features = message
        try:
            raw = np.stack([s.raw(f) for s, f in zip(sessions, features, strict=True)])
            connection.send((batch_id, raw))
        except Exception as error:  # noqa: BLE001 - one bad batch must not end the worker
            connection.send((batch_id, f"{type(error).__name__}: {error}"))
