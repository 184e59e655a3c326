"""Read an audio file block by block, at its own sample rate, in constant memory.

``dfd replay`` audits recordings of any length: a two-hour call must not be decoded into memory
whole. libsndfile formats are read in blocks; everything else streams out of an ``ffmpeg``
process through a pipe. Errors about the file (missing, unreadable, empty) are raised by
``open_audio_stream`` itself, before the first block, so a caller can report them up front.
"""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile

from dfd.dsp.audio_io import (
    RAW_STREAM_FORMATS,
    AudioDecodeError,
    ffmpeg_executable,
    probe_with_ffmpeg,
)


@dataclasses.dataclass(frozen=True)
class AudioStreamInfo:
    path: Path
    sample_rate: int
    channels: int
    frames: int | None  # None when the container does not say (a pipe from ffmpeg)
    source_format: str

    @property
    def duration_s(self) -> float | None:
        return None if self.frames is None else self.frames / self.sample_rate


def open_audio_stream(
    path: str | Path, block_s: float = 1.0
) -> tuple[AudioStreamInfo, Iterator[np.ndarray]]:
    """``(info, blocks)``: blocks are float32 ``(channels, frames)`` at the file's own rate."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such audio file: {path}")
    raw = RAW_STREAM_FORMATS.get(path.suffix.lower())
    if raw is not None:
        info = AudioStreamInfo(path, raw.sample_rate, 1, None, f"raw {raw.demuxer}")
        input_args = ["-f", raw.demuxer, *raw.demuxer_options]
        return info, _ffmpeg_blocks(info, input_args, block_s)
    try:
        sound = soundfile.SoundFile(path)
    except soundfile.LibsndfileError:
        rate, channels, codec = probe_with_ffmpeg(path)
        info = AudioStreamInfo(path, rate, channels, None, codec)
        return info, _ffmpeg_blocks(info, [], block_s)
    if sound.frames == 0:
        sound.close()
        raise AudioDecodeError(f"{path}: the file holds no audio frames")
    info = AudioStreamInfo(
        path, sound.samplerate, sound.channels, sound.frames, f"{sound.format}/{sound.subtype}"
    )
    return info, _soundfile_blocks(sound, block_s)


def _soundfile_blocks(sound: soundfile.SoundFile, block_s: float) -> Iterator[np.ndarray]:
    block = max(1, round(block_s * sound.samplerate))
    with sound:
        for data in sound.blocks(blocksize=block, dtype="float32", always_2d=True):
            yield np.ascontiguousarray(data.T)


def _ffmpeg_blocks(
    info: AudioStreamInfo, input_args: list[str], block_s: float
) -> Iterator[np.ndarray]:
    command = [
        ffmpeg_executable(),
        "-nostdin", "-v", "error",
        *input_args,
        "-i", str(info.path),
        "-f", "f32le", "-c:a", "pcm_f32le",
        "-",
    ]  # fmt: skip
    frame_bytes = 4 * info.channels
    block_bytes = max(1, round(block_s * info.sample_rate)) * frame_bytes
    # ffmpeg's messages go to a file, not a pipe: a damaged file can make it write megabytes of
    # them, and a pipe nobody reads until the end would fill and stall it (and us with it).
    with tempfile.TemporaryFile() as messages:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=messages, stdin=subprocess.DEVNULL
        )
        assert process.stdout is not None
        delivered = 0
        try:
            pending = b""
            while chunk := process.stdout.read(block_bytes):
                pending += chunk
                usable = len(pending) // frame_bytes * frame_bytes
                if usable:
                    data = np.frombuffer(pending[:usable], dtype="<f4")
                    data = data.reshape(-1, info.channels)
                    pending = pending[usable:]
                    delivered += len(data)
                    yield np.ascontiguousarray(data.T)
            process.wait()
            if process.returncode != 0:
                messages.seek(0)
                lines = messages.read().decode(errors="replace").splitlines()
                detail = "; ".join([line.strip() for line in lines if line.strip()][-2:])
                raise AudioDecodeError(f"{info.path}: ffmpeg could not decode it ({detail})")
            if delivered == 0:
                raise AudioDecodeError(f"{info.path}: the file holds no audio frames")
        finally:
            if process.poll() is None:
                process.kill()
            with contextlib.suppress(Exception):
                process.wait(5)
            process.stdout.close()
