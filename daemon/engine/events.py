"""What goes into the engine and what it tells the world: typed events.

In: ``AudioChunk`` (the next samples of one party of one call) and ``StreamEnded``, from a
capture source (``service.capture``) or a file being audited (``audit.replay``).

Out: one typed event per thing that happened.

The pipeline emits them to one ``EventSink``. Call events (a call started, a window scored, an
alert raised or cleared, a call ended) have a ``topic`` and a ``body()``: the JSON object the bus
publishes on that topic (docs/alerts.md, docs/alerts.schema.json). ``BatchDispatched`` is for
observers only (metrics) and is never published. The audit builds its report from these objects,
the daemon's metrics observe them; nobody reads a dict back by its topic string.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol

import numpy as np

# -- in -----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AudioChunk:
    call_id: str
    channel: int
    samples: np.ndarray  # (n,) float32 in [-1, 1]
    sample_rate: int


@dataclasses.dataclass(frozen=True)
class StreamEnded:
    call_id: str
    channel: int
    # "bye", "timeout", "end-message", "end-of-file", "source-stopped", "daemon-stopping",
    # "ssrc-change"
    reason: str


CaptureEvent = AudioChunk | StreamEnded

STOPPED = "source-stopped"  # the source was stopped on its own (a test, a replay's end)
DAEMON_STOPPING = "daemon-stopping"  # the daemon is shutting down (SIGTERM)


# -- out ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, kw_only=True)
class CallEvent:
    """Something that happened to one party (``channel``) of one call, judged by ``model`` at
    ``threshold`` (a window's calibrated score at or above it counts towards an alert)."""

    topic: ClassVar[str]
    call_id: str
    channel: int
    threshold: float
    model: Mapping[str, str]

    # The common part of every body; ``start``, ``end`` and ``score`` are null where they mean
    # nothing (a call that has only started).
    def body(self) -> dict[str, Any]:
        start, end, score = self._span()
        return {
            "call_id": self.call_id,
            "channel": self.channel,
            "start": start,
            "end": end,
            "score": score,
            "threshold": self.threshold,
            "model": dict(self.model),
            **self._fields(),
        }

    def _span(self) -> tuple[float | None, float | None, float | None]:
        return None, None, None

    def _fields(self) -> dict[str, Any]:
        return {}


@dataclasses.dataclass(frozen=True, kw_only=True)
class CallStarted(CallEvent):
    topic: ClassVar[str] = "call.started"
    source: str

    def _fields(self) -> dict[str, Any]:
        return {"source": self.source}


@dataclasses.dataclass(frozen=True, kw_only=True)
class WindowEvent(CallEvent):
    """About one window: seconds from the start of the stream, and its fused calibrated score
    (``None``: not scored)."""

    start: float
    end: float
    score: float | None

    def _span(self) -> tuple[float | None, float | None, float | None]:
        return self.start, self.end, self.score


@dataclasses.dataclass(frozen=True, kw_only=True)
class WindowScored(WindowEvent):
    """A window applied to its call's decision, scored or not (no speech in a live call, shed
    under overload, lost with a worker). ``latency_s``: from its last sample arriving to now,
    for scored windows; never published."""

    topic: ClassVar[str] = "score"
    raw: float | None
    speech: bool
    latency_s: float | None = None

    def _fields(self) -> dict[str, Any]:
        return {"raw": self.raw, "speech": self.speech}


@dataclasses.dataclass(frozen=True, kw_only=True)
class AlertChanged(WindowEvent):
    """An alert raised or cleared on this window. ``basis``: the decision state it rests on
    (``DecisionState.basis``: the rule, speech seconds, evidence and the levels)."""

    basis: Mapping[str, Any]

    def _fields(self) -> dict[str, Any]:
        return dict(self.basis)


@dataclasses.dataclass(frozen=True, kw_only=True)
class AlertRaised(AlertChanged):
    """``latency_s``: from the window's last sample arriving to the alert; never published."""

    topic: ClassVar[str] = "alert.raised"
    latency_s: float


@dataclasses.dataclass(frozen=True, kw_only=True)
class AlertCleared(AlertChanged):
    topic: ClassVar[str] = "alert.cleared"


@dataclasses.dataclass(frozen=True, kw_only=True)
class CallEnded(CallEvent):
    """One party's audio ended and every window of it was applied. The window counts add up:
    ``windows`` cut = scored + no speech + shed + lost."""

    topic: ClassVar[str] = "call.ended"
    reason: str
    duration: float
    verdict: str
    speech_s: float
    windows: int
    windows_scored: int
    windows_no_speech: int
    windows_shed: int
    windows_lost: int
    speech_windows: int
    max_score: float | None
    alerts: int

    def _span(self) -> tuple[float | None, float | None, float | None]:
        return 0.0, self.duration, self.max_score

    def _fields(self) -> dict[str, Any]:
        fields = dataclasses.asdict(self)
        for key in ("call_id", "channel", "threshold", "model"):
            del fields[key]
        return fields


@dataclasses.dataclass(frozen=True)
class BatchDispatched:
    """A batch of ``windows`` windows sent to the detector workers (for metrics)."""

    windows: int


EngineEvent = CallEvent | BatchDispatched


class EventSink(Protocol):
    def emit(self, event: EngineEvent) -> None: ...


class EventFanout:
    """Hands each event to several sinks in turn (the daemon: metrics, then the bus)."""

    def __init__(self, sinks: Sequence[EventSink]) -> None:
        self.sinks = tuple(sinks)

    def emit(self, event: EngineEvent) -> None:
        for sink in self.sinks:
            sink.emit(event)
