"""``StreamResampler``: a stream resampled chunk by chunk equals the whole signal resampled at once
(``audio_io.resample``, the offline path training and ``dfd features`` use), whatever the
chunking, with the output length of the whole-signal resampler and a bounded delay."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfd.dsp.audio_io import RESAMPLING_KERNEL, resample
from dfd.dsp.stream_resample import StreamResampler

TARGET = 16_000
RATES = [8_000, 11_025, 22_050, 44_100, 48_000, 32_000, 16_000]
TOLERANCE = 1e-5


def signal_of(length: int, seed: int) -> np.ndarray:
    """Noise (every frequency up to Nyquist, so aliasing or a misplaced kernel shows) plus a
    full-scale tone."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    noise = 0.3 * rng.standard_normal(length)
    return (noise + 0.6 * np.sin(2 * np.pi * 0.0371 * t)).astype(np.float32)


def split(signal: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    """``signal`` cut at the given sizes (0 gives an empty chunk), the rest as a last chunk."""
    bounds = np.minimum(np.cumsum([0, *sizes]), len(signal))
    return [signal[a:b] for a, b in itertools.pairwise(bounds)] + [signal[bounds[-1] :]]


def stream(resampler: StreamResampler, chunks: list[np.ndarray]) -> np.ndarray:
    pieces = [resampler.push(chunk) for chunk in chunks] + [resampler.finish()]
    for piece in pieces:
        assert piece.dtype == np.float32
        assert piece.ndim == 1
    return np.concatenate(pieces)


def expected_length(length: int, rate: int) -> int:
    return math.ceil(length * TARGET / rate)


def reduced_steps(rate: int) -> tuple[int, int]:
    common = math.gcd(rate, TARGET)
    return rate // common, TARGET // common


def kernel_reach(rate: int) -> int:
    """Input samples the whole-signal kernel reads after an output block's first input sample:
    its half width (torchaudio's formula, from the kernel settings) plus one input step."""
    step_in, step_out = reduced_steps(rate)
    base = min(step_in, step_out) * RESAMPLING_KERNEL["rolloff"]
    width = math.ceil(RESAMPLING_KERNEL["lowpass_filter_width"] * step_in / base)
    return width + step_in


@settings(max_examples=40, deadline=None)
@given(
    rate=st.sampled_from(RATES),
    length=st.integers(0, 4_000),
    sizes=st.lists(
        st.one_of(st.just(0), st.just(1), st.integers(2, 50), st.integers(51, 1_500)),
        max_size=30,
    ),
    seed=st.integers(0, 2**16),
)
def test_any_chunking_equals_the_whole_signal_resampled(
    rate: int, length: int, sizes: list[int], seed: int
) -> None:
    signal = signal_of(length, seed)
    chunked = stream(StreamResampler(rate, TARGET), split(signal, sizes))

    assert len(chunked) == expected_length(length, rate)
    if length:
        whole = resample(signal, rate, TARGET)
        assert len(whole) == len(chunked)
        np.testing.assert_allclose(chunked, whole, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("rate", RATES)
def test_one_sample_at_a_time_equals_the_whole_signal(rate: int) -> None:
    # Long enough for several kernel reaches and output blocks, short enough to push singly.
    length = kernel_reach(rate) * 3 + 101
    signal = signal_of(length, rate)
    chunks = [signal[i : i + 1] for i in range(length)]
    chunked = stream(StreamResampler(rate, TARGET), chunks)

    whole = resample(signal, rate, TARGET)
    assert len(chunked) == len(whole) == expected_length(length, rate)
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("rate", RATES)
def test_twenty_millisecond_packets_over_seconds_of_audio(rate: int) -> None:
    signal = signal_of(round(2.37 * rate), 7)
    packet = rate // 50
    chunks = [signal[i : i + packet] for i in range(0, len(signal), packet)]
    chunked = stream(StreamResampler(rate, TARGET), chunks)

    whole = resample(signal, rate, TARGET)
    assert len(chunked) == len(whole) == expected_length(len(signal), rate)
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("length", [1, 2, 3, 440, 441, 442])
@pytest.mark.parametrize("rate", [11_025, 44_100, 8_000])
def test_output_length_is_the_whole_signal_length_for_short_streams(rate: int, length: int) -> None:
    signal = signal_of(length, 3)
    chunked = stream(StreamResampler(rate, TARGET), [signal])
    assert len(chunked) == expected_length(length, rate)
    np.testing.assert_allclose(chunked, resample(signal, rate, TARGET), rtol=0, atol=TOLERANCE)


def test_an_empty_stream_gives_nothing() -> None:
    resampler = StreamResampler(8_000, TARGET)
    assert len(resampler.push(np.zeros(0, dtype=np.float32))) == 0
    assert len(resampler.finish()) == 0


def test_the_same_rate_passes_samples_through_unchanged_and_without_delay() -> None:
    resampler = StreamResampler(TARGET, TARGET)
    signal = signal_of(1_000, 1)
    assert resampler.delay_samples == 0
    out = [resampler.push(chunk) for chunk in split(signal, [0, 1, 300, 0, 7])]
    np.testing.assert_array_equal(np.concatenate(out), signal)
    assert len(resampler.finish()) == 0


@pytest.mark.parametrize("rate", [r for r in RATES if r != TARGET])
def test_delay_is_the_kernel_reach_rounded_up_to_a_step(rate: int) -> None:
    resampler = StreamResampler(rate, TARGET)
    step_in, _ = reduced_steps(rate)
    reach = kernel_reach(rate)
    assert reach <= resampler.delay_samples < reach + step_in
    assert resampler.delay_samples % step_in == 0
    assert resampler.delay_samples / rate < 0.1  # at most 80 ms (11.025 kHz), 8.6 ms at 8 kHz


@pytest.mark.parametrize("rate", [r for r in RATES if r != TARGET])
def test_nothing_older_than_the_delay_is_held_back(rate: int) -> None:
    """After every push, all output whose input lies more than ``delay_samples`` (plus the
    current partial step) in the past has been returned."""
    resampler = StreamResampler(rate, TARGET)
    step_in, step_out = reduced_steps(rate)
    signal = signal_of(rate // 2, 5)
    returned = pushed = 0
    for chunk in split(signal, [rate // 50] * 30):
        returned += len(resampler.push(chunk))
        pushed += len(chunk)
        settled_steps = max(0, pushed - resampler.delay_samples) // step_in
        assert returned == settled_steps * step_out


def test_bad_rates_are_refused() -> None:
    with pytest.raises(ValueError, match="sample rates must be positive"):
        StreamResampler(0, TARGET)
    with pytest.raises(ValueError, match="sample rates must be positive"):
        StreamResampler(8_000, -16_000)


@pytest.mark.parametrize("rate", [8_000, 44_100, 48_000])
def test_the_provisional_ending_is_the_input_so_far_resampled_whole_and_ends_nothing(
    rate: int,
) -> None:
    """What a live call cuts a window with: the output still to come as if the input held its
    last sample from now on (the whole-signal resampler's output for the input so far, so
    extended); the stream then goes on exactly as if it had not been asked."""
    signal = signal_of(rate // 3, 7)
    resampler = StreamResampler(rate, TARGET)
    cut = rate // 5
    returned = resampler.push(signal[:cut])
    provisional = resampler.provisional_ending()
    held = np.concatenate([signal[:cut], np.full(rate // 10, signal[cut - 1], dtype=np.float32)])
    expected = resample(held, rate, TARGET)[: expected_length(cut, rate)]
    np.testing.assert_allclose(
        np.concatenate([returned, provisional]), expected, rtol=0, atol=TOLERANCE
    )
    assert len(provisional) > 0
    assert np.array_equal(provisional, resampler.provisional_ending())  # asking twice: the same
    rest = stream(resampler, [signal[cut:]])
    np.testing.assert_allclose(
        np.concatenate([returned, rest]), resample(signal, rate, TARGET), rtol=0, atol=TOLERANCE
    )
    assert np.abs(provisional - rest[: len(provisional)]).max() > 0.01  # it was only provisional


def test_the_same_rate_has_no_provisional_ending() -> None:
    resampler = StreamResampler(TARGET, TARGET)
    resampler.push(signal_of(500, 2))
    assert len(resampler.provisional_ending()) == 0
