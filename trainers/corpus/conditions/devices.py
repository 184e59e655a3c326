"""The talker's device: the frequency response of a microphone or handset, or of a loudspeaker
that replays the voice (a packaged cabinet response), then its gain and its clipping.

The responses are cascades of audio-EQ-cookbook biquads (R. Bristow-Johnson), drawn from the
published shapes of cheap devices: a headset's thin low end and presence bump, a speakerphone's
small driver (no bass, a mid resonance), a handset's 300-3400 Hz emphasis (the IRS send curve's
rising slope), a laptop's tinny microphone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import signal as sps

from dfd.dsp.audio_io import PIPELINE_SAMPLE_RATE
from dfd.dsp.channel import apply_gain
from dfd.trainers.corpus.conditions.impulses import CABINET_IMPULSES, convolve_aligned, load_impulse

Shape = Literal["highpass", "lowpass", "peak", "lowshelf", "highshelf"]
Clipping = Literal["soft", "hard"]
CLIPPINGS: tuple[Clipping, ...] = ("hard", "soft")


@dataclass(frozen=True)
class Biquad:
    shape: Shape
    frequency_hz: float
    q: float = 1 / math.sqrt(2)
    gain_db: float = 0.0

    def coefficients(self, rate: int) -> np.ndarray:
        """One second-order section ``[b0, b1, b2, 1, a1, a2]`` (the cookbook's formulas)."""
        w0 = 2 * math.pi * self.frequency_hz / rate
        cos_w0, alpha = math.cos(w0), math.sin(w0) / (2 * self.q)
        amplitude = 10 ** (self.gain_db / 40)
        if self.shape == "highpass":
            b = [(1 + cos_w0) / 2, -(1 + cos_w0), (1 + cos_w0) / 2]
            a = [1 + alpha, -2 * cos_w0, 1 - alpha]
        elif self.shape == "lowpass":
            b = [(1 - cos_w0) / 2, 1 - cos_w0, (1 - cos_w0) / 2]
            a = [1 + alpha, -2 * cos_w0, 1 - alpha]
        elif self.shape == "peak":
            b = [1 + alpha * amplitude, -2 * cos_w0, 1 - alpha * amplitude]
            a = [1 + alpha / amplitude, -2 * cos_w0, 1 - alpha / amplitude]
        else:
            sign = 1 if self.shape == "lowshelf" else -1
            root = 2 * math.sqrt(amplitude) * alpha
            plus, minus = (amplitude + 1), (amplitude - 1)
            b = [
                amplitude * (plus - sign * minus * cos_w0 + root),
                sign * 2 * amplitude * (minus - sign * plus * cos_w0),
                amplitude * (plus - sign * minus * cos_w0 - root),
            ]
            a = [
                plus + sign * minus * cos_w0 + root,
                -sign * 2 * (minus + sign * plus * cos_w0),
                plus + sign * minus * cos_w0 - root,
            ]
        return np.array([*b, *a]) / a[0]


DEVICE_RESPONSES: dict[str, tuple[Biquad, ...]] = {
    "headset": (
        Biquad("highpass", 150.0),
        Biquad("peak", 800.0, 1.0, -3.0),
        Biquad("peak", 2500.0, 1.2, 5.0),
        Biquad("lowpass", 6000.0),
    ),
    "speakerphone": (
        Biquad("highpass", 400.0),
        Biquad("highpass", 400.0),
        Biquad("peak", 1400.0, 2.0, 6.0),
        Biquad("lowpass", 5000.0),
    ),
    "handset": (
        Biquad("highpass", 250.0),
        Biquad("lowshelf", 600.0, 0.7, -4.0),
        Biquad("peak", 2800.0, 1.0, 6.0),
        Biquad("lowpass", 3800.0),
    ),
    "laptop": (
        Biquad("highpass", 200.0),
        Biquad("lowshelf", 400.0, 0.7, -6.0),
        Biquad("peak", 4000.0, 1.5, 5.0),
    ),
}
CABINET = "cabinet"  # a response kind that samples one of the packaged cabinets
DEVICE_KINDS: tuple[str, ...] = (CABINET, *sorted(DEVICE_RESPONSES))


def device_response(
    samples: np.ndarray, response: str, rate: int = PIPELINE_SAMPLE_RATE
) -> np.ndarray:
    """``samples`` through a named EQ curve or cabinet response, at the dry RMS level."""
    if response in CABINET_IMPULSES:
        return convolve_aligned(samples, load_impulse(response))
    if response not in DEVICE_RESPONSES:
        raise ValueError(f"unknown device response {response!r}")
    sections = np.stack([stage.coefficients(rate) for stage in DEVICE_RESPONSES[response]])
    dry = samples.astype(np.float64)
    wet = sps.sosfilt(sections, dry)
    wet *= np.sqrt(np.mean(dry**2) / max(float(np.mean(wet**2)), 1e-30))
    out: np.ndarray = wet.astype(np.float32)
    return out


def clip(samples: np.ndarray, clipping: Clipping, drive_db: float) -> np.ndarray:
    """Overdrive: the peak is driven ``drive_db`` above the clipping point (full scale, or the
    knee of a tanh curve) and the result scaled back to the input's peak."""
    peak = float(np.max(np.abs(samples)))
    if peak == 0.0:
        return np.array(samples, dtype=np.float32, copy=True)
    driven = samples.astype(np.float64) / peak * 10 ** (drive_db / 20)
    shaped = np.clip(driven, -1.0, 1.0) if clipping == "hard" else np.tanh(driven)
    out: np.ndarray = (shaped * peak / np.max(np.abs(shaped))).astype(np.float32)
    return out


def apply_device(
    samples: np.ndarray,
    response: str | None,
    gain_db: float,
    clipping: Clipping | None,
    drive_db: float,
) -> np.ndarray:
    """Response, then clipping, then the line gain (which saturates at full scale)."""
    out = samples if response is None else device_response(samples, response)
    if clipping is not None:
        out = clip(out, clipping, drive_db)
    return apply_gain(out, gain_db)
