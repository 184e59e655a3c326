"""Telephone channel simulation, for training augmentation and robustness tests.

Every function takes float32 audio in [-1, 1] along the last axis. Random ones take a
``numpy.random.Generator``; :func:`simulate_channel` derives one from a seed, so the same seed gives
the same output, sample for sample.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np
import torch
import torchaudio.functional as taf

from dfd.dsp import g711
from dfd.dsp.audio_io import resample

TELEPHONY_SAMPLE_RATE = 8_000
Law = Literal["mulaw", "alaw"]
LossFill = Literal["zero", "repeat"]


def float_to_pcm16(samples: np.ndarray) -> np.ndarray:
    return np.clip(np.round(samples * 32768.0), -32768, 32767).astype(np.int16)


def pcm16_to_float(pcm: np.ndarray) -> np.ndarray:
    return (pcm.astype(np.float32) / 32768.0).astype(np.float32)


def g711_round_trip(samples: np.ndarray, sample_rate: int, law: Law = "mulaw") -> np.ndarray:
    """Resample to 8 kHz, encode and decode with G.711, and resample back to ``sample_rate``."""
    encode, decode = {
        "mulaw": (g711.linear_to_ulaw, g711.ulaw_to_linear),
        "alaw": (g711.linear_to_alaw, g711.alaw_to_linear),
    }[law]
    narrowband = resample(samples, sample_rate, TELEPHONY_SAMPLE_RATE)
    decoded = pcm16_to_float(decode(encode(float_to_pcm16(narrowband))))
    restored = resample(decoded, TELEPHONY_SAMPLE_RATE, sample_rate)
    return _match_length(restored, samples.shape[-1])


def band_limit(
    samples: np.ndarray, sample_rate: int, low_hz: float = 300.0, high_hz: float = 3400.0
) -> np.ndarray:
    """Telephone band: two high-pass and two low-pass Butterworth biquads in cascade.

    Filtered with ``clamp=False``: torchaudio's biquad helpers clip every stage to [-1, 1], which
    would flatten the overshoot of loud transients instead of passing it on.
    """
    if not 0 < low_hz < high_hz < sample_rate / 2:
        raise ValueError(f"need 0 < low_hz < high_hz < {sample_rate / 2}, got {low_hz}, {high_hz}")
    audio = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)).to(torch.float64)
    stages = [_butterworth_biquad(sample_rate, low_hz, "highpass")] * 2
    stages += [_butterworth_biquad(sample_rate, high_hz, "lowpass")] * 2
    for b, a in stages:
        coefficients = torch.tensor([a, b], dtype=torch.float64)
        audio = taf.lfilter(audio, coefficients[0], coefficients[1], clamp=False)
    filtered: np.ndarray = audio.to(torch.float32).numpy()
    return filtered


def _butterworth_biquad(
    sample_rate: int, cutoff_hz: float, kind: Literal["highpass", "lowpass"]
) -> tuple[list[float], list[float]]:
    """(b, a) of a second-order Butterworth section, Q = 1/sqrt(2) (the audio EQ cookbook)."""
    w0 = 2 * math.pi * cutoff_hz / sample_rate
    alpha = math.sin(w0) / math.sqrt(2)
    cos_w0 = math.cos(w0)
    if kind == "lowpass":
        b = [(1 - cos_w0) / 2, 1 - cos_w0, (1 - cos_w0) / 2]
    else:
        b = [(1 + cos_w0) / 2, -(1 + cos_w0), (1 + cos_w0) / 2]
    a0 = 1 + alpha
    return [x / a0 for x in b], [1.0, -2 * cos_w0 / a0, (1 - alpha) / a0]


def add_noise(samples: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add white Gaussian noise scaled so the signal-to-noise ratio is exactly ``snr_db``."""
    signal_power = float(np.mean(np.square(samples, dtype=np.float64)))
    if signal_power == 0.0:
        raise ValueError("cannot set a signal-to-noise ratio on silence")
    noise = rng.standard_normal(samples.shape)
    noise *= np.sqrt(signal_power / (np.mean(np.square(noise)) * 10 ** (snr_db / 10)))
    return (samples + noise).astype(np.float32)


def apply_gain(samples: np.ndarray, gain_db: float) -> np.ndarray:
    """Scale by ``gain_db`` and clip to [-1, 1], as a saturating line would."""
    return np.clip(samples * 10 ** (gain_db / 20), -1.0, 1.0).astype(np.float32)


def packet_loss(
    samples: np.ndarray,
    sample_rate: int,
    loss_rate: float,
    rng: np.random.Generator,
    packet_ms: float = 20.0,
    fill: LossFill = "zero",
) -> np.ndarray:
    """Drop whole packets at random. ``zero`` leaves silence; ``repeat`` replays the previous packet
    as it was heard (so a burst repeats the last good packet; a loss at the start stays silent)."""
    if not 0.0 <= loss_rate <= 1.0:
        raise ValueError(f"loss_rate must lie in [0, 1], got {loss_rate}")
    if fill not in ("zero", "repeat"):
        raise ValueError(f"fill must be 'zero' or 'repeat', got {fill!r}")
    packet = round(packet_ms * sample_rate / 1000)
    if packet < 1:
        raise ValueError(f"packet_ms={packet_ms} is shorter than one sample")
    out = np.array(samples, dtype=np.float32, copy=True)
    packets = -(-out.shape[-1] // packet)
    for index in np.flatnonzero(rng.random(packets) < loss_rate):
        start = index * packet
        stop = min(start + packet, out.shape[-1])
        if fill == "repeat" and index > 0:
            out[..., start:stop] = out[..., start - packet : start - packet + (stop - start)]
        else:
            out[..., start:stop] = 0.0
    return out


@dataclasses.dataclass(frozen=True)
class ChannelConfig:
    """One telephone channel condition, applied in the order a call meets them: line gain, band
    limit, line noise, codec, packet loss in the network."""

    gain_db: float = 0.0
    band_limit: bool = False
    snr_db: float | None = None
    codec: Law | None = None
    packet_loss_rate: float = 0.0
    packet_ms: float = 20.0
    loss_fill: LossFill = "zero"


def simulate_channel(
    samples: np.ndarray, sample_rate: int, config: ChannelConfig, seed: int
) -> np.ndarray:
    """Apply ``config`` to ``samples``; deterministic for a given ``seed``."""
    rng = np.random.default_rng(seed)
    out = np.array(samples, dtype=np.float32, copy=True)
    if config.gain_db:
        out = apply_gain(out, config.gain_db)
    if config.band_limit:
        out = band_limit(out, sample_rate)
    if config.snr_db is not None:
        out = add_noise(out, config.snr_db, rng)
    if config.codec is not None:
        out = g711_round_trip(out, sample_rate, config.codec)
    if config.packet_loss_rate:
        out = packet_loss(
            out, sample_rate, config.packet_loss_rate, rng, config.packet_ms, config.loss_fill
        )
    return out


def _match_length(samples: np.ndarray, length: int) -> np.ndarray:
    if samples.shape[-1] >= length:
        return samples[..., :length]
    padding = [(0, 0)] * (samples.ndim - 1) + [(0, length - samples.shape[-1])]
    return np.pad(samples, padding)
