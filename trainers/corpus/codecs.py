"""Telephony codec conditions, applied through the real ffmpeg encoders and decoders.

One ffmpeg round trip per codec covers a whole list of files: they are joined with silent gaps
into one stream, encoded, decoded, re-aligned by the codec's measured delay, and cut apart again.
Thousands of short files then cost two ffmpeg processes per codec instead of thousands.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dfd.dsp.audio_io import PIPELINE_SAMPLE_RATE, ffmpeg_executable

GAP_S = 0.25
MAX_DELAY_S = 0.1


@dataclass(frozen=True)
class CodecCondition:
    name: str
    description: str
    encode_args: tuple[str, ...]  # ffmpeg output options, ending with the container format
    decode_format: str | None = None  # demuxer for headerless streams


CODEC_CONDITIONS: dict[str, CodecCondition] = {
    condition.name: condition
    for condition in (
        CodecCondition(
            "mulaw", "G.711 mu-law, 8 kHz", ("-ar", "8000", "-c:a", "pcm_mulaw", "-f", "wav")
        ),
        CodecCondition(
            "alaw", "G.711 A-law, 8 kHz", ("-ar", "8000", "-c:a", "pcm_alaw", "-f", "wav")
        ),
        CodecCondition(
            "g722",
            "G.722 64 kbit/s, 16 kHz",
            ("-ar", "16000", "-c:a", "g722", "-f", "g722"),
            "g722",
        ),
        CodecCondition(
            "gsm",
            "GSM 06.10 full rate, 8 kHz",
            ("-ar", "8000", "-c:a", "libgsm", "-f", "gsm"),
            "gsm",
        ),
        CodecCondition(
            "opus",
            "Opus 12 kbit/s VoIP, 16 kHz",
            ("-ar", "16000", "-c:a", "libopus", "-b:a", "12k", "-application", "voip", "-f", "ogg"),
        ),
    )
}


def codec_round_trip(
    segments: Sequence[np.ndarray], condition: CodecCondition, rate: int = PIPELINE_SAMPLE_RATE
) -> list[np.ndarray]:
    """Encode and decode every segment with ``condition``; same lengths out as in."""
    if not segments:
        return []
    gap = np.zeros(round(GAP_S * rate), dtype=np.float32)
    pieces, offsets, position = [gap], [], len(gap)
    for segment in segments:
        pieces += [np.asarray(segment, dtype=np.float32), gap]
        offsets.append(position)
        position += len(segment) + len(gap)
    clean = np.concatenate(pieces)
    coded = _align(clean, _ffmpeg_round_trip(clean, condition, rate), rate)
    return [coded[start : start + len(s)] for start, s in zip(offsets, segments, strict=True)]


def _ffmpeg_round_trip(samples: np.ndarray, condition: CodecCondition, rate: int) -> np.ndarray:
    raw = ["-f", "f32le", "-ar", str(rate), "-ac", "1"]
    encoded = _ffmpeg(
        [*raw, "-i", "pipe:0", *condition.encode_args, "pipe:1"],
        samples.astype("<f4").tobytes(),
        f"encode {condition.name}",
    )
    demuxer = ["-f", condition.decode_format] if condition.decode_format else []
    decoded = _ffmpeg(
        [*demuxer, "-i", "pipe:0", *raw, "pipe:1"], encoded, f"decode {condition.name}"
    )
    return np.frombuffer(decoded, dtype="<f4").copy()


def _ffmpeg(arguments: list[str], stdin: bytes, what: str) -> bytes:
    command = [ffmpeg_executable(), "-nostdin", "-v", "error", *arguments]
    result = subprocess.run(command, input=stdin, capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg could not {what}: {result.stderr.decode(errors='replace')}")
    return result.stdout


def _align(clean: np.ndarray, coded: np.ndarray, rate: int) -> np.ndarray:
    """Shift ``coded`` by the codec delay (found by cross-correlation) and match its length."""
    reach = round(MAX_DELAY_S * rate)
    probe = clean[: 30 * rate]
    window = coded[: len(probe) + reach]
    size = 1 << int(np.ceil(np.log2(len(probe) + len(window))))
    correlation = np.fft.irfft(np.fft.rfft(window, size) * np.conj(np.fft.rfft(probe, size)), size)
    lags = np.concatenate([np.arange(0, reach + 1), np.arange(-reach, 0)])
    candidates = np.concatenate([correlation[: reach + 1], correlation[-reach:]])
    delay = int(lags[np.argmax(candidates)])
    shifted = coded[delay:] if delay >= 0 else np.concatenate([np.zeros(-delay, np.float32), coded])
    if len(shifted) < len(clean):
        shifted = np.concatenate([shifted, np.zeros(len(clean) - len(shifted), np.float32)])
    return shifted[: len(clean)]
