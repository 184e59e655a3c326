"""Read call audio from files into float32 arrays at the pipeline's sample rate.

soundfile (libsndfile) reads WAV (PCM 16/24/32, float, G.711 mu-law and A-law), FLAC and OGG.
Formats libsndfile cannot read (raw G.722, GSM, raw G.711 streams, and anything else ffmpeg
knows) go through the ``ffmpeg`` command-line tool. Channels are kept apart: call recordings often
carry one party per channel, and mixing them would hide a synthetic caller behind a human agent.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio.functional as taf

PIPELINE_SAMPLE_RATE = 16_000

# The detectors judge telephone-band speech (up to 3.4 kHz), which needs 8 kHz. Below that the
# band is cut short and bona fide speech scores as synthetic: the bundled bona fide call raises
# alerts when resampled to 6 kHz or 4 kHz (docs/reliability.md).
MIN_SAMPLE_RATE = 8_000
# The largest resampling filter (taps over all phases) dfd builds: 4 Mi floats, 16 MiB. Every
# standard rate needs far less (44.1 kHz -> 16 kHz: 130 thousand); an odd rate such as 44101 Hz
# shares no factor with 16 kHz and would need 711 million taps, 12 GB and minutes to build.
MAX_RESAMPLING_TAPS = 1 << 22


@dataclass(frozen=True)
class RawStreamFormat:
    """A headerless stream: the file extension is all there is to go on."""

    demuxer: str
    sample_rate: int
    demuxer_options: tuple[str, ...] = ()


_G722 = RawStreamFormat("g722", 16_000)
_GSM = RawStreamFormat("gsm", 8_000)
_MULAW = RawStreamFormat("mulaw", 8_000, ("-ar", "8000", "-ac", "1"))
_ALAW = RawStreamFormat("alaw", 8_000, ("-ar", "8000", "-ac", "1"))
RAW_STREAM_FORMATS: dict[str, RawStreamFormat] = {
    ".g722": _G722,
    ".722": _G722,
    ".gsm": _GSM,
    ".ul": _MULAW,
    ".ulaw": _MULAW,
    ".mulaw": _MULAW,
    ".mu": _MULAW,
    ".al": _ALAW,
    ".alaw": _ALAW,
}

FFMPEG_DEBIAN_PACKAGE = "ffmpeg"


class AudioDecodeError(ValueError):
    """The file could not be decoded as audio."""


class MissingToolError(RuntimeError):
    """A system tool dfd needs for this input is not installed."""


@dataclass(frozen=True)
class Recording:
    """Decoded audio: ``samples`` is float32 of shape (channels, frames) at ``sample_rate``."""

    samples: np.ndarray
    sample_rate: int
    source_sample_rate: int
    source_format: str
    path: Path

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration_s(self) -> float:
        return float(self.samples.shape[1] / self.sample_rate)


def load_audio(path: str | Path, sample_rate: int = PIPELINE_SAMPLE_RATE) -> Recording:
    """Decode ``path`` and resample every channel to ``sample_rate``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such audio file: {path}")
    raw = RAW_STREAM_FORMATS.get(path.suffix.lower())
    if raw is not None:
        input_args = ["-f", raw.demuxer, *raw.demuxer_options]
        samples = _decode_with_ffmpeg(path, input_args=input_args)[np.newaxis, :]
        rate = raw.sample_rate
        source_format = f"raw {raw.demuxer}"
    else:
        try:
            samples, rate, source_format = _decode_with_soundfile(path)
        except soundfile.LibsndfileError:
            rate, channels, codec = probe_with_ffmpeg(path)
            samples = _decode_with_ffmpeg(path, input_args=[]).reshape(-1, channels).T
            source_format = codec
    if samples.shape[1] == 0:
        raise AudioDecodeError(f"{path}: the file holds no audio frames")
    try:
        check_resampling(rate, sample_rate)
    except ValueError as error:
        raise AudioDecodeError(f"{path}: {error}") from None
    return Recording(
        samples=resample(samples, rate, sample_rate),
        sample_rate=sample_rate,
        source_sample_rate=rate,
        source_format=source_format,
        path=path,
    )


# librosa's "kaiser_best": a steep anti-aliasing filter (over 40 dB down within 3 % of the new
# Nyquist frequency). torchaudio's default kernel (width 6) lets tones just above it alias back.
_LOWPASS_FILTER_WIDTH = 64
_ROLLOFF = 0.9475
RESAMPLING_KERNEL = {
    "lowpass_filter_width": _LOWPASS_FILTER_WIDTH,
    "rolloff": _ROLLOFF,
    "resampling_method": "sinc_interp_kaiser",
    "beta": 14.769656459379492,
}


def resampling_taps(from_rate: int, to_rate: int) -> int:
    """Taps of the filter that resamples ``from_rate`` to ``to_rate`` (all phases together), as
    torchaudio builds it with ``RESAMPLING_KERNEL``; 0 when the rates are equal."""
    if from_rate == to_rate:
        return 0
    common = math.gcd(from_rate, to_rate)
    step_in, step_out = from_rate // common, to_rate // common
    width = math.ceil(_LOWPASS_FILTER_WIDTH * step_in / (min(step_in, step_out) * _ROLLOFF))
    return step_out * (2 * width + step_in)


