"""Read an audio file block by block, at its own sample rate, in constant memory.

``dfd replay`` audits recordings of any length: a two-hour call must not be decoded into memory
whole. libsndfile formats are read in blocks; everything else streams out of an ``ffmpeg``
process through a pipe. Errors about the file (missing, unreadable, empty, a sample rate the
pipeline cannot use) are raised by ``open_audio_stream`` itself, before the first block, so a
caller can report them up front.

Damage found while reading ends the blocks with an error: ``AudioDamagedError`` when audio was
delivered before it (the caller may keep what it has), plain ``AudioDecodeError`` when nothing
was. A NaN or infinite sample is an ``AudioDecodeError`` naming where it is: such a file was
written by a broken program, and no verdict can be drawn from it. A WAV file whose header
promises more audio than the file holds (a recording cut short) decodes up to its end, and says
so in ``AudioStreamInfo.damage``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import struct
import subprocess
import tempfile
from collections.abc import Generator
from pathlib import Path

import numpy as np
import soundfile

from dfd.dsp.audio_io import (
    RAW_STREAM_FORMATS,
    AudioDecodeError,
    check_sample_rate,
    ffmpeg_executable,
    ffmpeg_input,
    message_tail,
    probe_with_ffmpeg,
)


class AudioDamagedError(AudioDecodeError):
    """Decoding stopped part-way; the blocks delivered before it (``decoded_s``) are sound."""

    def __init__(self, message: str, decoded_s: float) -> None:
        super().__init__(message)
        self.decoded_s = decoded_s


@dataclasses.dataclass(frozen=True)
class AudioStreamInfo:
    path: Path
    sample_rate: int
    channels: int
    frames: int | None  # None when the container does not say (a pipe from ffmpeg)
    source_format: str
    damage: str | None = None  # what is wrong with a file that still decodes (truncated)

    @property
    def duration_s(self) -> float | None:
        return None if self.frames is None else self.frames / self.sample_rate


def open_audio_stream(
    path: str | Path, block_s: float = 1.0, *, for_rate: int | None = None
) -> tuple[AudioStreamInfo, Generator[np.ndarray, None, None]]:
    """``(info, blocks)``: blocks are float32 ``(channels, frames)`` at the file's own rate.
    Closing ``blocks`` closes the file (or stops ffmpeg) at once.

    ``for_rate``: the rate the caller will resample to. A file it cannot be resampled to, or
    below 8 kHz (``audio_io.check_sample_rate``), is then refused up front."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such audio file: {path}")
    raw = RAW_STREAM_FORMATS.get(path.suffix.lower())
    if raw is not None:
        info = AudioStreamInfo(path, raw.sample_rate, 1, None, f"raw {raw.demuxer}")
        input_args = ["-f", raw.demuxer, *raw.demuxer_options]
        return info, _finite(info, _ffmpeg_blocks(info, input_args, block_s))
    try:
        sound = soundfile.SoundFile(path)
    except soundfile.LibsndfileError:
        rate, channels, codec = probe_with_ffmpeg(path)
        if for_rate is not None:
            check_sample_rate(path, rate, for_rate)
        info = AudioStreamInfo(path, rate, channels, None, codec)
        return info, _finite(info, _ffmpeg_blocks(info, [], block_s))
    try:
        if sound.frames == 0:
            raise AudioDecodeError(f"{path}: the file holds no audio frames")
        if for_rate is not None:
            check_sample_rate(path, sound.samplerate, for_rate)
    except AudioDecodeError:
        sound.close()
        raise
    info = AudioStreamInfo(
        path,
        sound.samplerate,
        sound.channels,
        sound.frames,
        f"{sound.format}/{sound.subtype}",
        _wav_shortfall(path, sound),
    )
    return info, _finite(info, _soundfile_blocks(info, sound, block_s))


def _finite(
    info: AudioStreamInfo, blocks: Generator[np.ndarray, None, None]
) -> Generator[np.ndarray, None, None]:
    delivered = 0
    with contextlib.closing(blocks):  # closing these blocks closes the file (or ffmpeg) at once
        for block in blocks:
            bad = ~np.isfinite(block)
            if bad.any():
                frame = int(np.argmax(bad.any(axis=0)))
                channel = int(np.argmax(bad[:, frame]))
                at = delivered + frame
                raise AudioDecodeError(
                    f"{info.path}: the audio holds NaN or infinite samples (the first, "
                    f"{block[channel, frame]}, at {at / info.sample_rate:.3f} s: sample {at} "
                    f"of channel {channel})"
                )
            delivered += block.shape[1]
            yield block


def _soundfile_blocks(
    info: AudioStreamInfo, sound: soundfile.SoundFile, block_s: float
) -> Generator[np.ndarray, None, None]:
    block = max(1, round(block_s * sound.samplerate))
    delivered = 0
    with sound:
        blocks = sound.blocks(blocksize=block, dtype="float32", always_2d=True)
        while True:
            try:
                data = next(blocks)
            except StopIteration:
                return
            except soundfile.LibsndfileError as error:  # a FLAC frame lost or cut off
                reason = error.error_string.removeprefix("Error : ").rstrip(".")
                raise _damaged(info, delivered, reason) from None
            delivered += len(data)
            yield np.ascontiguousarray(data.T)


def _damaged(info: AudioStreamInfo, delivered: int, reason: str) -> AudioDecodeError:
    if delivered == 0:
        return AudioDecodeError(f"{info.path}: no audio could be decoded ({reason})")
    at = delivered / info.sample_rate
    return AudioDamagedError(f"{info.path}: decoding stopped at {at:.3f} s ({reason})", at)


def _wav_shortfall(path: Path, sound: soundfile.SoundFile) -> str | None:
    """For a RIFF WAV file whose ``data`` chunk claims more bytes than the file holds: how much
    is missing. Sizes 0 and 0xFFFFFFFF mean "unknown" (a header a streaming writer never
    finished) and are not a shortfall."""
    if sound.format != "WAV":
        return None
    with path.open("rb") as file:
        head = file.read(1 << 16)
        size = file.seek(0, 2)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    block_align = 0
    offset = 12
    while offset + 8 <= len(head):
        chunk, length = struct.unpack_from("<4sI", head, offset)
        if chunk == b"fmt " and offset + 22 <= len(head):
            (block_align,) = struct.unpack_from("<H", head, offset + 20)
        if chunk == b"data":
            present = size - offset - 8
            if length in (0, 0xFFFFFFFF) or length <= present or block_align == 0:
                return None
            promised = length // block_align / sound.samplerate
            return (
                f"{path}: truncated: the header promises {promised:.3f} s of audio, "
                f"the file holds {sound.frames / sound.samplerate:.3f} s"
            )
        offset += 8 + length + (length & 1)
    return None


def _ffmpeg_blocks(
    info: AudioStreamInfo, input_args: list[str], block_s: float
) -> Generator[np.ndarray, None, None]:
    command = [
        ffmpeg_executable(),
        "-nostdin", "-v", "error",
        *input_args,
        "-i", ffmpeg_input(info.path),
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
                detail = message_tail(messages.read())
                message = f"{info.path}: ffmpeg could not decode it ({detail})"
                if delivered:
                    raise AudioDamagedError(message, delivered / info.sample_rate)
                raise AudioDecodeError(message)
            if delivered == 0:
                raise AudioDecodeError(f"{info.path}: the file holds no audio frames")
        finally:
            if process.poll() is None:
                process.kill()
            with contextlib.suppress(Exception):
                process.wait(5)
            process.stdout.close()
