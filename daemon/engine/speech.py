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

    def frame_samples(self, sample_rate: int) -> int:
        return max(1, round(self.frame_s * sample_rate))

    def active_fraction(self, samples: np.ndarray, sample_rate: int = 16_000) -> float:
        """Fraction of the window's frames above the level (0 for a steady pure tone)."""
        frame = self.frame_samples(sample_rate)
        count = len(samples) // frame
        if count == 0:
            return 0.0
        levels, spectra = self.measure_frames(samples[: count * frame].reshape(count, frame))
        return self.fraction(levels, spectra)

    def measure_frames(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each frame's level (dB re full scale) and power spectrum (zeros for the frames below
        the level, which never enter the tone test); each frame's measures depend on that frame
        alone."""
        centred = np.asarray(frames, dtype=np.float64)
        centred = centred - centred.mean(axis=1, keepdims=True)  # a DC offset is not speech
        power = np.mean(centred**2, axis=1)
        levels = 10.0 * np.log10(np.maximum(power, 1e-20))
        active = levels > self.active_level_dbfs
        spectra = np.zeros((len(frames), frames.shape[1] // 2 + 1))
        if active.any():
            window = np.hanning(frames.shape[1])
            spectra[active] = np.abs(np.fft.rfft(centred[active] * window, axis=1)) ** 2
        return levels, spectra

    def fraction(self, levels: np.ndarray, spectra: np.ndarray) -> float:
        """``active_fraction`` from the frames' measures."""
        active = levels > self.active_level_dbfs
        if active.any() and _is_steady_tone(spectra[active]):
            return 0.0
        return float(active.mean())


class SpeechFrames:
    """One stream's memory of the gate's frame measures. A stream's windows overlap (by three
    quarters at a 0.5 s hop), so each 20 ms frame is measured once, not once per window; the
    verdict is the one ``SpeechGate.is_speech`` gives the window on its own. Windows that do not
    start on a frame boundary of the stream (the tail window at the end of a call) are measured
    on their own."""

    def __init__(self, gate: SpeechGate, sample_rate: int) -> None:
        self.gate, self.sample_rate = gate, sample_rate
        self.frame = gate.frame_samples(sample_rate)
        self._first = 0  # stream frame index of the first frame held
        self._levels = np.zeros(0)
        self._spectra = np.zeros((0, self.frame // 2 + 1))

    def is_speech(self, samples: np.ndarray, start: int) -> bool:
        """Whether the window of ``samples`` starting at stream sample ``start`` is speech."""
        return self.active_fraction(samples, start) >= self.gate.min_active_fraction

    def active_fraction(self, samples: np.ndarray, start: int) -> float:
        """``SpeechGate.active_fraction`` of the window starting at stream sample ``start``."""
        first, count = start // self.frame, len(samples) // self.frame
        if start % self.frame or count == 0 or first < self._first:
            return self.gate.active_fraction(samples, self.sample_rate)
        # keep the frames from this window's first on (none after a gap); measure the rest
        keep = slice(first - self._first, None)
        levels, spectra = self._levels[keep], self._spectra[keep]
        known = len(levels)
        if known < count:
            frames = samples[known * self.frame : count * self.frame]
            new_levels, new_spectra = self.gate.measure_frames(
                frames.reshape(count - known, self.frame)
            )
            levels = np.concatenate([levels, new_levels])
            spectra = np.concatenate([spectra, new_spectra])
        self._first, self._levels, self._spectra = first, levels, spectra
        return self.gate.fraction(levels[:count], spectra[:count])


def _is_steady_tone(spectrum: np.ndarray) -> bool:
    """Whether frames with these power spectra (frames x bins) are a dial, busy, ringing or hold
    tone: one frequency or two (a US dial tone is 350 + 440 Hz, a busy tone 480 + 620 Hz), the
    same in every frame. True when nearly every frame holds
    nearly all its energy within one bin of the window's two strongest frequencies (speech
    spreads its energy over harmonics and formants that move)."""
    mean = spectrum.mean(axis=0)
    bands = np.zeros(len(mean), dtype=bool)
    for _ in range(2):
        peak = int(np.argmax(np.where(bands, -1.0, mean)))
        bands[max(0, peak - 1) : peak + 2] = True
    in_bands = spectrum[:, bands].sum(axis=1) / (spectrum.sum(axis=1) + 1e-20)
    return bool(np.mean(in_bands > 0.9) > 0.9)
