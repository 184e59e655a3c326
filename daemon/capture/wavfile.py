"""Audio files played as live calls, for demos and load tests.

Each file is one call and each of its channels one party (channel). One thread paces every file
of a source against a shared clock, ``block_s`` of audio per file per tick, so hundreds of files
cost one thread. Files are decoded at ``start`` by ``load_audio`` (anything it reads, resampled to
``sample_rate``, 16 kHz by default) and each stream ends with reason ``"end-of-file"``;
``finished`` turns True when every file has ended. With ``loop``, a file starts over as a new call
when it ends (``<call_id>#2``, ``#3``, ...), until ``stop``.

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

from dfd.daemon.capture.base import AudioChunk, Sink, Source, StreamEnded
from dfd.dsp.audio_io import PIPELINE_SAMPLE_RATE, Recording, load_audio

log = structlog.get_logger(__name__)

FileSpec = str | Path | tuple[str | Path, str]


@dataclasses.dataclass
class _Playing:
    call_id: str
    samples: np.ndarray  # (channels, frames), shared between the files that name the same path
    position: int = 0
    passes: int = 1
    done: bool = False

    @property
    def current_call_id(self) -> str:
        return self.call_id if self.passes == 1 else f"{self.call_id}#{self.passes}"


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
        self._playing: list[_Playing] = []
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

    def start(self, sink: Sink) -> None:
        if self._thread is not None:
            raise RuntimeError("this WavSource is already started")
        recordings: dict[Path, Recording] = {}
        for path, _ in self.files:
            if path not in recordings:
                recordings[path] = load_audio(path, self.sample_rate)
        self._playing = [
            _Playing(call_id, recordings[path].samples)
            for (path, _), call_id in zip(self.files, self.call_ids, strict=True)
        ]
        self._sink = sink
        self._thread = threading.Thread(target=self._run, name="dfd-wav", daemon=True)
        self._thread.start()
        log.info("wav_playing", files=len(self.files), realtime=self.realtime, loop=self.loop)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        for playing in self._playing:
            if not playing.done and playing.position > 0:  # a pass that has begun
                self._end(playing, "source-stopped")

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
            for playing in self._playing:
                self._play(playing, until)
            if all(playing.done for playing in self._playing):
                self._finished.set()
                return

    def _play(self, playing: _Playing, until: int) -> None:
        """Send ``playing`` up to sample ``until`` of the shared clock, ending (and with
        ``loop`` restarting) it on the way."""
        assert self._sink is not None
        channels, frames = playing.samples.shape
        while not playing.done:
            offset = (playing.passes - 1) * frames  # where this pass began on the shared clock
            stop = min(until - offset, frames)
            if stop <= playing.position:
                return
            for channel in range(channels):
                samples = playing.samples[channel, playing.position : stop].copy()
                chunk = AudioChunk(playing.current_call_id, channel, samples, self.sample_rate)
                self._deliver(self._sink, chunk)
            if playing.position == 0:
                self.counters.streams_started += channels
            playing.position = stop
            if stop < frames:
                return
            self._end(playing, "end-of-file")
            if self.loop:
                playing.passes += 1
                playing.position = 0
                playing.done = False

    def _end(self, playing: _Playing, reason: str) -> None:
        assert self._sink is not None
        playing.done = True
        for channel in range(playing.samples.shape[0]):
            self._deliver(self._sink, StreamEnded(playing.current_call_id, channel, reason))
