"""The interface a capture source implements, and what it counts.

A source turns some live transport into a sequence of ``CaptureEvent``s for the pipeline (the
engine's input types, defined in ``engine.events``):

- ``AudioChunk``: the next samples of one party of one call (``call_id`` + ``channel``), mono
  float32 in [-1, 1] at the source's own rate. Chunks of one stream arrive in order and are
  contiguous: a source that loses audio (RTP packet loss) fills the gap itself (with silence),
  so sample positions in the pipeline stay exact. The pipeline resamples to 16 kHz.
- ``StreamEnded``: that party of that call will send no more audio (RTP BYE or inactivity
  timeout, a PCM ingest end message, end of a WAV file, the source stopping).

A source runs on its own thread(s) and must never block on the pipeline: the ``sink`` it is
given returns at once (the pipeline's intake queue is bounded and counts what it drops).
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable

import structlog

from dfd.daemon.engine.events import STOPPED, AudioChunk, CaptureEvent

log = structlog.get_logger(__name__)


Sink = Callable[[CaptureEvent], None]


@dataclasses.dataclass
class SourceCounters:
    """What a source saw and what it had to throw away; read by status events and metrics."""

    chunks: int = 0
    samples: int = 0
    malformed: int = 0  # packets or frames that could not be parsed: counted and dropped
    lost: int = 0  # packets or frames never received (filled with silence); device overflows
    late: int = 0  # packets or frames that came after their place was played out: dropped
    duplicates: int = 0  # packets or frames received a second time: dropped
    refused: int = 0  # packets or frames of new streams over the stream limits: dropped
    streams_started: int = 0
    streams_ended: int = 0


class Source(abc.ABC):
    """A capture source. ``start`` returns once it is listening; ``stop`` ends every open
    stream with ``StreamEnded(reason)`` (``"source-stopped"`` unless the caller gives its own,
    ``"daemon-stopping"`` at shutdown) and joins the source's threads."""

    name: str = "source"

    def __init__(self) -> None:
        self.counters = SourceCounters()

    @abc.abstractmethod
    def start(self, sink: Sink) -> None: ...

    @abc.abstractmethod
    def stop(self, reason: str = STOPPED) -> None: ...

    def _deliver(self, sink: Sink, event: CaptureEvent) -> None:
        """Count ``event`` and hand it to ``sink``. A sink that raises has a bug of its own: the
        error is logged and the source thread carries on with the other calls."""
        if isinstance(event, AudioChunk):
            self.counters.chunks += 1
            self.counters.samples += int(event.samples.shape[0])
        else:
            self.counters.streams_ended += 1
        try:
            sink(event)
        except Exception:
            log.exception("sink_failed", source=self.name, call_id=event.call_id)

    @property
    def finished(self) -> bool:
        """True once a source that has a natural end (a WAV file) has sent everything."""
        return False
