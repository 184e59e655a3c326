"""Which new streams a capture source lets in, so that a flood cannot grow its state unbounded.

A source asks ``admit(sender, now)`` before it opens a stream, and says ``closed(sender)`` when
one ends. A stream is refused when the source already has ``max_streams`` open, when its sender
(an RTP sender's host, a PCM ingest endpoint) already has ``max_per_sender`` open, or when the
sender has opened streams faster than ``new_per_s`` for longer than its ``burst`` allows (a
token bucket per sender, refilled at ``new_per_s``, holding at most ``burst``). A refused stream
costs nothing but a counter; its packets keep being refused until the stream could be admitted.
The senders remembered are bounded too (``MAX_SENDERS``: the idle ones are forgotten first).
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any, Literal

import structlog

log = structlog.get_logger(__name__)

Refusal = Literal["max-streams", "max-per-sender", "rate"]
MAX_SENDERS = 4096
REFUSAL_WARNING_S = 10.0  # at most one warning about refused streams this often, per source


@dataclasses.dataclass(frozen=True)
class StreamLimits:
    """``[serve]``'s stream limits, per capture source (see the module docstring)."""

    max_streams: int = 1000
    max_per_sender: int = 200
    new_per_s: float = 20.0
    burst: int = 50


class RateLimitedWarning:
    """A warning logged at most once per ``interval_s``; the next one says how many were not."""

    def __init__(self, event: str, interval_s: float) -> None:
        self.event, self.interval_s = event, interval_s
        self._last: float | None = None
        self._unlogged = 0

    def warn(self, now: float, **fields: Any) -> None:
        if self._last is not None and now - self._last < self.interval_s:
            self._unlogged += 1
            return
        log.warning(self.event, not_logged_since_last=self._unlogged, **fields)
        self._last, self._unlogged = now, 0


@dataclasses.dataclass
class _Sender:
    open: int
    tokens: float
    refilled_at: float


class StreamAdmission:
    def __init__(self, max_streams: int, max_per_sender: int, new_per_s: float, burst: int) -> None:
        if min(max_streams, max_per_sender, burst) < 1 or not new_per_s > 0:
            raise ValueError("stream limits must be positive")
        self.max_streams, self.max_per_sender = max_streams, max_per_sender
        self.new_per_s, self.burst = new_per_s, burst
        self.open = 0
        self.refused: collections.Counter[Refusal] = collections.Counter()
        self._senders: collections.OrderedDict[str, _Sender] = collections.OrderedDict()

    def admit(self, sender: str, now: float) -> Refusal | None:
        """None (and the stream counted open) when a new stream from ``sender`` may start; else
        why not (and the refusal counted)."""
        state = self._senders.get(sender)
        if state is None:
            state = _Sender(0, float(self.burst), now)
            self._remember(sender, state)
        else:
            self._senders.move_to_end(sender)
        state.tokens = min(
            float(self.burst), state.tokens + (now - state.refilled_at) * self.new_per_s
        )
        state.refilled_at = now
        refusal: Refusal | None = None
        if self.open >= self.max_streams:
            refusal = "max-streams"
        elif state.open >= self.max_per_sender:
            refusal = "max-per-sender"
        elif state.tokens < 1.0:
            refusal = "rate"
        if refusal is not None:
            self.refused[refusal] += 1
            return refusal
        state.tokens -= 1.0
        state.open += 1
        self.open += 1
        return None

    def closed(self, sender: str) -> None:
        """A stream admitted for ``sender`` has ended."""
        self.open = max(0, self.open - 1)
        state = self._senders.get(sender)
        if state is not None:
            state.open = max(0, state.open - 1)

    def _remember(self, sender: str, state: _Sender) -> None:
        if len(self._senders) >= MAX_SENDERS:
            for name, old in list(self._senders.items()):
                if old.open == 0:
                    del self._senders[name]
                    break
        self._senders[sender] = state

    @property
    def refused_total(self) -> int:
        return sum(self.refused.values())
