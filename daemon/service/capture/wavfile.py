"""Audio files played as live calls, for demos and load tests.

Each file is one call and each of its channels one party (channel). One thread paces every file
of a source against a shared clock, ``block_s`` of audio per file per tick, so hundreds of files
cost one thread. Files are streamed (``open_audio_stream``: anything it reads, resampled to
``sample_rate``, 16 kHz by default, a second at a time), so a two-hour file costs no more memory
than a short one; a file named several times is read once for all its calls, which play in step.
Each stream ends with reason ``"end-of-file"``; ``finished`` turns True when every file has
ended. With ``loop``, a file starts over as a new call when it ends (``<call_id>#2``, ``#3``, ...),
until ``stop``.

Bad input never stops the source. A file that cannot be played at all (missing, undecodable,
empty, below 8 kHz) is refused when the source is made, before anything starts. A file damaged
part-way (cut short, corrupt, NaN or infinite samples) plays up to the damage, its streams end
with reason ``"decode-error"`` (not looped) and the error is logged; the other files play on.

The call id of a file is the one given with it (``(path, call_id)``) or ``wav-<file stem>``, with
``-<position in the list>`` added when several files would share a stem.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import structlog

from dfd.daemon.engine.events import STOPPED, AudioChunk, StreamEnded
from dfd.daemon.service.capture.base import Sink, Source
from dfd.dsp.audio_io import PIPELINE_SAMPLE_RATE, AudioDecodeError
from dfd.dsp.audio_stream import open_audio_stream
from dfd.dsp.stream_resample import StreamResampler

log = structlog.get_logger(__name__)

FileSpec = str | Path | tuple[str | Path, str]

READ_BLOCK_S = 1.0


class _FileReader:
    """One pass over a file: its channels resampled to ``sample_rate``, handed out in any
    amounts. Holds about ``READ_BLOCK_S`` of audio; decoding errors end the pass early and are
    kept in ``error``."""

    def __init__(self, path: Path, sample_rate: int) -> None:
        self.info, self._blocks = open_audio_stream(path, READ_BLOCK_S, for_rate=sample_rate)
        channels = self.info.channels
        self._resamplers = [
            StreamResampler(self.info.sample_rate, sample_rate) for _ in range(channels)
        ]
        self._pending = np.zeros((channels, 0), dtype=np.float32)
        self._ended = False
        self.error: str | None = None

    @property
    def exhausted(self) -> bool:
        return self._ended and self._pending.shape[1] == 0

    def take(self, count: int) -> np.ndarray:
        """The next ``count`` samples of every channel (fewer only at the end of the pass)."""
        while self._pending.shape[1] <= count and not self._ended:  # one more: see the end
            self._read()
        taken, self._pending = self._pending[:, :count], self._pending[:, count:]
        return taken

    def _read(self) -> None:
        try:
            block = next(self._blocks)
            converted = [r.push(c) for r, c in zip(self._resamplers, block, strict=True)]
        except StopIteration:
            converted = [r.finish() for r in self._resamplers]
            self._ended = True
        except (AudioDecodeError, OSError) as error:  # damaged, or gone from under us
            converted = [r.finish() for r in self._resamplers]
            self._ended, self.error = True, str(error)
        self._pending = np.concatenate([self._pending, np.stack(converted)], axis=1)

    def close(self) -> None:
        self._blocks.close()


@dataclasses.dataclass
class _Track:
    """A distinct file and the calls that play it, in step: one reader serves them all."""

    path: Path
    call_ids: list[str]
    channels: int
    reader: _FileReader | None = None
    position: int = 0  # samples of this pass sent
    pass_start: int = 0  # where this pass began on the shared clock
    passes: int = 1
    done: bool = False

    def current_call_ids(self) -> list[str]:
        return self.call_ids if self.passes == 1 else [f"{c}#{self.passes}" for c in self.call_ids]


class WavSource(Source):
    name = "wav"

    def __init__(
        self,
        files: Sequence[FileSpec],
        *,
        realtime: bool = True,
        block_s: float = 0.02,
        loop: bool = False,
        sample_rate: int = PIPELINE_SAMPLE_RATE,
    ) -> None:
        super().__init__()
        if not files:
            raise ValueError("WavSource needs at least one file")
        if block_s <= 0:
            raise ValueError("block_s must be positive")
        self.files = [(Path(f[0]), f[1]) if isinstance(f, tuple) else (Path(f), "") for f in files]
        self.realtime = realtime
        self.block_s = block_s
        self.loop = loop
        self.sample_rate = sample_rate
        self._channels = {
            path: self._check(path) for path in dict.fromkeys(p for p, _ in self.files)
        }
        self._tracks: list[_Track] = []
        self._stopping = threading.Event()
        self._finished = threading.Event()
        self._thread: threading.Thread | None = None
        self._sink: Sink | None = None

    @property
    def call_ids(self) -> list[str]:
        """The call id of each file, in the order given."""
        stems = collections.Counter(path.stem for path, call_id in self.files if not call_id)
        return [
            call_id or (f"wav-{path.stem}" if stems[path.stem] == 1 else f"wav-{path.stem}-{index}")
            for index, (path, call_id) in enumerate(self.files)
        ]

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    def _check(self, path: Path) -> int:
        """Open ``path`` as a pass would (raising what it raises); its channel count."""
        reader = _FileReader(path, self.sample_rate)
        reader.close()
        return reader.info.channels

    def start(self, sink: Sink) -> None:
        if self._thread is not None:
            raise RuntimeError("this WavSource is already started")
        calls: dict[Path, list[str]] = collections.defaultdict(list)
        for (path, _), call_id in zip(self.files, self.call_ids, strict=True):
            calls[path].append(call_id)
        self._tracks = [
            _Track(path, call_ids, self._channels[path], _FileReader(path, self.sample_rate))
            for path, call_ids in calls.items()
        ]
        self._sink = sink
        self._thread = threading.Thread(target=self._run, name="dfd-wav", daemon=True)
        self._thread.start()
        log.info("wav_playing", files=len(self.files), realtime=self.realtime, loop=self.loop)

    def stop(self, reason: str = STOPPED) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        for track in self._tracks:
            if not track.done and track.position > 0:  # a pass that has begun
                self._end(track, reason)
            if track.reader is not None:
                track.reader.close()
                track.reader = None

    def _run(self) -> None:
        started = time.monotonic()
        tick = 0
        while not self._stopping.is_set():
            tick += 1  # a block goes out when it has been "recorded", as from a live device
            if self.realtime:
                delay = started + tick * self.block_s - time.monotonic()
                if delay > 0 and self._stopping.wait(delay):
                    return
            until = round(tick * self.block_s * self.sample_rate)  # sample-exact shared clock
            for track in self._tracks:
                self._play(track, until)
            if all(track.done for track in self._tracks):
                self._finished.set()
                return

    def _play(self, track: _Track, until: int) -> None:
        """Send ``track`` up to sample ``until`` of the shared clock, ending (and with ``loop``
        restarting) it on the way."""
        assert self._sink is not None
        while not track.done:
            wanted = until - track.pass_start - track.position
            if wanted <= 0:
                return
            if track.reader is None:  # a new pass (loop)
                try:
                    track.reader = _FileReader(track.path, self.sample_rate)
                except (AudioDecodeError, OSError) as error:  # changed since the last pass
                    log.error("wav_unreadable", path=str(track.path), error=str(error))
                    track.done = True
                    return
            reader = track.reader
            samples = reader.take(wanted)
            if samples.shape[1]:
                for call_id in track.current_call_ids():
                    for channel, part in enumerate(samples):
                        chunk = AudioChunk(call_id, channel, part.copy(), self.sample_rate)
                        self._deliver(self._sink, chunk)
                if track.position == 0:
                    self.counters.streams_started += track.channels * len(track.call_ids)
                track.position += samples.shape[1]
            if not reader.exhausted:
                return
            reader.close()
            track.reader = None
            problem = reader.error or reader.info.damage  # damage: a WAV file cut short
            if problem is not None:
                log.error("wav_decode_failed", path=str(track.path), error=problem)
                self._end(track, "decode-error")
                return
            self._end(track, "end-of-file")
            if self.loop:
                track.passes += 1
                track.pass_start += track.position
                track.position = 0
                track.done = False

    def _end(self, track: _Track, reason: str) -> None:
        assert self._sink is not None
        track.done = True
        if track.position == 0:  # nothing of this pass was sent: no stream to end
            return
        for call_id in track.current_call_ids():
            for channel in range(track.channels):
                self._deliver(self._sink, StreamEnded(call_id, channel, reason))
