"""Telephone channel simulation, checked against libsndfile, closed-form filter responses and the
definitions each function promises (SNR, gain, packet loss)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile

from dfd.dsp import channel
from dfd.dsp.audio_io import resample
from dfd.dsp.channel import (
    ChannelConfig,
    add_noise,
    apply_gain,
    band_limit,
    g711_round_trip,
    packet_loss,
    simulate_channel,
)
from tests.signals import RATE, tone

PACKET = 320  # 20 ms at 16 kHz
SETTLE = slice(RATE // 10, None)  # skip the first 0.1 s of filter transient


def _rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


def _gain_db(output: np.ndarray, reference: np.ndarray) -> float:
    return 20 * np.log10(_rms(output) / _rms(reference) + 1e-12)  # -240 dB for exact silence


def _snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    error = other.astype(np.float64) - reference
    return float(10 * np.log10(np.sum(np.square(reference, dtype=np.float64)) / np.sum(error**2)))


def _sndfile_round_trip(samples: np.ndarray, subtype: str) -> np.ndarray:
    """The same telephone hop built from libsndfile's G.711 coder instead of dfd's."""
    narrowband = resample(samples, RATE, 8000)
    pcm = np.clip(np.round(narrowband * 32768.0), -32768, 32767).astype(np.int16)
    buffer = io.BytesIO()
    soundfile.write(buffer, pcm, 8000, format="RAW", subtype=subtype)
    buffer.seek(0)
    decoded, _ = soundfile.read(
        buffer, format="RAW", subtype=subtype, samplerate=8000, channels=1, dtype="int16"
    )
    wideband = resample(decoded.astype(np.float32) / 32768.0, 8000, RATE)
    return wideband[: samples.shape[-1]]


def _butterworth_cascade_db(frequency: float, low: float, high: float) -> float:
    """Closed-form gain of two RBJ high-pass and two RBJ low-pass biquads with Q = 1/sqrt(2):
    each is a bilinear-transformed 2nd-order Butterworth, so |H|^2 = 1 / (1 + (w/wc)^(+-4)) on
    the pre-warped axis w = tan(pi f / fs)."""
    warp = np.tan(np.pi * frequency / RATE)
    low_pass = 1 / (1 + (warp / np.tan(np.pi * high / RATE)) ** 4)
    high_pass = 1 / (1 + (np.tan(np.pi * low / RATE) / warp) ** 4)
    return float(2 * 10 * np.log10(low_pass * high_pass))


# ---------------------------------------------------------------- g711_round_trip


@pytest.mark.parametrize("law", ["mulaw", "alaw"])
@pytest.mark.parametrize("length", [RATE, RATE + 1, 12_345])
def test_g711_round_trip_keeps_length_and_dtype(law: channel.Law, length: int) -> None:
    samples = tone(1000, length / RATE)
    out = g711_round_trip(samples, RATE, law)
    assert out.shape == samples.shape
    assert out.dtype == np.float32


@pytest.mark.parametrize("law", ["mulaw", "alaw"])
def test_g711_round_trip_snr_on_a_1khz_tone(law: channel.Law) -> None:
    samples = tone(1000, 2.0)
    out = g711_round_trip(samples, RATE, law)
    # Measured (0.5 amplitude, edges skipped): 33.95 dB mu-law, 33.03 dB A-law. A 1 kHz tone at
    # 8 kHz repeats every 8 samples, so its quantisation error is not noise-like and the SNR
    # swings 33-47 dB with amplitude; G.711's nominal figure for a sine is about 38 dB.
    snr = _snr_db(samples[SETTLE][:-1600], out[SETTLE][:-1600])
    assert 30.0 < snr < 45.0


@pytest.mark.parametrize("law", ["mulaw", "alaw"])
def test_g711_round_trip_snr_is_level_independent(law: channel.Law) -> None:
    """Companding keeps the SNR roughly flat over a 40 dB range of levels; an 8-bit linear
    quantiser would lose 40 dB. Measured at 1013 Hz: 34.6-39.5 dB over these amplitudes."""
    snrs = []
    for amplitude in (0.9, 0.1, 0.01):
        samples = tone(1013, 1.0, amplitude=amplitude)
        out = g711_round_trip(samples, RATE, law)
        snrs.append(_snr_db(samples[SETTLE][:-1600], out[SETTLE][:-1600]))
    assert min(snrs) > 32.0
    assert max(snrs) < 42.0


@pytest.mark.parametrize(("law", "subtype"), [("mulaw", "ULAW"), ("alaw", "ALAW")])
def test_g711_round_trip_matches_a_libsndfile_pipeline(
    law: channel.Law, subtype: str, rng: np.random.Generator
) -> None:
    # Noise reaches every segment and hits boundary ties (about 50 of 8000 codes differ here).
    # The tone is off the 8 kHz grid so it does not hit the same tie in every period (a 1 kHz
    # tone repeats every 8 samples, and a single tie then recurs 1000 times a second).
    # Measured: 58.9 dB (mu-law) and 49.7 dB (A-law) on the tone.
    noise = np.clip(0.3 * rng.standard_normal(RATE), -1, 1).astype(np.float32)
    for samples, floor_db in ((tone(1013, 1.0), 45.0), (noise, 45.0)):
        ours = g711_round_trip(samples, RATE, law)
        reference = _sndfile_round_trip(samples, subtype)
        assert ours.shape == reference.shape
        # Measured: identical on the tone; 54.5 dB (mu-law) and 55.8 dB (A-law) on the noise,
        # against about 35 dB for the codec itself, so a wrong coder could not pass.
        difference = np.sum((ours.astype(np.float64) - reference) ** 2)
        energy = np.sum(np.square(reference, dtype=np.float64))
        assert difference <= energy * 10 ** (-floor_db / 10)
        assert np.corrcoef(ours, reference)[0, 1] > 0.9999


@pytest.mark.parametrize("law", ["mulaw", "alaw"])
def test_g711_round_trip_removes_energy_above_4khz(law: channel.Law) -> None:
    samples = tone(6000, 1.0)
    out = g711_round_trip(samples, RATE, law)
    # Measured: -54.2 dB (mu-law) and -56.4 dB (A-law) steady state, -51 dB with the edges.
    assert _gain_db(out[SETTLE][:-1600], samples) < -45.0
    assert _gain_db(out, samples) < -45.0


def test_g711_round_trip_works_per_channel() -> None:
    stereo = np.stack([tone(700, 0.5), tone(1300, 0.5, amplitude=0.2)])
    out = g711_round_trip(stereo, RATE, "mulaw")
    assert out.shape == stereo.shape
    for row in range(2):
        # Batched resampling may round the last float32 bit differently.
        mono = g711_round_trip(stereo[row], RATE, "mulaw")
        np.testing.assert_allclose(out[row], mono, rtol=0, atol=1e-6)


# ---------------------------------------------------------------- band_limit


def test_band_limit_passes_1khz() -> None:
    samples = tone(1000, 1.0)
    out = band_limit(samples, RATE)
    assert out.shape == samples.shape
    assert out.dtype == np.float32
    # Measured: -0.10 dB.
    assert abs(_gain_db(out[SETTLE], samples[SETTLE])) < 1.0


@pytest.mark.parametrize(
    ("frequency", "floor_db"),
    [
        # Measured: -38.3 dB at 100 Hz, -39.0 dB at 6 kHz.
        (100.0, 35.0),
        (6000.0, 35.0),
    ],
)
def test_band_limit_attenuates_outside_the_band(frequency: float, floor_db: float) -> None:
    samples = tone(frequency, 1.0)
    out = band_limit(samples, RATE)
    assert _gain_db(out[SETTLE], samples[SETTLE]) < -floor_db


@pytest.mark.parametrize("frequency", [100.0, 300.0, 1000.0, 2000.0, 3400.0, 6000.0])
def test_band_limit_matches_the_closed_form_response(frequency: float) -> None:
    samples = tone(frequency, 1.0)
    out = band_limit(samples, RATE)
    measured = _gain_db(out[SETTLE], samples[SETTLE])
    # At each cut-off two Butterworth sections give -6.02 dB.
    # Measured: within 0.003 dB of the closed form at every frequency here.
    assert measured == pytest.approx(_butterworth_cascade_db(frequency, 300.0, 3400.0), abs=0.02)


def test_band_limit_honours_custom_cutoffs() -> None:
    samples = tone(2000, 1.0)
    out = band_limit(samples, RATE, low_hz=500.0, high_hz=2000.0)
    expected = _butterworth_cascade_db(2000.0, 500.0, 2000.0)
    assert _gain_db(out[SETTLE], samples[SETTLE]) == pytest.approx(expected, abs=0.02)


@pytest.mark.parametrize(
    ("low", "high"),
    [(0.0, 3400.0), (-10.0, 3400.0), (3400.0, 300.0), (1000.0, 1000.0), (300.0, 8000.0)],
)
def test_band_limit_rejects_invalid_cutoffs(low: float, high: float) -> None:
    with pytest.raises(ValueError, match="low_hz"):
        band_limit(tone(1000, 0.1), RATE, low_hz=low, high_hz=high)


# ---------------------------------------------------------------- add_noise


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 10.0, 30.0])
def test_add_noise_realises_the_requested_snr(snr_db: float, rng: np.random.Generator) -> None:
    samples = tone(440, 1.0)
    out = add_noise(samples, snr_db, rng)
    assert out.shape == samples.shape
    assert out.dtype == np.float32
    noise = out.astype(np.float64) - samples
    realised = 10 * np.log10(np.mean(np.square(samples, dtype=np.float64)) / np.mean(noise**2))
    # Measured: off by less than 1e-7 dB.
    assert realised == pytest.approx(snr_db, abs=0.001)
    # White and unrelated to the signal: zero mean and no projection on the tone.
    assert abs(np.mean(noise)) < 4 * np.std(noise) / np.sqrt(noise.size)
    assert abs(np.corrcoef(noise, samples)[0, 1]) < 4 / np.sqrt(noise.size)


def test_add_noise_rejects_silence(rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match="silence"):
        add_noise(np.zeros(RATE, dtype=np.float32), 10.0, rng)


# ---------------------------------------------------------------- apply_gain


def test_apply_gain_scales_amplitude() -> None:
    samples = tone(1000, 0.5, amplitude=0.25)
    doubled = apply_gain(samples, 6.0)
    assert doubled.dtype == np.float32
    # +6 dB is a factor of 10**0.3 = 1.9953, 0.24 % short of 2; +6.0206 dB doubles exactly.
    np.testing.assert_allclose(doubled, samples * 10**0.3, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(apply_gain(samples, 20 * np.log10(2)), 2 * samples, rtol=1e-6)
    np.testing.assert_allclose(apply_gain(samples, -20.0), samples / 10, rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(apply_gain(samples, 0.0), samples)


def test_apply_gain_clips_at_full_scale() -> None:
    samples = tone(1000, 0.5, amplitude=0.8)
    out = apply_gain(samples, 20 * np.log10(2))
    assert out.max() == 1.0
    assert out.min() == -1.0
    unclipped = np.abs(samples) < 0.5
    np.testing.assert_allclose(out[unclipped], 2 * samples[unclipped], rtol=1e-6)
    np.testing.assert_array_equal(out[samples >= 0.5], 1.0)
    np.testing.assert_array_equal(out[samples <= -0.5], -1.0)


# ---------------------------------------------------------------- packet_loss


def _packets(samples: np.ndarray) -> list[np.ndarray]:
    return [samples[start : start + PACKET] for start in range(0, samples.size, PACKET)]


def _lost_packets(samples: np.ndarray, zero_filled: np.ndarray) -> np.ndarray:
    """Which packets the zero-fill run dropped (the input must have no all-zero packet)."""
    assert all(np.any(packet) for packet in _packets(samples))
    return np.array([not np.any(packet) for packet in _packets(zero_filled)])


def test_packet_loss_rate_zero_is_identity(rng: np.random.Generator) -> None:
    samples = rng.uniform(-0.5, 0.5, RATE).astype(np.float32)
    out = packet_loss(samples, RATE, 0.0, rng)
    np.testing.assert_array_equal(out, samples)


@pytest.mark.parametrize("fill", ["zero", "repeat"])
def test_packet_loss_rate_one_silences_everything(fill: channel.LossFill) -> None:
    samples = tone(1000, 1.0) + np.float32(0.1)
    out = packet_loss(samples, RATE, 1.0, np.random.default_rng(0), fill=fill)
    np.testing.assert_array_equal(out, np.zeros_like(samples))


def test_packet_loss_drops_the_requested_fraction(rng: np.random.Generator) -> None:
    samples = rng.uniform(0.1, 0.5, 60 * RATE).astype(np.float32)  # 3000 packets, none zero
    out = packet_loss(samples, RATE, 0.3, rng)
    heard = out.reshape(-1, PACKET)
    lost = ~np.any(heard, axis=1)
    # Measured: 0.288 with this seed.
    assert lost.mean() == pytest.approx(0.3, abs=0.05)
    # Lost packets are silent as a whole; kept ones are untouched.
    np.testing.assert_array_equal(heard[~lost], samples.reshape(-1, PACKET)[~lost])
    assert np.count_nonzero(out) == np.count_nonzero(~lost) * PACKET


def test_packet_loss_repeat_replays_the_previous_output_packet() -> None:
    # Seed 11 loses the first packet, has bursts, and loses the final partial packet.
    samples = np.random.default_rng(99).uniform(0.1, 0.5, 10 * RATE + 123).astype(np.float32)
    zero = packet_loss(samples, RATE, 0.3, np.random.default_rng(11), fill="zero")
    repeat = packet_loss(samples, RATE, 0.3, np.random.default_rng(11), fill="repeat")
    lost = _lost_packets(samples, zero)
    assert lost[0]
    assert lost[-1]
    assert np.any(lost[1:] & lost[:-1])
    assert 0.2 < lost.mean() < 0.4

    heard = _packets(repeat)
    original = _packets(samples)
    np.testing.assert_array_equal(heard[0], 0.0)
    for index in range(1, len(heard)):
        if lost[index]:
            previous = heard[index - 1]
            np.testing.assert_array_equal(heard[index], previous[: heard[index].size])
        else:
            np.testing.assert_array_equal(heard[index], original[index])
    # A burst replays the last packet that arrived, not silence.
    first_good = int(np.argmin(lost))
    for index in range(first_good + 1, len(heard)):
        if lost[index]:
            assert np.any(heard[index])


def test_packet_loss_drops_the_same_packets_on_every_channel() -> None:
    stereo = np.random.default_rng(5).uniform(0.1, 0.5, (2, 2 * RATE)).astype(np.float32)
    out = packet_loss(stereo, RATE, 0.5, np.random.default_rng(3))
    left = np.array([not np.any(p) for p in _packets(out[0])])
    right = np.array([not np.any(p) for p in _packets(out[1])])
    assert left.any()
    np.testing.assert_array_equal(left, right)


def test_packet_loss_honours_packet_length() -> None:
    samples = np.random.default_rng(5).uniform(0.1, 0.5, 4 * RATE).astype(np.float32)
    out = packet_loss(samples, RATE, 0.5, np.random.default_rng(3), packet_ms=10.0)
    silent = out == 0
    # Runs of silence start on 160-sample boundaries and come in whole packets.
    edges = np.flatnonzero(np.diff(silent.astype(np.int8)))
    assert edges.size > 0
    np.testing.assert_array_equal((edges + 1) % 160, 0)


@pytest.mark.parametrize("loss_rate", [-0.1, 1.5, float("nan")])
def test_packet_loss_rejects_bad_rates(loss_rate: float, rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match="loss_rate"):
        packet_loss(tone(1000, 0.1), RATE, loss_rate, rng)


def test_packet_loss_rejects_packets_shorter_than_a_sample(rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match="packet_ms"):
        packet_loss(tone(1000, 0.1), RATE, 0.5, rng, packet_ms=0.01)


# ---------------------------------------------------------------- simulate_channel

FULL = ChannelConfig(
    gain_db=3.0,
    band_limit=True,
    snr_db=20.0,
    codec="alaw",
    packet_loss_rate=0.2,
    loss_fill="repeat",
)


@pytest.mark.parametrize(
    "config",
    [
        FULL,
        ChannelConfig(snr_db=15.0),
        ChannelConfig(packet_loss_rate=0.3),
        ChannelConfig(codec="mulaw", packet_loss_rate=0.1, packet_ms=30.0),
    ],
)
def test_simulate_channel_is_deterministic_per_seed(config: ChannelConfig) -> None:
    samples = tone(500, 1.0) + tone(1700, 1.0, amplitude=0.2)
    first = simulate_channel(samples, RATE, config, seed=7)
    again = simulate_channel(samples.copy(), RATE, config, seed=7)
    other = simulate_channel(samples, RATE, config, seed=8)
    assert first.dtype == np.float32
    assert first.shape == samples.shape
    assert first.tobytes() == again.tobytes()
    assert not np.array_equal(first, other)


def test_default_config_leaves_audio_unchanged(rng: np.random.Generator) -> None:
    samples = rng.uniform(-1, 1, RATE).astype(np.float32)
    out = simulate_channel(samples, RATE, ChannelConfig(), seed=3)
    assert out.tobytes() == samples.tobytes()


def test_seed_does_not_matter_without_randomness() -> None:
    samples = tone(800, 1.0)
    config = ChannelConfig(gain_db=-3.0, band_limit=True, codec="mulaw")
    np.testing.assert_array_equal(
        simulate_channel(samples, RATE, config, seed=1),
        simulate_channel(samples, RATE, config, seed=2),
    )


def test_simulate_channel_applies_stages_in_call_order() -> None:
    """Gain, band limit, noise, codec, then packet loss, drawing from one generator seeded once."""
    samples = tone(500, 1.0) + tone(1700, 1.0, amplitude=0.2)
    rng = np.random.default_rng(42)
    expected = apply_gain(samples, FULL.gain_db)
    expected = band_limit(expected, RATE)
    expected = add_noise(expected, 20.0, rng)
    expected = g711_round_trip(expected, RATE, "alaw")
    expected = packet_loss(expected, RATE, 0.2, rng, 20.0, "repeat")
    np.testing.assert_array_equal(simulate_channel(samples, RATE, FULL, seed=42), expected)


def test_band_limit_passes_overshoot_instead_of_clipping_each_stage() -> None:
    square = np.sign(tone(1000.0, 0.5)).astype(np.float32)  # full scale, rich in harmonics
    out = band_limit(square, RATE)
    assert np.abs(out).max() > 1.05  # the filtered square rings above full scale


def test_packet_loss_refuses_an_unknown_fill() -> None:
    with pytest.raises(ValueError, match="fill must be"):
        packet_loss(tone(1000.0, 0.1), RATE, 0.5, np.random.default_rng(0), fill="noise")  # type: ignore[arg-type]


def test_simulate_channel_never_returns_the_callers_array() -> None:
    samples = tone(1000.0, 0.1)
    out = simulate_channel(samples, RATE, ChannelConfig(), seed=0)
    assert not np.shares_memory(out, samples)
