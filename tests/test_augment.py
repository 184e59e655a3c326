"""Time stretch and pitch shift of training windows, measured on tones; the window contract."""

from __future__ import annotations

import numpy as np
import pytest

from dfd.core.typed_config import ConfigError
from dfd.dsp.framer import WindowGeometry
from dfd.trainers.augment import (
    augmented_window,
    channel_augment,
    pitch_shift,
    random_window,
    stretch_and_shift,
    time_stretch,
)
from dfd.trainers.config import AugmentConfig
from tests.signals import RATE, tone

GEOMETRY = WindowGeometry(RATE, 2.0, 0.5)
QUIET = {"noise_probability": 0.0, "codec_probability": 0.0, "gain_db_max": 0.0}


def peak_hz(samples: np.ndarray, rate: int = RATE) -> float:
    """The strongest frequency, read off a Hann-windowed, heavily zero-padded FFT."""
    size = 1 << 20
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)), n=size))
    return float(np.fft.rfftfreq(size, 1 / rate)[np.argmax(spectrum)])


def envelope_hz(samples: np.ndarray, rate: int = RATE, frame: int = 160) -> float:
    """The strongest frequency (above 1 Hz) of the 10 ms RMS envelope: the tempo of a beat."""
    frames = samples[: len(samples) // frame * frame].reshape(-1, frame)
    envelope = np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1))
    envelope -= envelope.mean()
    size = 1 << 16
    spectrum = np.abs(np.fft.rfft(envelope * np.hanning(len(envelope)), n=size))
    frequencies = np.fft.rfftfreq(size, frame / rate)
    above = frequencies > 1.0
    return float(frequencies[above][np.argmax(spectrum[above])])


def beating_tone(seconds: float, carrier_hz: float = 440.0, beat_hz: float = 4.0) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    envelope = 1.0 + 0.8 * np.sin(2 * np.pi * beat_hz * t)
    return (0.4 * envelope * np.sin(2 * np.pi * carrier_hz * t)).astype(np.float32)


@pytest.mark.parametrize("semitones", [2.0, -2.0, 0.7])
def test_pitch_shift_moves_a_tone_by_the_semitone_ratio_and_keeps_its_length(
    semitones: float,
) -> None:
    source = tone(440.0, 2.0)
    shifted = pitch_shift(source, semitones, RATE)
    assert shifted.shape == source.shape
    expected = 440.0 * 2.0 ** (semitones / 12.0)
    # The ratio is rounded to 20 Hz / 16 kHz steps (0.125 %); edges left out of the measure.
    assert peak_hz(shifted[2000:-2000]) == pytest.approx(expected, rel=2e-3)


def test_pitch_shift_keeps_the_tempo() -> None:
    shifted = pitch_shift(beating_tone(4.0), 2.0, RATE)
    assert envelope_hz(shifted) == pytest.approx(4.0, rel=0.02)


@pytest.mark.parametrize("rate", [0.8, 1.1, 1.25])
def test_time_stretch_changes_the_tempo_and_duration_but_not_the_pitch(rate: float) -> None:
    source = beating_tone(4.0)
    stretched = time_stretch(source, rate)
    assert len(stretched) == round(len(source) / rate)
    assert envelope_hz(stretched) == pytest.approx(4.0 * rate, rel=0.02)
    assert peak_hz(stretched[2000:-2000]) == pytest.approx(440.0, rel=2e-3)


def test_stretch_and_shift_together() -> None:
    source = beating_tone(4.0)
    both = stretch_and_shift(source, 1.2, 3.0, RATE)
    assert abs(len(both) - len(source) / 1.2) < 64
    assert envelope_hz(both) == pytest.approx(4.8, rel=0.02)
    assert peak_hz(both[2000:-2000]) == pytest.approx(440.0 * 2.0**0.25, rel=2e-3)


@pytest.mark.parametrize("seconds", [0.5, 2.0, 6.0])
def test_augmented_windows_are_exactly_one_window_long_and_seeded(seconds: float) -> None:
    config = AugmentConfig(time_stretch_probability=1.0, pitch_shift_probability=1.0)
    audio = beating_tone(seconds)
    first = augmented_window(audio, GEOMETRY, config, np.random.default_rng(5))
    again = augmented_window(audio, GEOMETRY, config, np.random.default_rng(5))
    assert first.shape == (GEOMETRY.window_samples,)
    np.testing.assert_array_equal(first, again)
    other = augmented_window(audio, GEOMETRY, config, np.random.default_rng(6))
    assert not np.array_equal(first, other)


def test_a_stretched_window_is_cut_from_more_audio_not_padded() -> None:
    config = AugmentConfig(
        time_stretch_probability=1.0, stretch_min=1.25, stretch_max=1.25, **QUIET
    )
    window = augmented_window(beating_tone(6.0), GEOMETRY, config, np.random.default_rng(0))
    assert envelope_hz(window) == pytest.approx(5.0, rel=0.03)
    tail = window[-1600:]  # the last 100 ms carry the tone, not padding
    assert np.sqrt(np.mean(tail**2)) > 0.05


def test_without_stretch_or_shift_the_random_draws_are_unchanged() -> None:
    """Runs that never used them (and their resumes) draw what they always drew."""
    config = AugmentConfig(noise_probability=0.5, codec_probability=0.5)
    audio = beating_tone(3.0)
    rng, reference = np.random.default_rng(9), np.random.default_rng(9)
    for _ in range(5):
        got = augmented_window(audio, GEOMETRY, config, rng)
        expected = channel_augment(
            random_window(audio, GEOMETRY, reference), config, RATE, reference
        )
        np.testing.assert_array_equal(got, expected)
    assert rng.random() == reference.random()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"time_stretch_probability": 1.5}, "time_stretch_probability"),
        ({"pitch_shift_probability": -0.1}, "pitch_shift_probability"),
        ({"stretch_min": 1.2, "stretch_max": 1.1}, "stretch_min"),
        ({"stretch_min": 0.2}, "stretch_min"),
        ({"pitch_shift_semitones_max": 24.0}, "pitch_shift_semitones_max"),
    ],
)
def test_bad_stretch_and_shift_settings_are_refused(
    settings: dict[str, float], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        AugmentConfig(**settings)
