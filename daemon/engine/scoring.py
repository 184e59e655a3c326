"""Scoring batches of windows: front ends in the pipeline process, detectors in workers.

``FeatureStage`` computes each distinct front end once per batch (on CUDA when present) and
hands one feature array per model to a scorer. Two scorers share one interface:

- ``InProcessScorer`` runs the ONNX Runtime sessions in the calling process (``dfd replay``:
  one file at a time, as fast as the sessions go).
- ``WorkerPool`` runs them in worker processes (``dfd serve``), each with its own sessions,
  warmed up before the pool reports ready. A worker that dies (killed, out of memory), or that
  holds a batch longer than ``batch_timeout_s`` (hung, stopped) and is killed for it, is
  restarted; the batch it held is sent again once, and if that fails too it is reported lost.
  A worker that dies while idle is replaced before a batch is sent to it.

``submit`` never blocks; ``collect`` waits up to a timeout for finished batches. A result is
``(batch_id, raw)`` with ``raw`` shaped (models, windows), or ``(batch_id, None)`` when lost.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import multiprocessing.connection
import os
import queue
import threading
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import structlog

from dfd.daemon.engine.detector_worker import worker_main
from dfd.dsp.extract import remove_mean
from dfd.dsp.frontends import FrontendSpec

if TYPE_CHECKING:
    from dfd.dsp.batcher import FrontendBank

log = structlog.get_logger(__name__)

BatchResult = tuple[int, np.ndarray | None]
MAX_RESTART_FAILURES = 3  # replacements in a row that fail to start before a slot is given up


class FeatureStage:
    """Each model's features for a batch of windows: the model's own length of each window (its
    last samples, see ``ModelSet.frontend_inputs``), each distinct front end computed once."""

    def __init__(self, inputs: Sequence[tuple[FrontendSpec, int]], device: str = "auto") -> None:
        from dfd.dsp.batcher import FrontendBank  # torch: here, not in the workers' imports

        self.inputs = list(inputs)
        self.bank: FrontendBank = FrontendBank(device)

    def compute(self, windows: np.ndarray) -> list[np.ndarray]:
        features: dict[tuple[FrontendSpec, int], np.ndarray] = {}
        for samples in dict.fromkeys(length for _, length in self.inputs):
            part = remove_mean(windows[:, -samples:])
            specs = [spec for spec, length in self.inputs if length == samples]
            for spec, tensor in self.bank.compute(part, specs).items():
                features[(spec, samples)] = tensor.cpu().numpy()
        return [features[key] for key in self.inputs]


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


@dataclasses.dataclass
class _Job:
    batch_id: int
    features: list[np.ndarray]
    attempts: int = 1


class _Worker:
    def __init__(
        self,
        context: Any,
        index: int,
        bundles: list[tuple[str, str | None]],
        threads: int,
        device: str,
    ) -> None:
        self.index = index
        parent, child = multiprocessing.Pipe(duplex=True)
        self.connection: Connection = parent
        self.process: BaseProcess = context.Process(
            target=worker_main,
            args=(child, bundles, threads, device),
            name=f"dfd-detector-{index}",
            daemon=True,
        )
        self.started_at = time.monotonic()
        self.process.start()
        child.close()
        self.job: _Job | None = None
        self.sent_at = 0.0  # when the job went out (monotonic)
        self.provider = ""
        self.ready = False
        # A batch is megabytes, more than a socket buffer holds: sending it waits for the worker
        # to read. A thread sends, so that a worker that hangs (stopped, stuck) never blocks the
        # pool's caller; killing the worker makes a send stuck on it fail.
        self._outbox: queue.SimpleQueue[tuple[int, list[np.ndarray]] | None] = queue.SimpleQueue()
        self._sender = threading.Thread(
            target=self._send_loop, name=f"dfd-detector-{index}-send", daemon=True
        )
        self._sender.start()

    def send(self, job: _Job) -> None:
        self.job, self.sent_at = job, time.monotonic()
        self._outbox.put((job.batch_id, job.features))

    def _send_loop(self) -> None:
        while True:
            message = self._outbox.get()
            try:
                self.connection.send(message)
            except (BrokenPipeError, OSError):
                return  # it died: the pool sees its sentinel and sends the batch again
            if message is None:
                return

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

    @property
    def idle(self) -> bool:
        return self.ready and self.job is None

    def stop(self) -> None:
        """Ask it to exit (after the batch it holds), kill it if it does not, and close."""
        self._outbox.put(None)
        self.process.join(2)
        self.kill()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(2)
        self._outbox.put(None)  # the sender exits, its send failing if the worker was gone
        self._sender.join(2)
        self.connection.close()


class WorkerPool:
    """``workers`` processes, each holding every model's session with ``threads`` threads.

    ``batch_timeout_s``: a worker that has not answered a batch in this long is killed and
    restarted, and the batch handled as if the worker had died with it (sent again once, then
    lost). ``start_timeout_s`` bounds a worker's start, at the pool's start and after a restart.
    ``card_sha256s``: each bundle's card as the caller verified it (``Bundle.card_sha256``); a
    worker refuses to load a bundle whose card has changed since.
    """

    def __init__(
        self,
        paths: Sequence[Path],
        workers: int = 0,
        threads: int = 1,
        device: str = "auto",
        start_timeout_s: float = 120.0,
        batch_timeout_s: float = 10.0,
        card_sha256s: Sequence[str] | None = None,
    ) -> None:
        if batch_timeout_s <= 0 or start_timeout_s <= 0:
            raise ValueError("batch_timeout_s and start_timeout_s must be positive")
        digests = list(card_sha256s) if card_sha256s is not None else [None] * len(paths)
        if len(digests) != len(paths):
            raise ValueError("give one card sha256 per bundle")
        self._bundles = [(str(p), d) for p, d in zip(paths, digests, strict=True)]
        self._threads, self._device = threads, device
        self._start_timeout = start_timeout_s
        self._batch_timeout = batch_timeout_s
        self._context = multiprocessing.get_context("spawn")
        count = workers or os.cpu_count() or 1
        self._workers: list[_Worker] = []
        self.restarts = 0
        self.lost_batches = 0
        self.retried_batches = 0  # sent again after their worker died or timed out
        self.timeouts = 0  # batches not answered within batch_timeout_s
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
            pids=self.pids,
            batch_timeout_s=batch_timeout_s,
        )

    def _spawn(self, index: int) -> _Worker:
        return _Worker(self._context, index, self._bundles, self._threads, self._device)

    @property
    def pids(self) -> list[int]:
        return [w.process.pid or 0 for w in self._workers]

    @property
    def free_slots(self) -> int:
        idle = sum(1 for w in self._workers if w.idle)
        return max(0, idle - len(self._retries))

    @property
    def in_flight(self) -> int:
        return sum(1 for w in self._workers if w.job is not None) + len(self._retries)

    def submit(self, batch_id: int, features: list[np.ndarray]) -> None:
        if not any(w.idle for w in self._workers):
            raise RuntimeError("no free detector worker: check free_slots before submitting")
        worker = self._live_idle_worker()
        if worker is None:  # every idle worker had died: the batch waits for a replacement
            self._retries.append(_Job(batch_id, features))
        else:
            self._send_to(worker, _Job(batch_id, features))

    def _live_idle_worker(self) -> _Worker | None:
        """The first idle worker that is alive; idle workers found dead on the way (killed
        between two batches) are replaced, with nothing to send again."""
        for worker in list(self._workers):
            if not worker.idle:
                continue
            if worker.process.is_alive():
                return worker
            self._replace(worker, "died while idle")
        return None

    def _send_to(self, worker: _Worker, job: _Job) -> None:
        # A dead worker refuses the send; collect() then sees its sentinel and retries the job.
        worker.send(job)

    def collect(self, timeout: float) -> list[BatchResult]:
        """Finished (or lost) batches, waiting up to ``timeout`` for the first. Every worker is
        watched, idle ones included: one that dies is replaced at once, one that holds a batch
        past ``batch_timeout_s`` (or a replacement that does not start) is killed and replaced."""
        results: list[BatchResult] = []
        self._send_retries(results)
        if not self._workers:
            if timeout > 0:
                time.sleep(timeout)
            return results
        now = time.monotonic()
        wait_s = max(0.0, min(timeout, self._next_deadline() - now))
        waitables: list[Any] = [w.connection for w in self._workers]
        waitables += [w.process.sentinel for w in self._workers]
        ready = multiprocessing.connection.wait(waitables, wait_s)
        for worker in list(self._workers):
            if worker.connection in ready:
                if worker.ready:
                    self._receive(worker, results)
                else:
                    self._started(worker)
            elif worker.process.sentinel in ready:
                self._lose(self._replace(worker, "died"), results)
        self._expire(results)
        self._send_retries(results)
        return results

    def _receive(self, worker: _Worker, results: list[BatchResult]) -> None:
        try:
            batch_id, raw = worker.connection.recv()
        except (EOFError, OSError):
            self._lose(self._replace(worker, "died"), results)
            return
        job, worker.job = worker.job, None
        if job is None or job.batch_id != batch_id:  # not the batch it holds: cannot happen
            log.error("detector worker answered a batch it does not hold", batch=batch_id)
            self._lose(job, results)
            return
        if isinstance(raw, str):
            log.error("detector batch failed", batch=batch_id, error=raw)
            self._lose(job, results)
        else:
            results.append((batch_id, raw))

    def _next_deadline(self) -> float:
        deadlines = [w.sent_at + self._batch_timeout for w in self._workers if w.job is not None]
        deadlines += [w.started_at + self._start_timeout for w in self._workers if not w.ready]
        return min(deadlines, default=math.inf)

    def _expire(self, results: list[BatchResult]) -> None:
        now = time.monotonic()
        for worker in list(self._workers):
            if worker.job is not None and now - worker.sent_at >= self._batch_timeout:
                self.timeouts += 1
                self._lose(self._replace(worker, "batch timed out"), results)
            elif not worker.ready and now - worker.started_at >= self._start_timeout:
                self._replace(worker, "did not start in time")

    def _replace(self, dead: _Worker, why: str) -> _Job | None:
        """Kill ``dead`` if it still runs and start a replacement without waiting for it (the
        others keep scoring). The batch it held is queued to be sent again, once, to the next
        free worker; returned when it had already been retried (it is then lost)."""
        job, dead.job = dead.job, None
        dead.kill()
        log.error(
            "detector worker failed; restarting",
            worker=dead.index,
            pid=dead.process.pid,
            why=why,
            exitcode=dead.process.exitcode,
            batch=None if job is None else job.batch_id,
            attempt=None if job is None else job.attempts,
        )
        slot = self._workers.index(dead)
        self._failures[slot] = self._failures.get(slot, 0) + (0 if dead.ready else 1)
        if self._failures[slot] > MAX_RESTART_FAILURES:
            log.error("detector worker keeps failing to start; slot left empty", worker=dead.index)
            del self._workers[slot]
        else:
            self._workers[slot] = self._spawn(dead.index)
            self.restarts += 1
        if job is None or job.attempts >= 2:
            return job
        job.attempts += 1
        self.retried_batches += 1
        self._retries.append(job)  # the next worker to be free takes it
        return None

    def _lose(self, job: _Job | None, results: list[BatchResult]) -> None:
        if job is not None:
            self.lost_batches += 1
            results.append((job.batch_id, None))

    def _send_retries(self, results: list[BatchResult]) -> None:
        while self._retries:
            worker = self._live_idle_worker()
            if worker is None:
                if not self._workers:  # every slot given up: nothing will ever take them
                    for job in self._retries:
                        self._lose(job, results)
                    self._retries.clear()
                return
            self._send_to(worker, self._retries.pop(0))

    def _started(self, worker: _Worker) -> None:
        try:
            worker.read_ready()
        except WorkerError as error:
            # It loaded the same bundles before; failing now means the host is in trouble.
            log.error("detector worker failed to restart", error=str(error))
            self._replace(worker, "failed to start")
            return
        self._failures[self._workers.index(worker)] = 0
        log.info("detector worker restarted", worker=worker.index, pid=worker.process.pid)

    def close(self) -> None:
        for worker in self._workers:
            worker.stop()
        self._workers.clear()
