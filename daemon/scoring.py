"""Scoring batches of windows: front ends in the pipeline process, detectors in workers.

``FeatureStage`` computes each distinct front end once per batch (on CUDA when present) and
hands one feature array per model to a scorer. Two scorers share one interface:

- ``InProcessScorer`` runs the ONNX Runtime sessions in the calling process (``dfd replay``:
  one file at a time, as fast as the sessions go).
- ``WorkerPool`` runs them in worker processes (``dfd serve``), each with its own sessions,
  warmed up before the pool reports ready. A worker that dies (killed, out of memory) is
  restarted; the batch it held is sent again once, and if that fails too it is reported lost.

``submit`` never blocks; ``collect`` waits up to a timeout for finished batches. A result is
``(batch_id, raw)`` with ``raw`` shaped (models, windows), or ``(batch_id, None)`` when lost.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import multiprocessing.connection
import os
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import structlog

from dfd.dsp.batcher import FrontendBank
from dfd.dsp.frontends import FrontendSpec

log = structlog.get_logger(__name__)

BatchResult = tuple[int, np.ndarray | None]
MAX_RESTART_FAILURES = 3  # replacements in a row that fail to start before a slot is given up


class FeatureStage:
    def __init__(self, specs: Sequence[FrontendSpec], device: str = "auto") -> None:
        self.specs = list(specs)
        self.bank = FrontendBank(device)

    def compute(self, windows: np.ndarray) -> list[np.ndarray]:
        features = self.bank.compute(windows, self.specs)
        host = {spec: tensor.cpu().numpy() for spec, tensor in features.items()}
        return [host[spec] for spec in self.specs]


class Scorer(Protocol):
    @property
    def free_slots(self) -> int: ...

    @property
    def in_flight(self) -> int: ...

    def submit(self, batch_id: int, features: list[np.ndarray]) -> None: ...

    def collect(self, timeout: float) -> list[BatchResult]: ...

    def close(self) -> None: ...


class InProcessScorer:
    """Sessions in this process; ``submit`` scores at once and ``collect`` hands the result."""

    def __init__(self, paths: Sequence[Path], threads: int = 0, device: str = "auto") -> None:
        from dfd.detectors.runtime import DetectorSession

        threads = threads or os.cpu_count() or 1
        self.sessions = [DetectorSession(p, threads=threads, device=device) for p in paths]
        self._done: list[BatchResult] = []

    @property
    def free_slots(self) -> int:
        return 1

    @property
    def in_flight(self) -> int:
        return 0

    def submit(self, batch_id: int, features: list[np.ndarray]) -> None:
        raw = np.stack([s.raw(f) for s, f in zip(self.sessions, features, strict=True)])
        self._done.append((batch_id, raw))

    def collect(self, timeout: float) -> list[BatchResult]:
        done, self._done = self._done, []
        return done

    def close(self) -> None:
        self.sessions.clear()


class WorkerError(RuntimeError):
    """A worker could not start (a bundle it could not load, a provider it could not use)."""


def _worker_main(
    connection: Connection, paths: list[str], threads: int, device: str
) -> None:  # pragma: no cover - runs in the child process (covered by the pool tests)
    try:
        from dfd.detectors.runtime import DetectorSession

        sessions = [DetectorSession(p, threads=threads, device=device) for p in paths]
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


@dataclasses.dataclass
class _Job:
    batch_id: int
    features: list[np.ndarray]
    attempts: int = 1


class _Worker:
    def __init__(
        self, context: Any, index: int, paths: list[str], threads: int, device: str
    ) -> None:
        self.index = index
        parent, child = multiprocessing.Pipe(duplex=True)
        self.connection: Connection = parent
        self.process: BaseProcess = context.Process(
            target=_worker_main,
            args=(child, paths, threads, device),
            name=f"dfd-detector-{index}",
            daemon=True,
        )
        self.process.start()
        child.close()
        self.job: _Job | None = None
        self.provider = ""
        self.ready = False

    def wait_ready(self, timeout: float) -> None:
        if not self.connection.poll(timeout):
            self.process.kill()
            raise WorkerError(f"detector worker {self.index} did not start within {timeout} s")
        self.read_ready()

    def read_ready(self) -> None:
        try:
            status, detail = self.connection.recv()
        except (EOFError, OSError) as error:
            raise WorkerError(f"detector worker {self.index} exited while starting") from error
        if status != "ready":
            self.process.join(5)
            raise WorkerError(f"detector worker {self.index}: {detail}")
        self.provider = detail[0]
        self.ready = True

    def stop(self) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self.connection.send(None)
        self.process.join(2)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(2)
        self.connection.close()


class WorkerPool:
    """``workers`` processes, each holding every model's session with ``threads`` threads."""

    def __init__(
        self,
        paths: Sequence[Path],
        workers: int = 0,
        threads: int = 1,
        device: str = "auto",
        start_timeout_s: float = 120.0,
    ) -> None:
        self._paths = [str(p) for p in paths]
        self._threads, self._device = threads, device
        self._start_timeout = start_timeout_s
        self._context = multiprocessing.get_context("spawn")
        count = workers or os.cpu_count() or 1
        self._workers: list[_Worker] = []
        self.restarts = 0
        self.lost_batches = 0
        self._retries: list[_Job] = []  # batches of dead workers, waiting for a free worker
        self._failures: dict[int, int] = {}  # slot -> replacements in a row that failed to start
        try:
            for index in range(count):
                self._workers.append(self._spawn(index))
            for worker in self._workers:
                worker.wait_ready(start_timeout_s)
        except BaseException:
            self.close()
            raise
        log.info(
            "detector workers ready",
            workers=count,
            threads=threads,
            provider=self._workers[0].provider,
        )

    def _spawn(self, index: int) -> _Worker:
        return _Worker(self._context, index, self._paths, self._threads, self._device)

    @property
    def pids(self) -> list[int]:
        return [w.process.pid or 0 for w in self._workers]

    @property
    def free_slots(self) -> int:
        idle = sum(1 for w in self._workers if w.ready and w.job is None)
        return max(0, idle - len(self._retries))

    @property
    def in_flight(self) -> int:
        return sum(1 for w in self._workers if w.job is not None) + len(self._retries)

    def submit(self, batch_id: int, features: list[np.ndarray]) -> None:
        self._send(_Job(batch_id, features))

    def _send(self, job: _Job) -> None:
        worker = next((w for w in self._workers if w.ready and w.job is None), None)
        if worker is None:
            raise RuntimeError("no free detector worker: check free_slots before submitting")
        self._send_to(worker, job)

    def _send_to(self, worker: _Worker, job: _Job) -> None:
        worker.job = job
        # A dead worker refuses the send; collect() then sees its sentinel and retries the job.
        with contextlib.suppress(BrokenPipeError, OSError):
            worker.connection.send((job.batch_id, job.features))

    def collect(self, timeout: float) -> list[BatchResult]:
        self._send_retries()
        busy = [w for w in self._workers if w.job is not None or not w.ready]
        if not busy:
            if timeout > 0:
                time.sleep(timeout)
            return []
        waitables: list[Any] = [w.connection for w in busy] + [w.process.sentinel for w in busy]
        ready = multiprocessing.connection.wait(waitables, timeout)
        results: list[BatchResult] = []
        for worker in busy:
            if not worker.ready and worker.connection in ready:
                self._started(worker, results)
            elif worker.connection in ready:
                try:
                    batch_id, raw = worker.connection.recv()
                except (EOFError, OSError):
                    self._replace(worker, results)
                    continue
                worker.job = None
                if isinstance(raw, str):
                    log.error("detector batch failed", batch=batch_id, error=raw)
                    self.lost_batches += 1
                    results.append((batch_id, None))
                else:
                    results.append((batch_id, raw))
            elif worker.process.sentinel in ready:
                self._replace(worker, results)
        self._send_retries()
        return results

    def _replace(self, dead: _Worker, results: list[BatchResult]) -> None:
        """Start a replacement for a dead worker without waiting for it (the others keep
        scoring); its batch is sent again once the replacement is ready, or reported lost if
        it had already been retried."""
        job = dead.job
        dead.process.join(1)
        log.error(
            "detector worker died; restarting", worker=dead.index, exitcode=dead.process.exitcode
        )
        dead.connection.close()
        slot = self._workers.index(dead)
        self._failures[slot] = self._failures.get(slot, 0) + (0 if dead.ready else 1)
        if self._failures[slot] > MAX_RESTART_FAILURES:
            log.error("detector worker keeps failing to start; slot left empty", worker=dead.index)
            del self._workers[slot]
        else:
            self._workers[slot] = self._spawn(dead.index)
            self.restarts += 1
        if job is None:
            return
        if job.attempts >= 2:
            self.lost_batches += 1
            results.append((job.batch_id, None))
            return
        job.attempts += 1
        self._retries.append(job)  # the next worker to be free takes it

    def _send_retries(self) -> None:
        while self._retries:
            worker = next((w for w in self._workers if w.ready and w.job is None), None)
            if worker is None:
                return
            self._send_to(worker, self._retries.pop(0))

    def _started(self, worker: _Worker, results: list[BatchResult]) -> None:
        try:
            worker.read_ready()
        except WorkerError as error:
            # It loaded the same bundles before; failing now means the host is in trouble.
            log.error("detector worker failed to restart", error=str(error))
            self._replace(worker, results)
            return
        self._failures[self._workers.index(worker)] = 0
        log.info("detector worker restarted", worker=worker.index, pid=worker.process.pid)

    def close(self) -> None:
        for worker in self._workers:
            worker.stop()
        self._workers.clear()
