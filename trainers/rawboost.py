"""RawBoost: data boosting on the raw waveform (Tak et al., "RawBoost: A Raw Data Boosting and
Augmentation Method applied to Automatic Speaker Verification Anti-Spoofing", ICASSP 2022).

Three distortions, each drawn from the run's generator, applied in series in the order given:

- ``convolutive``: linear and non-linear convolutive noise. The window and its powers ``x**1 ..
  x**orders`` each go through a random FIR filter (a cascade of ``bands`` Hamming-window
  band-pass filters with random centre, width and length, scaled to a random peak gain in dB,
  lower by a random bias for the non-linear terms) and are summed: the stationary colouring and
  harmonic distortion of microphones, amplifiers and lines.
- ``impulsive``: signal-dependent impulsive noise. A random ``density`` percent of the samples
  are changed by ``x * g_sd * u1 * u2`` with ``u1, u2`` uniform in [-1, 1]: clicks and
  quantisation bursts.
- ``coloured``: stationary signal-independent additive noise. White noise coloured by a random
  FIR filter as above, added at a random SNR.

Differences from the reference code (``TakHemlata/RawBoost-antispoofing``), which is not copied:
filters are designed and applied with numpy FFTs (the reference calls scipy's ``firwin`` and
``lfilter``, about ten times slower on a 2 s window), and every distorted window is scaled back
to the peak level it came in with (the reference normalises to full scale), so RawBoost does not
undo the level augmentation that runs before it. Defaults are the reference's published ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

import numpy as np

RawBoostAlgorithm = Literal["convolutive", "impulsive", "coloured"]
RAWBOOST_ALGORITHMS: tuple[RawBoostAlgorithm, ...] = ("convolutive", "impulsive", "coloured")


@dataclasses.dataclass(frozen=True)
class FilterRange:
    """The random band-pass cascade of the convolutive and coloured distortions."""

    bands: int = 5
    min_centre_hz: float = 20.0
    max_centre_hz: float = 8000.0
    min_width_hz: float = 100.0
    max_width_hz: float = 1000.0
    min_taps: int = 10
    max_taps: int = 100
    min_gain_db: float = 0.0
    max_gain_db: float = 0.0


@dataclasses.dataclass(frozen=True)
class RawBoostSettings:
    filters: FilterRange = FilterRange()
    orders: int = 5  # convolutive: powers of the window that are filtered and summed
    min_bias_db: float = 5.0  # convolutive: gain lowered by this much for the non-linear terms
    max_bias_db: float = 20.0
    density_percent: float = 10.0  # impulsive: at most this percent of samples hit
    impulse_gain: float = 2.0  # impulsive: g_sd
    min_snr_db: float = 10.0  # coloured
    max_snr_db: float = 40.0


def rawboost(
    window: np.ndarray,
    algorithms: Sequence[RawBoostAlgorithm],
    sample_rate: int,
    rng: np.random.Generator,
    settings: RawBoostSettings = RawBoostSettings(),
) -> np.ndarray:
    """``window`` distorted by each of ``algorithms`` in turn, at its original peak level."""
    peak = float(np.max(np.abs(window))) if len(window) else 0.0
    if peak == 0.0:
        return window.astype(np.float32)
    out = window.astype(np.float64)
    for algorithm in algorithms:
        if algorithm == "convolutive":
            out = convolutive_noise(out, sample_rate, rng, settings)
        elif algorithm == "impulsive":
            out = impulsive_noise(out, rng, settings)
        elif algorithm == "coloured":
            out = coloured_noise(out, sample_rate, rng, settings)
        else:
            raise ValueError(f"unknown RawBoost algorithm {algorithm!r}")
    new_peak = float(np.max(np.abs(out)))
    if new_peak > 0.0:
        out *= peak / new_peak
    return out.astype(np.float32)


def random_filter(
    filters: FilterRange, sample_rate: int, rng: np.random.Generator, gain_offset_db: float = 0.0
) -> np.ndarray:
    """A cascade of ``filters.bands`` random band-pass FIR filters, peak gain at a random dB."""
    nyquist = sample_rate / 2.0
    taps = np.ones(1)
    for _ in range(filters.bands):
        centre = rng.uniform(filters.min_centre_hz, filters.max_centre_hz)
        width = rng.uniform(filters.min_width_hz, filters.max_width_hz)
        length = int(rng.integers(filters.min_taps, filters.max_taps + 1))
        length += 1 - length % 2  # odd, so the band-pass is a type I linear-phase filter
        low = max(centre - width / 2.0, 1e-3)
        high = min(centre + width / 2.0, nyquist - 1e-3)
        taps = np.convolve(taps, band_pass(length, low, high, sample_rate))
    gain_db = rng.uniform(filters.min_gain_db, filters.max_gain_db) + gain_offset_db
    response = np.abs(np.fft.rfft(taps, 4096))
    peak = float(response.max())
    if peak > 0.0:
        taps = taps * (10.0 ** (gain_db / 20.0) / peak)
    return taps


def band_pass(length: int, low_hz: float, high_hz: float, sample_rate: int) -> np.ndarray:
    """Hamming-window FIR band-pass ``[low_hz, high_hz]`` of odd ``length``, unit gain at the
    band's centre (as scipy's ``firwin(length, [low, high], pass_zero=False)``)."""
    if high_hz <= low_hz:  # a band squeezed against Nyquist: let it through as a high-pass
        low_hz = max(high_hz - 1.0, 1e-3)
    n = np.arange(length) - (length - 1) / 2.0
    low, high = 2.0 * low_hz / sample_rate, 2.0 * high_hz / sample_rate
    taps = high * np.sinc(high * n) - low * np.sinc(low * n)
    taps *= np.hamming(length)
    centre = (low + high) / 2.0  # normalised to Nyquist = 1
    gain = float(abs(np.sum(taps * np.exp(-1j * np.pi * centre * n))))
    normalised: np.ndarray = taps / gain if gain > 0 else taps
    return normalised


def fir_filter(samples: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """Causal FIR filtering (``lfilter(taps, 1, samples)``), by FFT; same length as ``samples``."""
    size = len(samples) + len(taps) - 1
    fft_size = 1 << (size - 1).bit_length()
    product = np.fft.rfft(samples, fft_size) * np.fft.rfft(taps, fft_size)
    return np.fft.irfft(product, fft_size)[: len(samples)]


def convolutive_noise(
    samples: np.ndarray, sample_rate: int, rng: np.random.Generator, settings: RawBoostSettings
) -> np.ndarray:
    out = np.zeros_like(samples)
    for order in range(1, settings.orders + 1):
        bias = 0.0 if order == 1 else -rng.uniform(settings.min_bias_db, settings.max_bias_db)
        taps = random_filter(settings.filters, sample_rate, rng, gain_offset_db=bias)
        out += fir_filter(samples**order, taps)
    centred: np.ndarray = out - out.mean()
    return centred


def impulsive_noise(
    samples: np.ndarray, rng: np.random.Generator, settings: RawBoostSettings
) -> np.ndarray:
    count = int(len(samples) * rng.uniform(0.0, settings.density_percent) / 100.0)
    where = rng.permutation(len(samples))[:count]
    factor = (2.0 * rng.random(count) - 1.0) * (2.0 * rng.random(count) - 1.0)
    out = samples.copy()
    out[where] += settings.impulse_gain * samples[where] * factor
    return out


def coloured_noise(
    samples: np.ndarray, sample_rate: int, rng: np.random.Generator, settings: RawBoostSettings
) -> np.ndarray:
    noise = fir_filter(
        rng.standard_normal(len(samples)), random_filter(settings.filters, sample_rate, rng)
    )
    noise_norm, signal_norm = float(np.linalg.norm(noise)), float(np.linalg.norm(samples))
    if noise_norm == 0.0 or signal_norm == 0.0:
        return samples
    snr_db = float(rng.uniform(settings.min_snr_db, settings.max_snr_db))
    noisy: np.ndarray = samples + noise * (signal_norm / noise_norm / 10.0 ** (snr_db / 20.0))
    return noisy
