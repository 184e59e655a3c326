"""Training windows: a random cut of an utterance, then the seeded augmentation of ``[augment]``:
tempo and pitch, then RawBoost (``dfd.trainers.rawboost``), then gain, G.711 and noise.

Tempo and pitch are changed together in one pass, so a window is never resampled twice:

- time stretch by ``rate`` (``rate > 1``: faster, shorter) keeps the pitch: a phase vocoder
  (``torchaudio.functional.phase_vocoder`` on a 512-point STFT, hop 128);
- pitch shift by ``ratio = 2 ** (semitones / 12)`` keeps the tempo: a phase-vocoder stretch by
  ``1 / ratio`` (slower, longer) followed by band-limited resampling that plays the result
  ``ratio`` times faster (higher by ``ratio``, back to the original duration). The resampling is
  ``dfd.dsp.audio_io.resample`` (Kaiser windowed sinc) between two sample rates that are multiples
  of 20 Hz, so the pitch ratio is rounded to a multiple of 20 / sample rate (0.125 % at 16 kHz,
  about 2 cents) and the resampling kernel stays small.

A stretched window is cut from ``rate`` times as much audio as the window holds, then cropped to
exactly the window length: no padding, no silence at its end. Every random draw comes from the
run's generator, and none is made for an augmentation whose probability is 0, so a run without
them draws exactly what it drew before they existed.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torchaudio.functional as taf

from dfd.dsp.audio_io import resample
from dfd.dsp.channel import add_noise, apply_gain, g711_round_trip
from dfd.dsp.framer import WindowGeometry
from dfd.trainers.config import AugmentConfig
from dfd.trainers.rawboost import rawboost

STFT_SIZE = 512
STFT_HOP = 128
PITCH_RATE_STEP = 20  # Hz: the resampling rates are multiples of this
SOURCE_MARGIN = 2 * STFT_HOP  # extra input samples, so that rounding never leaves a window short


def random_window(
    audio: np.ndarray,
    geometry: WindowGeometry,
    rng: np.random.Generator,
    samples: int | None = None,
) -> np.ndarray:
    """A random cut of ``samples`` (default: one window) from ``audio``, repeated when shorter."""
    length = geometry.window_samples if samples is None else samples
    if len(audio) < length:  # as dfd.dsp.extract.repeat_to_window does for one window
        audio = np.tile(audio, -(-length // len(audio)))[:length]
    start = int(rng.integers(0, len(audio) - length + 1))
    return audio[start : start + length]


def augmented_window(
    audio: np.ndarray, geometry: WindowGeometry, config: AugmentConfig, rng: np.random.Generator
) -> np.ndarray:
    """A random window of ``audio``, augmented; always exactly ``geometry.window_samples`` long."""
    rate, semitones = 1.0, 0.0
    if config.time_stretch_probability > 0 and rng.random() < config.time_stretch_probability:
        rate = float(rng.uniform(config.stretch_min, config.stretch_max))
    if config.pitch_shift_probability > 0 and rng.random() < config.pitch_shift_probability:
        limit = config.pitch_shift_semitones_max
        semitones = float(rng.uniform(-limit, limit))
    length = geometry.window_samples
    if rate == 1.0 and semitones == 0.0:
        window = random_window(audio, geometry, rng)
    else:
        source = random_window(audio, geometry, rng, math.ceil(length * rate) + SOURCE_MARGIN)
        window = stretch_and_shift(source, rate, semitones, geometry.sample_rate)[:length]
        if len(window) < length:  # not expected: the margin covers rounding
            window = np.pad(window, (0, length - len(window)))
    if config.rawboost_probability > 0 and rng.random() < config.rawboost_probability:
        window = rawboost(window, config.rawboost, geometry.sample_rate, rng)
    return channel_augment(window, config, geometry.sample_rate, rng)


def channel_augment(
    window: np.ndarray, config: AugmentConfig, sample_rate: int, rng: np.random.Generator
) -> np.ndarray:
    """Random gain, then maybe a G.711 round trip, then maybe noise at a random SNR."""
    out = apply_gain(window, float(rng.uniform(-config.gain_db_max, config.gain_db_max)))
    if rng.random() < config.codec_probability:
        out = g711_round_trip(out, sample_rate, "mulaw" if rng.random() < 0.5 else "alaw")
    if rng.random() < config.noise_probability and np.any(out):
        out = add_noise(out, float(rng.uniform(config.snr_db_min, config.snr_db_max)), rng)
    return out


def time_stretch(samples: np.ndarray, rate: float) -> np.ndarray:
    """Tempo times ``rate``, pitch unchanged: ``round(len(samples) / rate)`` samples."""
    if rate <= 0:
        raise ValueError(f"time stretch rate must be positive, got {rate}")
    return _phase_vocoder(samples, rate)


def pitch_shift(samples: np.ndarray, semitones: float, sample_rate: int) -> np.ndarray:
    """Pitch times ``2 ** (semitones / 12)`` (rounded, see the module docstring), tempo and
    length unchanged."""
    shifted = stretch_and_shift(samples, 1.0, semitones, sample_rate)
    return _fit(shifted, len(samples))


def stretch_and_shift(
    samples: np.ndarray, rate: float, semitones: float, sample_rate: int
) -> np.ndarray:
    """Tempo times ``rate`` and pitch times ``2 ** (semitones / 12)`` in one phase-vocoder pass
    and at most one resampling: about ``len(samples) / rate`` samples."""
    if rate <= 0:
        raise ValueError(f"time stretch rate must be positive, got {rate}")
    if semitones == 0.0:
        return _phase_vocoder(samples, rate) if rate != 1.0 else samples.astype(np.float32)
    # Read as if recorded at ``source_rate`` and played at ``sample_rate``: pitch and tempo
    # times source_rate / sample_rate; the phase vocoder first undoes that tempo change.
    source_rate = round(sample_rate * 2.0 ** (semitones / 12.0) / PITCH_RATE_STEP)
    source_rate *= PITCH_RATE_STEP
    ratio = source_rate / sample_rate
    stretched = _phase_vocoder(samples, rate / ratio)
    shifted: np.ndarray = resample(stretched, source_rate, sample_rate)
    return shifted


def _phase_vocoder(samples: np.ndarray, rate: float) -> np.ndarray:
    audio = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    window = torch.hann_window(STFT_SIZE)
    spectrum = torch.stft(
        audio, STFT_SIZE, STFT_HOP, window=window, center=True, return_complex=True
    )
    # Expected phase advance of each bin over one hop: 2 pi f_k hop / fs = pi k hop / (N / 2).
    advance = torch.linspace(0.0, math.pi * STFT_HOP, STFT_SIZE // 2 + 1)[:, None]
    stretched = taf.phase_vocoder(spectrum, rate, advance)
    length = round(len(samples) / rate)
    out = torch.istft(stretched, STFT_SIZE, STFT_HOP, window=window, center=True, length=length)
    result: np.ndarray = out.numpy()
    return result


def _fit(samples: np.ndarray, length: int) -> np.ndarray:
    if len(samples) >= length:
        return samples[:length]
    return np.pad(samples, (0, length - len(samples)))
