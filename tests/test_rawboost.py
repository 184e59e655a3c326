"""RawBoost distortions measured on tones and noise: filters, harmonics, impulses, SNR, level."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dfd.core.typed_config import ConfigError
from dfd.dsp.framer import WindowGeometry
from dfd.trainers.augment import augmented_window, channel_augment, random_window
from dfd.trainers.config import AugmentConfig, load_train_config
from dfd.trainers.rawboost import (
    FilterRange,
    RawBoostSettings,
    band_pass,
    coloured_noise,
    convolutive_noise,
    fir_filter,
    impulsive_noise,
    random_filter,
    rawboost,
)
from tests.signals import RATE, tone

GEOMETRY = WindowGeometry(RATE, 2.0, 0.5)
# One band that passes everything between 100 Hz and 7.9 kHz, at 0 dB.
FLAT = FilterRange(
    bands=1, min_centre_hz=4000, max_centre_hz=4000, min_width_hz=7800, max_width_hz=7800,
    min_taps=201, max_taps=201,
)  # fmt: skip


def level_db(samples: np.ndarray, hz: float, rate: int = RATE) -> float:
    """Amplitude (dB) of the Hann-windowed spectrum's strongest bin within 20 Hz of ``hz``."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    frequencies = np.fft.rfftfreq(len(samples), 1 / rate)
    near = np.abs(frequencies - hz) <= 20
    return float(20 * np.log10(spectrum[near].max() + 1e-12))


def test_band_pass_passes_its_band_and_stops_the_rest() -> None:
    taps = band_pass(101, 1000.0, 2000.0, RATE)
    response = np.abs(np.fft.rfft(taps, 1 << 14))
    frequencies = np.fft.rfftfreq(1 << 14, 1 / RATE)
    gain_db = 20 * np.log10(response + 1e-12)
    assert gain_db[np.argmin(np.abs(frequencies - 1500))] == pytest.approx(0.0, abs=0.1)
    assert gain_db[frequencies < 600].max() < -30
    assert gain_db[frequencies > 2500].max() < -30
    np.testing.assert_allclose(taps, taps[::-1], atol=1e-15)  # linear phase


def test_fir_filter_is_causal_convolution_cut_to_the_input_length() -> None:
    rng = np.random.default_rng(1)
    samples, taps = rng.standard_normal(1000), rng.standard_normal(37)
    np.testing.assert_allclose(fir_filter(samples, taps), np.convolve(samples, taps)[:1000])


def test_random_filter_peaks_at_its_drawn_gain() -> None:
    rng = np.random.default_rng(2)
    filters = FilterRange(min_gain_db=-6.0, max_gain_db=-6.0)
    taps = random_filter(filters, RATE, rng)
    peak_db = 20 * np.log10(np.abs(np.fft.rfft(taps, 1 << 14)).max())
    assert peak_db == pytest.approx(-6.0, abs=0.05)


def test_convolutive_noise_adds_harmonics_only_with_its_non_linear_orders() -> None:
    signal = tone(440.0, 2.0, amplitude=0.5).astype(np.float64)
    linear = convolutive_noise(
        signal, RATE, np.random.default_rng(3), RawBoostSettings(filters=FLAT, orders=1)
    )
    cubic = convolutive_noise(
        signal, RATE, np.random.default_rng(3), RawBoostSettings(filters=FLAT, orders=3)
    )
    assert level_db(linear, 440) - level_db(linear, 1320) > 60  # a linear filter: no harmonics
    # x**2 puts energy at 2f, x**3 at f and 3f, each 5-20 dB below the linear path and scaled
    # by the tone's amplitude (0.5 ** 2 = -12 dB, 0.5 ** 3 = -18 dB relative)
    assert level_db(cubic, 440) - level_db(cubic, 880) < 45
    assert level_db(cubic, 440) - level_db(cubic, 1320) < 55
    assert abs(np.mean(cubic)) < 1e-9  # the DC of the even powers is removed


def test_impulsive_noise_changes_at_most_its_density_of_samples() -> None:
    signal = np.random.default_rng(4).uniform(0.1, 0.5, 32_000)
    settings = RawBoostSettings(density_percent=10.0, impulse_gain=2.0)
    out = impulsive_noise(signal, np.random.default_rng(5), settings)
    changed = out != signal
    assert 0 < changed.sum() <= 3_200
    ratio = (out[changed] - signal[changed]) / signal[changed]
    assert np.abs(ratio).max() <= 2.0  # |g_sd * u1 * u2| <= g_sd


@pytest.mark.parametrize("seed", range(5))
def test_coloured_noise_is_added_at_an_snr_within_range(seed: int) -> None:
    signal = tone(300.0, 2.0, amplitude=0.3).astype(np.float64)
    settings = RawBoostSettings(min_snr_db=10.0, max_snr_db=40.0)
    out = coloured_noise(signal, RATE, np.random.default_rng(seed), settings)
    noise = out - signal
    snr_db = 10 * np.log10(np.sum(signal**2) / np.sum(noise**2))
    assert 10.0 - 1e-6 <= snr_db <= 40.0 + 1e-6


def test_rawboost_keeps_the_peak_level_and_is_seeded() -> None:
    signal = tone(500.0, 2.0, amplitude=0.25)
    algorithms = ("convolutive", "impulsive", "coloured")
    first = rawboost(signal, algorithms, RATE, np.random.default_rng(6))
    again = rawboost(signal, algorithms, RATE, np.random.default_rng(6))
    other = rawboost(signal, algorithms, RATE, np.random.default_rng(7))
    assert first.dtype == np.float32 and first.shape == signal.shape
    assert np.abs(first).max() == pytest.approx(0.25, rel=1e-5)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    silence = np.zeros(32_000, dtype=np.float32)
    np.testing.assert_array_equal(rawboost(silence, algorithms, RATE, np.random.default_rng(0)), 0)


def test_a_training_window_gets_rawboost_only_when_drawn() -> None:
    audio = tone(200.0, 3.0, amplitude=0.4)
    quiet = {"noise_probability": 0.0, "codec_probability": 0.0, "gain_db_max": 0.0}
    boosted = AugmentConfig(rawboost_probability=1.0, rawboost=("convolutive",), **quiet)
    rng, reference = np.random.default_rng(8), np.random.default_rng(8)
    window = augmented_window(audio, GEOMETRY, boosted, rng)
    reference.random()  # the RawBoost draw
    plain = channel_augment(
        random_window(audio, GEOMETRY, reference), AugmentConfig(**quiet), RATE, reference
    )
    assert window.shape == (GEOMETRY.window_samples,)
    assert np.abs(window).max() == pytest.approx(np.abs(plain).max(), rel=1e-5)
    assert np.corrcoef(window, plain)[0, 1] < 0.99  # the window was filtered


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"rawboost_probability": 1.5}, "rawboost_probability"),
        ({"rawboost_probability": 0.5, "rawboost": ()}, "rawboost"),
    ],
)
def test_bad_rawboost_settings_are_refused(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        AugmentConfig(**settings)  # type: ignore[arg-type]


def test_an_unknown_rawboost_algorithm_is_refused_in_a_recipe(tmp_path: Path) -> None:
    recipe = tmp_path / "bad.toml"
    recipe.write_text('family = "mfcc-cnn"\n[augment]\nrawboost = ["reverb"]\n')
    with pytest.raises(ConfigError, match="rawboost"):
        load_train_config(recipe)
