"""The receiving end of the alert bus: a SUB iterator, sequence-gap tracking, terminal lines.

``subscribe`` connects to a daemon's PUB endpoint and yields each event as a dict. ZeroMQ drops
messages to a subscriber that does not keep up, and a subscriber connecting or reconnecting misses
what was sent meanwhile, so ``SequenceTracker`` compares each event's ``seq`` with the previous
one and reports the discontinuities. The seq counter spans all topics: a subscriber filtered to
some topics sees jumps for the events it filtered out, so only a subscription to every topic can
tell lost events from filtered ones.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeGuard

import structlog
import zmq

from dfd.core.text import printable
from dfd.daemon.service.keys import CurveClient

log = structlog.get_logger(__name__)

_POLL_SLICE_S = 0.1  # the longest a blocking wait lasts, so Ctrl-C is seen promptly


def subscribe(
    endpoint: str,
    topics: Sequence[str] = ("",),
    *,
    timeout_s: float | None = None,
    max_events: int | None = None,
    curve: CurveClient | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield the events published on ``endpoint`` whose topic starts with one of ``topics``.

    ``""`` subscribes to everything, ``"alert"`` to ``alert.raised`` and ``alert.cleared``.
    Stops after ``max_events`` events, or once no event has arrived for ``timeout_s`` seconds
    (None: wait forever). Messages that are not ``[topic, JSON object]`` are logged and skipped.
    Events sent before the connection is up are not received (ZeroMQ's slow joiner); catch up
    from the alert journal for alerts. Closing the iterator (``break``, garbage collection)
    closes the socket.

    ``curve``: the keys for a daemon whose bus is a CURVE server (``service.keys``). With a
    wrong key, or a client key the daemon does not list, nothing arrives and nothing is raised
    (ZeroMQ turns the connection away in its handshake and retries).
    """
    if timeout_s is not None and timeout_s < 0:
        raise ValueError(f"timeout_s must be >= 0, got {timeout_s}")
    if max_events is not None and max_events < 0:
        raise ValueError(f"max_events must be >= 0, got {max_events}")
    return _receive(endpoint, tuple(topics), timeout_s, max_events, curve)


def _receive(
    endpoint: str,
    topics: tuple[str, ...],
    timeout_s: float | None,
    max_events: int | None,
    curve: CurveClient | None,
) -> Iterator[dict[str, Any]]:
    context: zmq.Context[Any] = zmq.Context()
    socket = context.socket(zmq.SUB)
    try:
        socket.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            curve.secure(socket)
        socket.connect(endpoint)
        for topic in topics:
            socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
        poller = zmq.Poller()
        poller.register(socket, zmq.POLLIN)
        received = 0
        last_event = time.monotonic()
        while max_events is None or received < max_events:
            wait_s = _POLL_SLICE_S
            if timeout_s is not None:
                left = timeout_s - (time.monotonic() - last_event)
                if left <= 0:
                    return
                wait_s = min(wait_s, left)
            if not poller.poll(max(1, math.ceil(wait_s * 1000))):
                continue
            frames = socket.recv_multipart(zmq.NOBLOCK)
            last_event = time.monotonic()
            event = _parse(frames)
            if event is not None:
                received += 1
                yield event
    finally:
        socket.close(linger=0)
        context.term()


def _parse(frames: list[bytes]) -> dict[str, Any] | None:
    if len(frames) != 2:
        log.warning("skipping a message that is not [topic, json]", frames=len(frames))
        return None
    try:
        event = json.loads(frames[1])
    except ValueError as error:
        log.warning("skipping a message whose body is not JSON", error=str(error))
        return None
    if not isinstance(event, dict):
        log.warning("skipping a message whose body is not a JSON object")
        return None
    return event


@dataclasses.dataclass(frozen=True)
class Discontinuity:
    """``received`` came where ``expected`` was due: events were lost, or the publisher restarted
    (seq went back: a restarted daemon numbers on from its journal, see ``service.bus``)."""

    expected: int
    received: int

    @property
    def restarted(self) -> bool:
        return self.received < self.expected

    @property
    def missing(self) -> int:
        return max(0, self.received - self.expected)

    def describe(self) -> str:
        if self.restarted:
            return (
                f"publisher restarted: seq {self.received} after {self.expected - 1}; "
                "events in between may be lost"
            )
        first, last = self.expected, self.received - 1
        span = f"seq {first}" if first == last else f"seq {first}-{last}"
        plural = "" if self.missing == 1 else "s"
        return f"{self.missing} event{plural} lost ({span})"


class SequenceTracker:
    """Follows ``seq`` over the events of one subscription and reports where it breaks.

    Meaningful for a subscription to every topic only (see the module docstring). The first
    event sets the starting point; events sent before it are not counted as lost.
    """

    def __init__(self) -> None:
        self.expected: int | None = None
        self.lost = 0
        self.restarts = 0

    def observe(self, event: Mapping[str, Any]) -> Discontinuity | None:
        """Take the next event; return the discontinuity before it, or None if seq follows on."""
        seq = event.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            return None
        expected, self.expected = self.expected, seq + 1
        if expected is None or seq == expected:
            return None
        found = Discontinuity(expected=expected, received=seq)
        self.lost += found.missing
        self.restarts += found.restarted
        return found


