"""The speech gate: does a window hold enough speech to be judged?

Silence, line noise and hold tones say nothing about whether a voice is synthetic, and a detector
scoring them produces arbitrary numbers. A window counts as speech when at least
``min_active_fraction`` of its 20 ms frames are louder than ``active_level_dbfs`` (RMS, relative
to full scale) and it is not one steady tone. Windows that fail the gate are still scored in an
audit (``dfd replay``), marked ``speech: false``; they never count towards an alert.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from dfd.core.typed_config import ConfigError


@dataclasses.dataclass(frozen=True)
class SpeechGate:
    active_level_dbfs: float = -45.0
    min_active_fraction: float = 0.2
    frame_s: float = 0.02

    def __post_init__(self) -> None:
        if not 0.0 < self.min_active_fraction <= 1.0:
            raise ConfigError("speech.min_active_fraction must lie in (0, 1]")
        if self.frame_s <= 0:
            raise ConfigError("speech.frame_s must be positive")

    def is_speech(self, samples: np.ndarray, sample_rate: int = 16_000) -> bool:
        return bool(self.active_fraction(samples, sample_rate) >= self.min_active_fraction)

    def active_fraction(self, samples: np.ndarray, sample_rate: int = 16_000) -> float:
        """Fraction of the window's frames above the level (0 for a steady pure tone)."""
        frame = max(1, round(self.frame_s * sample_rate))
        count = len(samples) // frame
        if count == 0:
            return 0.0
        frames = np.asarray(samples[: count * frame], dtype=np.float64).reshape(count, frame)
        frames = frames - frames.mean(axis=1, keepdims=True)  # a DC offset is not speech
        power = np.mean(frames**2, axis=1)
        level_db = 10.0 * np.log10(np.maximum(power, 1e-20))
        active = level_db > self.active_level_dbfs
        if active.any() and _is_steady_tone(frames[active]):
            return 0.0
        return float(active.mean())


def _is_steady_tone(frames: np.ndarray) -> bool:
    """A dial, busy, ringing or hold tone: one frequency or two (a US dial tone is 350 + 440 Hz,
    a busy tone 480 + 620 Hz), the same in every frame. True when nearly every frame holds
    nearly all its energy within one bin of the window's two strongest frequencies (speech
    spreads its energy over harmonics and formants that move)."""
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(frames.shape[1]), axis=1)) ** 2
    mean = spectrum.mean(axis=0)
    bands = np.zeros(len(mean), dtype=bool)
    for _ in range(2):
        peak = int(np.argmax(np.where(bands, -1.0, mean)))
        bands[max(0, peak - 1) : peak + 2] = True
    in_bands = spectrum[:, bands].sum(axis=1) / (spectrum.sum(axis=1) + 1e-20)
    return bool(np.mean(in_bands > 0.9) > 0.9)
