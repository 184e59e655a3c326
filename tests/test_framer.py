from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfd.dsp.framer import Window, WindowFramer, WindowGeometry

# Small geometries keep the property tests fast; the arithmetic is the same at 16 kHz.
geometries = st.sampled_from(
    [
        WindowGeometry(sample_rate=100, window_s=2.0, hop_s=0.5),  # 200 / 50: the default ratio
        WindowGeometry(sample_rate=100, window_s=1.0, hop_s=1.0),  # no overlap
        WindowGeometry(sample_rate=100, window_s=0.3, hop_s=0.7),  # gaps between windows
        WindowGeometry(sample_rate=1000, window_s=0.05, hop_s=0.03),  # hop does not divide window
    ]
)


def frame_all(framer: WindowFramer, chunks: list[np.ndarray]) -> list[Window]:
    windows = [window for chunk in chunks for window in framer.push(chunk)]
    tail = framer.finish()
    return windows + ([tail] if tail is not None else [])


def split(signal: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    bounds = np.cumsum([0, *sizes])
    chunks = [signal[a:b] for a, b in itertools.pairwise(bounds) if a < len(signal)]
    return [*chunks, signal[min(bounds[-1], len(signal)) :]]


def expected_starts(length: int, geometry: WindowGeometry) -> list[int]:
    window, hop = geometry.window_samples, geometry.hop_samples
    return list(range(0, length - window + 1, hop)) if length >= window else []


@settings(max_examples=150, deadline=None)
@given(
    geometry=geometries,
    length=st.integers(0, 1500),
    sizes=st.lists(st.integers(0, 400), max_size=60),
)
def test_windows_do_not_depend_on_how_the_stream_is_chunked(
    geometry: WindowGeometry, length: int, sizes: list[int]
) -> None:
    signal = np.random.default_rng(length).standard_normal(length).astype(np.float32)
    whole = frame_all(WindowFramer(geometry), [signal])
    chunked = frame_all(WindowFramer(geometry), split(signal, sizes))

    assert [w.start for w in chunked] == [w.start for w in whole]
    assert [w.valid_samples for w in chunked] == [w.valid_samples for w in whole]
    for a, b in zip(chunked, whole, strict=True):
        np.testing.assert_array_equal(a.samples, b.samples)


@settings(max_examples=150, deadline=None)
@given(geometry=geometries, length=st.integers(0, 1500), chunk=st.integers(1, 500))
def test_every_window_is_the_exact_slice_at_its_start(
    geometry: WindowGeometry, length: int, chunk: int
) -> None:
    signal = np.arange(length, dtype=np.float32)
    framer = WindowFramer(geometry)
    windows = [
        w for start in range(0, length, chunk) for w in framer.push(signal[start : start + chunk])
    ]

    assert [w.start for w in windows] == expected_starts(length, geometry)
    for window in windows:
        assert len(window.samples) == geometry.window_samples
        np.testing.assert_array_equal(window.samples, signal[window.start : window.end])


def test_default_geometry_is_two_seconds_every_half_second_at_16k() -> None:
    geometry = WindowGeometry()
    assert (geometry.window_samples, geometry.hop_samples) == (32_000, 8_000)
    signal = np.arange(16_000 * 5, dtype=np.float32)
    windows = WindowFramer(geometry).push(signal)
    # 5 s of audio: windows start at 0, 0.5, ..., 3.0 s
    assert [w.start for w in windows] == [i * 8_000 for i in range(7)]


def test_finish_pads_the_uncovered_tail_with_zeros() -> None:
    geometry = WindowGeometry(sample_rate=100, window_s=2.0, hop_s=0.5)
    signal = np.arange(1, 331, dtype=np.float32)  # 330 samples: windows at 0, 50, 100
    framer = WindowFramer(geometry)
    assert [w.start for w in framer.push(signal)] == [0, 50, 100]
    tail = framer.finish()
    assert tail is not None
    assert (tail.start, tail.valid_samples) == (150, 180)
    np.testing.assert_array_equal(tail.samples[:180], signal[150:])
    np.testing.assert_array_equal(tail.samples[180:], np.zeros(20))


def test_finish_returns_nothing_when_the_last_window_reached_the_end() -> None:
    geometry = WindowGeometry(sample_rate=100, window_s=2.0, hop_s=0.5)
    framer = WindowFramer(geometry)
    framer.push(np.ones(300, dtype=np.float32))  # last window 100..300 ends at the last sample
    assert framer.finish() is None
    assert WindowFramer(geometry).finish() is None  # nothing received at all


def test_a_stream_shorter_than_one_window_gives_one_padded_window() -> None:
    geometry = WindowGeometry(sample_rate=100, window_s=2.0, hop_s=0.5)
    framer = WindowFramer(geometry)
    assert framer.push(np.ones(120, dtype=np.float32)) == []
    tail = framer.finish()
    assert tail is not None
    assert (tail.start, tail.valid_samples, len(tail.samples)) == (0, 120, 200)
    assert tail.samples.sum() == 120


@pytest.mark.slow
def test_positions_do_not_drift_over_a_two_hour_call_in_20ms_packets() -> None:
    geometry = WindowGeometry()  # 16 kHz, 2 s every 0.5 s
    packet = 320  # 20 ms
    total = 2 * 3600 * 16_000
    framer = WindowFramer(geometry, dtype=np.int64)  # each sample holds its own stream index
    count = 0
    for start in range(0, total, packet):
        for window in framer.push(np.arange(start, start + packet, dtype=np.int64)):
            assert window.start == count * geometry.hop_samples
            assert window.samples[0] == window.start
            assert window.samples[-1] == window.start + geometry.window_samples - 1
            count += 1
    assert framer.samples_received == total
    assert count == (total - geometry.window_samples) // geometry.hop_samples + 1  # 14,397
    assert framer.finish() is None


@pytest.mark.parametrize(
    ("window_s", "hop_s", "rate"),
    [
        (2.0, 0.0, 16_000),
        (-1.0, 0.5, 16_000),
        (2.0, 0.5, 0),
        (2.0, 0.00003, 16_000),
        (0.0001, 0.5, 8_000),
    ],
)
def test_geometry_refuses_impossible_windows(window_s: float, hop_s: float, rate: int) -> None:
    with pytest.raises(ValueError, match=r"must be positive|whole number of samples"):
        WindowGeometry(sample_rate=rate, window_s=window_s, hop_s=hop_s)


def test_push_refuses_interleaved_multichannel_chunks() -> None:
    framer = WindowFramer(WindowGeometry())
    with pytest.raises(ValueError, match="one channel at a time"):
        framer.push(np.zeros((2, 320), dtype=np.float32))


def test_a_short_utterance_is_repeated_to_fill_one_window() -> None:
    from dfd.dsp.extract import repeat_to_window

    geometry = WindowGeometry(sample_rate=100, window_s=2.0, hop_s=0.5)
    short = np.arange(1, 71, dtype=np.float32)  # 70 samples
    filled = repeat_to_window(short, geometry)
    assert len(filled) == 200
    np.testing.assert_array_equal(filled[:70], short)
    np.testing.assert_array_equal(filled[70:140], short)
    np.testing.assert_array_equal(filled[140:], short[:60])
    long = np.arange(250, dtype=np.float32)
    assert repeat_to_window(long, geometry) is long


@settings(max_examples=150, deadline=None)
@given(
    geometry=geometries,
    length=st.integers(0, 1500),
    sizes=st.lists(st.integers(0, 400), max_size=60),
    lookahead=st.integers(0, 30),
)
def test_provisional_samples_cut_windows_early_and_are_never_kept(
    geometry: WindowGeometry, length: int, sizes: list[int], lookahead: int
) -> None:
    """After each chunk, the next ``lookahead`` samples offered provisionally (negated, to tell
    them apart): every window is cut once, at its place, and holds real samples up to what had
    been received when it was cut and the provisional ones after; the real stream goes on."""
    signal = np.arange(1, length + 1, dtype=np.float32)
    framer = WindowFramer(geometry)
    cut: list[tuple[Window, int]] = []  # each window, with the samples received when it was cut
    received = 0
    for chunk in split(signal, sizes):
        cut += [(w, received + len(chunk)) for w in framer.push(chunk)]
        received += len(chunk)
        provisional = -signal[received : received + lookahead]
        cut += [(w, received) for w in framer.push_provisional(provisional)]

    assert [w.start for w, _ in cut] == expected_starts(length, geometry)
    for window, known in cut:
        assert window.valid_samples == len(window.samples) == geometry.window_samples
        positions = np.arange(window.start, window.end, dtype=np.float32) + 1
        np.testing.assert_array_equal(np.abs(window.samples), positions)
        np.testing.assert_array_equal(window.samples < 0, positions > known)