_LABELS = {
    "alert.raised": "ALERT RAISED",
    "alert.cleared": "ALERT CLEARED",
    "call.started": "CALL STARTED",
    "call.ended": "CALL ENDED",
    "score": "SCORE",
    "status": "STATUS",
}
_LABEL_WIDTH = max(len(label) for label in _LABELS.values())


def format_event(event: Mapping[str, Any]) -> str:
    """One line for a terminal, time of day in UTC, e.g.

    ``12:03:04.120  ALERT RAISED   call=rtp-1a2b ch0  4.0-6.0 s  score 0.97 >= 0.85
    evidence 6.0/6 nats  model sinc-lcnn 1`` (one line). Fields an event lacks are left out; an
    unknown topic gets its fields as ``key=value``.
    """
    topic = str(event.get("topic", "?"))
    label = _LABELS.get(topic, topic.upper())
    parts = [_clock(event.get("time")), f"{label:<{_LABEL_WIDTH}}"]
    stream = " ".join(
        text
        for text in (
            f"call={event['call_id']}" if event.get("call_id") is not None else "",
            f"ch{event['channel']}" if event.get("channel") is not None else "",
        )
        if text
    )
    if stream:
        parts.append(stream)
    if topic in ("alert.raised", "alert.cleared", "score"):
        parts.append(_window(event))
        if topic == "score":
            raw = event.get("raw")
            scored = _score(event) or "not scored"
            parts.append(f"{scored} (raw {raw:.3g})" if _is_number(raw) else scored)
            parts.append("speech" if event.get("speech") else "no speech")
        else:
            parts.append(_score(event))
            if _is_number(event.get("evidence")) and _is_number(event.get("raise_at")):
                parts.append(f"evidence {event['evidence']:.1f}/{event['raise_at']:g} nats")
            elif _is_number(event.get("over")) and _is_number(event.get("of")):
                parts.append(f"{event['over']} of {event['of']}")
        parts.append(_model(event.get("model")))
    elif topic == "call.started":
        parts.append(f"source {event.get('source', '?')}")
        parts.append(_model(event.get("model")))
    elif topic == "call.ended":
        parts.append(f"{_seconds(event.get('duration'))} s")
        parts.append(f"verdict {event.get('verdict', '?')}")
        if _is_number(event.get("speech_s")):
            parts.append(f"{event['speech_s']:.1f} s speech")
        if _is_number(event.get("max_score")):
            parts.append(f"max {event['max_score']:.2f}")
        parts.append(_count(event.get("alerts"), "alert"))
        parts.append(
            f"{_count(event.get('windows'), 'window')} ({event.get('speech_windows', '?')} speech)"
        )
        parts.append(f"reason {event.get('reason', '?')}")
    elif topic == "status":
        parts.append(_count(event.get("calls"), "call"))
        if _is_number(event.get("windows_per_second")):
            parts.append(f"{event['windows_per_second']:.1f} windows/s")
        parts.append(f"queue {event.get('queue_depth', '?')}")
        parts.append(f"dropped {event.get('dropped_windows', '?')}")
        parts.append(f"uptime {_seconds(event.get('uptime'), digits=0)} s")
        if event.get("overload"):
            parts.append("OVERLOAD")
    else:
        envelope = {"schema", "seq", "topic", "time", "call_id", "channel"}
        parts.extend(
            f"{key}={json.dumps(value)}" for key, value in event.items() if key not in envelope
        )
    return printable("  ".join(part for part in parts if part))


def _clock(stamp: object) -> str:
    if not isinstance(stamp, str):
        return "--:--:--.---"
    try:
        moment = datetime.datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.UTC)
    return moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _window(event: Mapping[str, Any]) -> str:
    start, end = event.get("start"), event.get("end")
    if not (_is_number(start) and _is_number(end)):
        return ""
    return f"{start:.1f}-{end:.1f} s"


def _score(event: Mapping[str, Any]) -> str:
    score, threshold = event.get("score"), event.get("threshold")
    if not _is_number(score):
        return ""
    if not _is_number(threshold):
        return f"score {score:.2f}"
    relation = ">=" if score >= threshold else "<"
    return f"score {score:.2f} {relation} {threshold:.2f}"


def _model(model: object) -> str:
    if not isinstance(model, Mapping):
        return ""
    return f"model {model.get('name', '?')} {model.get('version', '?')}"


def _seconds(value: object, digits: int = 1) -> str:
    return f"{value:.{digits}f}" if _is_number(value) else "?"


def _count(value: object, noun: str) -> str:
    if not _is_number(value):
        return f"? {noun}s"
    return f"{value} {noun}{'' if value == 1 else 's'}"


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)
