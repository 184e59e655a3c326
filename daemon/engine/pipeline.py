"""The pipeline: capture events in, decisions and events out. ``dfd serve`` and ``dfd replay``
drive this same object; only where the audio comes from and how fast differs.

::

    accept(AudioChunk)  -> CallStream (resample, frame, speech gate) -> queue of ready windows
    pump()              -> batches across calls -> FeatureStage -> Scorer (ONNX Runtime)
                        -> fused calibrated score -> CallStream decisions, in window order
                        -> typed events (engine.events): CallStarted, WindowScored,
                           AlertRaised, AlertCleared, CallEnded; BatchDispatched for metrics

The queue of ready windows is bounded per stream: when a stream has more than
``max_queued_windows_per_stream`` windows waiting (the host cannot keep up), its oldest waiting
window is shed and counted, so a backlog never grows without bound and the newest audio is
judged first. In a live call, windows without speech are not scored at all (``score_silence``
off); an audit scores them too and marks them.

A batch is the oldest waiting windows, up to ``batch_size``. With ``one_window_per_stream``
(``dfd serve``) it takes at most one window of each stream, the oldest waiting window of each
stream in the order they became ready: a batch lost with a detector worker then costs each party
of a call at most one window, and under overload every call gets its turn. ``dfd replay`` scores
one file and keeps taking many windows of the same stream per batch (speed matters there).
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import structlog

from dfd.daemon.engine.callstream import CallStream, PendingWindow, WindowFate, WindowOutcome
from dfd.daemon.engine.decisions import DecisionPolicy
from dfd.daemon.engine.events import (
    AlertCleared,
    AlertRaised,
    AudioChunk,
    BatchDispatched,
    CallEnded,
    CallStarted,
    CaptureEvent,
    EventSink,
    StreamEnded,
    WindowScored,
)
from dfd.daemon.engine.models import ModelSet
from dfd.daemon.engine.scoring import FeatureStage, Scorer
from dfd.daemon.engine.speech import SpeechGate
from dfd.daemon.settings import PipelineSettings

log = structlog.get_logger(__name__)


@dataclasses.dataclass
class PipelineCounters:
    streams_started: int = 0
    streams_ended: int = 0
    windows: int = 0  # windows cut
    windows_scored: int = 0
    windows_unscored: int = 0  # no speech in a live call
    windows_shed: int = 0  # overload: dropped before scoring
    windows_lost: int = 0  # in a batch whose worker failed twice
    batches: int = 0
    alerts_raised: int = 0
    alerts_cleared: int = 0
    chunks_rejected: int = 0


class Pipeline:
    def __init__(
        self,
        models: ModelSet,
        scorer: Scorer,
        events: EventSink,
        settings: PipelineSettings | None = None,
        speech: SpeechGate | None = None,
        decision: DecisionPolicy | None = None,
        frontend_device: str = "auto",
        clock: Callable[[], float] = time.monotonic,
        one_window_per_stream: bool = False,
        shed_windows: bool = True,
    ) -> None:
        self.models = models
        self.scorer = scorer
        self.events = events
        self.settings = settings or PipelineSettings()
        self.speech = speech or SpeechGate()
        # The [decision] settings as given; the policy in force resolves raise_at from the models.
        self.decision_settings = decision or DecisionPolicy()
        self.decision = self.decision_settings.with_raise_at(models.raise_at)
        self.features = FeatureStage(models.frontend_inputs, frontend_device)
        self.clock = clock
        self.one_window_per_stream = one_window_per_stream
        # Live calls shed their oldest waiting window past max_queued_windows_per_stream; an
        # audit (dfd replay) never does: its feeder waits for the scorer instead.
        self.shed_windows = shed_windows
        self.counters = PipelineCounters()
        self._streams: dict[tuple[str, int], CallStream] = {}
        self._ending: list[CallStream] = []
        self._queue: collections.deque[PendingWindow] = collections.deque()
        self._batches: dict[int, list[PendingWindow]] = {}
        self._next_batch = 0

    def swap_models(
        self, models: ModelSet, scorer: Scorer, decision: DecisionPolicy | None = None
    ) -> None:
        """Use new models (and ``[decision]`` settings, when given) from the next batch on;
        nothing may be in flight on the old scorer. Open streams keep their framing; their
        threshold and decision policy follow (``DecisionState.retune``)."""
        if self._batches:
            raise RuntimeError("swap_models with batches still being scored")
        policy = (decision or self.decision_settings).with_raise_at(models.raise_at)
        self.models, self.scorer = models, scorer
        self.decision_settings, self.decision = decision or self.decision_settings, policy
        self.features = FeatureStage(models.frontend_inputs, str(self.features.bank.device))
        for stream in [*self._streams.values(), *self._ending]:
            stream.threshold = models.threshold
            stream.decision.retune(policy)

    # -- intake -----------------------------------------------------------------------------

    @property
    def active_streams(self) -> int:
        return len(self._streams)

    @property
    def queued_windows(self) -> int:
        return len(self._queue)

    @property
    def idle(self) -> bool:
        """Nothing queued, nothing being scored, no ended stream still settling."""
        return not self._queue and not self._batches and not self._ending

    def accept(self, event: CaptureEvent, source: str = "", arrived: float | None = None) -> None:
        arrived = self.clock() if arrived is None else arrived
        if isinstance(event, AudioChunk):
            self._accept_chunk(event, source, arrived)
        elif isinstance(event, StreamEnded):
            self._end_stream((event.call_id, event.channel), event.reason, arrived)

    def _accept_chunk(self, chunk: AudioChunk, source: str, arrived: float) -> None:
        key = (chunk.call_id, chunk.channel)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._start_stream(chunk, source)
        elif chunk.sample_rate != stream.source_rate:
            self.counters.chunks_rejected += 1
            self._log(stream).warning(
                "chunk rejected: sample rate changed mid-stream",
                expected=stream.source_rate,
                got=chunk.sample_rate,
            )
            return
        self._enqueue(stream.push(chunk.samples, arrived))

    def _start_stream(self, chunk: AudioChunk, source: str) -> CallStream:
        stream = CallStream(
            chunk.call_id,
            chunk.channel,
            source,
            chunk.sample_rate,
            self.models.geometry,
            self.speech,
            self.decision,
            self.models.threshold,
        )
        self._streams[(chunk.call_id, chunk.channel)] = stream
        self.counters.streams_started += 1
        self._log(stream).debug("call started", source=source)
        self.events.emit(CallStarted(**self._about(stream), source=source))
        return stream

    def _end_stream(self, key: tuple[str, int], reason: str, arrived: float) -> None:
        stream = self._streams.pop(key, None)
        if stream is None:
            return
        self._enqueue(stream.finish(reason, arrived, self.settings.min_stream_s))
        self._ending.append(stream)
        self._settle_ended()

    def end_all(self, reason: str) -> None:
        """End every open stream (the daemon is stopping)."""
        now = self.clock()
        for key in list(self._streams):
            self._end_stream(key, reason, now)

    def _enqueue(self, windows: list[PendingWindow]) -> None:
        for window in windows:
            self.counters.windows += 1
            stream = window.stream
            if not window.speech and not self.settings.score_silence:
                self.counters.windows_unscored += 1
                self._apply(stream.resolve(window, None, None, "no-speech"))
                continue
            self._queue.append(window)
            stream.window_queued()
            if self.shed_windows and stream.queued > self.settings.max_queued_windows_per_stream:
                self._shed_oldest(stream)
            elif self.shed_windows and len(self._queue) > self.settings.max_queued_windows:
                self._shed_oldest(self._least_established())

    def _least_established(self) -> CallStream:
        """The queued stream with the least audio so far (the newest, under a flood)."""
        return min((w.stream for w in self._queue), key=lambda s: s.samples_received)

    def _shed_oldest(self, stream: CallStream) -> None:
        oldest = next(w for w in self._queue if w.stream is stream)
        self._queue.remove(oldest)
        self.counters.windows_shed += 1
        self._apply(stream.resolve(oldest, None, None, "shed"))

    # -- scoring ----------------------------------------------------------------------------

    def pump(self, timeout: float = 0.0, flush: bool = False) -> None:
        """Dispatch what is ready, then take finished batches (waiting up to ``timeout``)."""
        dispatched = self._dispatch(flush)
        for batch_id, raw in self.scorer.collect(0.0 if dispatched else timeout):
            self._finish_batch(batch_id, raw)
        self._settle_ended()

    def drain(self) -> None:
        """Score everything queued and wait for every batch and ended stream to settle."""
        while not self.idle:
            self.pump(timeout=0.05, flush=True)

    def _dispatch(self, flush: bool) -> bool:
        dispatched = False
        while self._queue and self.scorer.free_slots > 0:
            batch = self._take_batch(flush)
            if not batch:
                break
            for window in batch:
                window.stream.window_dispatched()
            features = self.features.compute(np.stack([w.samples for w in batch]))
            batch_id, self._next_batch = self._next_batch, self._next_batch + 1
            self._batches[batch_id] = batch
            self.scorer.submit(batch_id, features)
            self.counters.batches += 1
            self.events.emit(BatchDispatched(len(batch)))
            dispatched = True
        return dispatched

    def _take_batch(self, flush: bool) -> list[PendingWindow]:
        """The next batch, taken off the queue; empty while it should wait to fill up."""
        size = self.settings.batch_size
        if self.one_window_per_stream:
            batch: list[PendingWindow] = []
            streams: set[CallStream] = set()
            for window in self._queue:
                if window.stream not in streams:
                    batch.append(window)
                    streams.add(window.stream)
                    if len(batch) == size:
                        break
        else:
            batch = list(itertools.islice(self._queue, size))
        waited = self.clock() - self._queue[0].ready_at
        if not flush and len(batch) < size and waited < self.settings.max_batch_delay_s:
            return []
        if len(batch) == len(self._queue) or not self.one_window_per_stream:
            for _ in batch:
                self._queue.popleft()
        else:
            taken = set(batch)
            self._queue = collections.deque(w for w in self._queue if w not in taken)
        return batch

    def _finish_batch(self, batch_id: int, raw: np.ndarray | None) -> None:
        batch = self._batches.pop(batch_id)
        if raw is None:
            self.counters.windows_lost += len(batch)
            scores: list[float | None] = [None] * len(batch)
            raws: list[float | None] = [None] * len(batch)
        else:
            fused, fused_raw = self.models.fuse(raw)
            scores, raws = [float(s) for s in fused], [float(r) for r in fused_raw]
            self.counters.windows_scored += len(batch)
        for window, score, window_raw in zip(batch, scores, raws, strict=True):
            fate: WindowFate = "lost" if raw is None else "scored"
            self._apply(window.stream.resolve(window, score, window_raw, fate))

    # -- decisions and events ---------------------------------------------------------------

    def _apply(self, outcomes: list[WindowOutcome]) -> None:
        for outcome in outcomes:
            window, stream = outcome.window, outcome.window.stream
            span = {
                **self._about(stream),
                "start": stream.seconds(window.start),
                "end": stream.seconds(window.end),
                "score": outcome.score,
            }
            scored_latency = None if outcome.score is None else self.clock() - window.ready_at
            self.events.emit(
                WindowScored(
                    **span, raw=outcome.raw, speech=window.speech, latency_s=scored_latency
                )
            )
            if outcome.transition is None:
                continue
            # outcome.basis, not the state now: later windows of the same run are applied already
            if outcome.transition == "raised":
                self.counters.alerts_raised += 1
                latency = self.clock() - window.ready_at
                self.events.emit(AlertRaised(**span, basis=outcome.basis, latency_s=latency))
                self._log(stream).info(
                    "alert raised", start=span["start"], end=span["end"], score=outcome.score
                )
            else:
                self.counters.alerts_cleared += 1
                self.events.emit(AlertCleared(**span, basis=outcome.basis))
                self._log(stream).info("alert cleared", start=span["start"], end=span["end"])

    def _settle_ended(self) -> None:
        still_ending = []
        for stream in self._ending:
            if not stream.done:
                still_ending.append(stream)
                continue
            decision, fates = stream.decision, stream.window_fates
            self.counters.streams_ended += 1
            self.events.emit(
                CallEnded(
                    **self._about(stream),
                    reason=stream.end_reason,
                    duration=stream.duration_s,
                    verdict=decision.verdict,
                    speech_s=round(decision.speech_s, 3),
                    windows=decision.windows,
                    windows_scored=fates["scored"],
                    windows_no_speech=fates["no-speech"],
                    windows_shed=fates["shed"],
                    windows_lost=fates["lost"],
                    speech_windows=decision.speech_windows,
                    max_score=decision.max_score,
                    alerts=decision.alerts,
                )
            )
            self._log(stream).debug(
                "call ended", verdict=decision.verdict, reason=stream.end_reason
            )
        self._ending = still_ending

    def _log(self, stream: CallStream) -> structlog.typing.FilteringBoundLogger:
        """The logger for lines about ``stream``: its call, and the models judging it."""
        identity = self.models.identity
        bound: structlog.typing.FilteringBoundLogger = log.bind(
            call_id=stream.call_id,
            channel=stream.channel,
            model=identity["name"],
            model_version=identity["version"],
        )
        return bound

    def _about(self, stream: CallStream) -> dict[str, Any]:
        """The fields every event about ``stream`` carries."""
        return {
            "call_id": stream.call_id,
            "channel": stream.channel,
            "threshold": stream.threshold,
            "model": self.models.identity,
        }