def check_resampling(from_rate: int, to_rate: int) -> None:
    """Refuse (``ValueError``) a conversion whose exact filter would be unaffordably large."""
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
    taps = resampling_taps(from_rate, to_rate)
    if taps > MAX_RESAMPLING_TAPS:
        raise ValueError(
            f"a sample rate of {from_rate} Hz cannot be converted to {to_rate} Hz in reasonable "
            f"time and memory (the exact filter would have {taps:,} taps); convert the file to "
            f"a standard rate first (ffmpeg -i IN -ar {to_rate} OUT.wav)"
        )


def check_sample_rate(path: Path, rate: int, to_rate: int = PIPELINE_SAMPLE_RATE) -> None:
    """Refuse audio the detectors cannot judge: below ``MIN_SAMPLE_RATE``, or at a rate that
    cannot be resampled to ``to_rate`` (``check_resampling``)."""
    if rate < MIN_SAMPLE_RATE:
        raise AudioDecodeError(
            f"{path}: the sample rate is {rate} Hz; dfd needs at least {MIN_SAMPLE_RATE} Hz "
            f"(telephone-band speech): at lower rates bona fide speech scores as synthetic"
        )
    try:
        check_resampling(rate, to_rate)
    except ValueError as error:
        raise AudioDecodeError(f"{path}: {error}") from None


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited resampling along the last axis (windowed sinc, Kaiser window)."""
    if from_rate == to_rate:
        return np.ascontiguousarray(samples, dtype=np.float32)
    check_resampling(from_rate, to_rate)
    tensor = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    resampled: np.ndarray = taf.resample(tensor, from_rate, to_rate, **RESAMPLING_KERNEL).numpy()
    return resampled


def _decode_with_soundfile(path: Path) -> tuple[np.ndarray, int, str]:
    with soundfile.SoundFile(path) as audio:
        samples = audio.read(dtype="float32", always_2d=True)
        return samples.T.copy(), audio.samplerate, f"{audio.format}/{audio.subtype}"


def ffmpeg_executable(tool: str = "ffmpeg") -> str:
    executable = shutil.which(tool)
    if executable is None:
        raise MissingToolError(
            f"decoding this file needs `{tool}`, which is not installed: install the Debian "
            f"package '{FFMPEG_DEBIAN_PACKAGE}' (scripts/setup.sh does it: "
            f"apt-get install {FFMPEG_DEBIAN_PACKAGE})"
        )
    return executable


def ffmpeg_input(path: Path) -> str:
    """``path`` as ffmpeg and ffprobe must be given it: an absolute ``file:`` URL, so that a file
    named ``-report:x.mp3`` is not read as an option, nor ``pipe:x.mp3`` as standard input, nor
    ``http://...`` as a stream to fetch."""
    return "file:" + str(Path(os.path.abspath(path)))


def message_tail(output: bytes, lines: int = 2) -> str:
    """The last ``lines`` lines of a tool's messages that say something, joined into one."""
    said = [line.strip() for line in output.decode(errors="replace").splitlines()]
    said = [line for line in said if line and not line.startswith("Last message repeated")]
    return "; ".join(said[-lines:])


def probe_with_ffmpeg(path: Path) -> tuple[int, int, str]:
    command = [
        ffmpeg_executable("ffprobe"),
        "-v", "error",
        "-select_streams", "a:0",
        "-show_entries", "stream=sample_rate,channels,codec_name",
        "-of", "json",
        ffmpeg_input(path),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, check=False)
    detail = message_tail(result.stderr)
    try:  # ffprobe can exit 1 after printing half a JSON object (a header with 0 channels)
        stream = json.loads(result.stdout)["streams"][0] if result.returncode == 0 else {}
        rate, channels = int(stream["sample_rate"]), int(stream["channels"])
        codec = str(stream["codec_name"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise AudioDecodeError(
            f"{path}: not a readable audio file ({detail or 'no audio stream'})"
        ) from None
    if rate <= 0 or channels <= 0:
        raise AudioDecodeError(
            f"{path}: not a readable audio file ({channels} channels at {rate} Hz)"
        )
    return rate, channels, codec


def _decode_with_ffmpeg(path: Path, input_args: list[str]) -> np.ndarray:
    command = [
        ffmpeg_executable(),
        "-nostdin", "-v", "error",
        *input_args,
        "-i", ffmpeg_input(path),
        "-f", "f32le", "-c:a", "pcm_f32le",
        "-",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, check=False)
    if result.returncode != 0:
        detail = message_tail(result.stderr)
        raise AudioDecodeError(f"{path}: ffmpeg could not decode it ({detail})")
    return np.frombuffer(result.stdout, dtype="<f4").copy()
