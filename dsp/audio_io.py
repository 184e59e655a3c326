"""Read call audio from files into float32 arrays at the pipeline's sample rate.

soundfile (libsndfile) reads WAV (PCM 16/24/32, float, G.711 mu-law and A-law), FLAC and OGG.
Formats libsndfile cannot read (raw G.722, GSM, raw G.711 streams, and anything else ffmpeg
knows) go through the ``ffmpeg`` command-line tool. Channels are kept apart: call recordings often
carry one party per channel, and mixing them would hide a synthetic caller behind a human agent.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio.functional as taf

PIPELINE_SAMPLE_RATE = 16_000


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
    return Recording(
        samples=resample(samples, rate, sample_rate),
        sample_rate=sample_rate,
        source_sample_rate=rate,
        source_format=source_format,
        path=path,
    )


# librosa's "kaiser_best": a steep anti-aliasing filter (over 40 dB down within 3 % of the new
# Nyquist frequency). torchaudio's default kernel (width 6) lets tones just above it alias back.
RESAMPLING_KERNEL = {
    "lowpass_filter_width": 64,
    "rolloff": 0.9475,
    "resampling_method": "sinc_interp_kaiser",
    "beta": 14.769656459379492,
}


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited resampling along the last axis (windowed sinc, Kaiser window)."""
    if from_rate == to_rate:
        return np.ascontiguousarray(samples, dtype=np.float32)
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


def probe_with_ffmpeg(path: Path) -> tuple[int, int, str]:
    command = [
        ffmpeg_executable("ffprobe"),
        "-v", "error",
        "-select_streams", "a:0",
        "-show_entries", "stream=sample_rate,channels,codec_name",
        "-of", "json",
        str(path),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, check=False)
    streams = json.loads(result.stdout or b"{}").get("streams", [])
    if result.returncode != 0 or not streams:
        detail = result.stderr.decode(errors="replace").strip() or "no audio stream"
        raise AudioDecodeError(f"{path}: not a readable audio file ({detail})")
    stream = streams[0]
    return int(stream["sample_rate"]), int(stream["channels"]), str(stream["codec_name"])


def _decode_with_ffmpeg(path: Path, input_args: list[str]) -> np.ndarray:
    command = [
        ffmpeg_executable(),
        "-nostdin", "-v", "error",
        *input_args,
        "-i", str(path),
        "-f", "f32le", "-c:a", "pcm_f32le",
        "-",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, check=False)
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip()
        raise AudioDecodeError(f"{path}: ffmpeg could not decode it ({detail})")
    return np.frombuffer(result.stdout, dtype="<f4").copy()
