"""Choosing the evidence rule's operating point on calls, and measuring it there."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from dfd.daemon.engine.decisions import DecisionPolicy
from dfd.trainers.datasets.calls import CallKind, CallTrial
from dfd.trainers.operating_point import (
    MARGIN,
    ScoredWindow,
    choose_raise_at,
    decide_calls,
    operating_point,
    real_peak,
)

WINDOW_S, HOP_S = 2.0, 0.5
LOW, HIGH = 0.1, 0.95  # log-odds -2.2 and +2.94 nats


def windows(*scores: float) -> list[ScoredWindow]:
    return [ScoredWindow(i * HOP_S, i * HOP_S + WINDOW_S, s, True) for i, s in enumerate(scores)]


def call(call_id: str, kind: CallKind, synthetic_from_s: float, seconds: float) -> CallTrial:
    return CallTrial(
        call_id, Path(f"{call_id}.flac"), kind, "s", "en", "-", synthetic_from_s, seconds
    )


def test_no_real_call_may_alert_when_the_target_allows_none() -> None:
    peaks = [0.0, 1.0, 7.0, 2.5]
    assert choose_raise_at(peaks, 0.01, 3.0) == pytest.approx(MARGIN * 7.0)
    assert choose_raise_at(peaks, 0.0, 3.0) == pytest.approx(MARGIN * 7.0)


def test_the_target_lets_the_highest_peaks_through() -> None:
    peaks = [float(p) for p in range(1, 101)]  # 100 calls peaking at 1 .. 100 nats
    assert choose_raise_at(peaks, 0.01, 3.0) == pytest.approx(MARGIN * 99.0)  # one may alert
    assert choose_raise_at(peaks, 0.05, 3.0) == pytest.approx(MARGIN * 95.0)  # five may


def test_the_operating_point_never_rests_on_less_than_two_capped_windows() -> None:
    assert choose_raise_at([0.0, 0.5], 0.01, 3.0) == 6.0
    assert choose_raise_at([0.0], 0.01, 2.0) == 4.0
    with pytest.raises(ValueError, match="no real calls"):
        choose_raise_at([], 0.01, 3.0)
    with pytest.raises(ValueError, match="target"):
        choose_raise_at([1.0], 1.0, 3.0)


def test_the_real_peak_stops_before_the_turn() -> None:
    """A window reaching past the turn holds synthetic speech: not part of the real peak."""
    policy = DecisionPolicy()
    scores = windows(*[LOW] * 10, *[HIGH] * 30)  # the last low window ends at 6.5 s
    turning = call("t", "turns-synthetic", 6.5, 21.5)
    assert real_peak(turning, scores, policy, WINDOW_S) == 0.0
    real = call("r", "bonafide", 21.5, 21.5)  # the same windows, called real throughout
    assert real_peak(real, scores, policy, WINDOW_S) > 10.0


def test_an_operating_point_measured_on_its_calls() -> None:
    calls = [
        call("quiet", "bonafide", 30.0, 30.0),
        call("noisy", "bonafide", 30.0, 30.0),  # three high windows in a row: a small peak
        call("turns", "turns-synthetic", 11.5, 30.0),
        call("never", "turns-synthetic", 11.5, 30.0),  # the synthetic voice fools the model
    ]
    scored = {
        "quiet": windows(*[LOW] * 57),
        "noisy": windows(*[LOW] * 20, *[HIGH] * 3, *[LOW] * 34),
        "turns": windows(*[LOW] * 20, *[HIGH] * 37),
        "never": windows(*[LOW] * 57),
    }
    point = operating_point(calls, scored, DecisionPolicy(), WINDOW_S, 0.01, "calls.dev.tsv")
    noisy_peak = math.log(HIGH / (1 - HIGH)) * 3 * HOP_S / WINDOW_S  # each window a quarter new
    assert point.raise_at == pytest.approx(6.0)  # the floor: the noisy peak is lower
    assert noisy_peak < 6.0
    assert (point.real_calls, point.turning_calls, point.turning_detected) == (4, 2, 1)
    assert point.false_alarm_rate == 0.0
    assert point.real_hours == pytest.approx(round((30 + 30 + 11.5 + 11.5) / 3600, 4))
    # "turns": each high window brings 0.5 s of new audio, 2.94 / 4 = 0.736 nats: the ninth,
    # ending at 16 s, reaches 6
    assert point.median_time_to_alert_s == pytest.approx(16.0 - 11.5)
    assert point.chosen_on == "calls.dev.tsv"

    decided = decide_calls(calls, scored, DecisionPolicy(raise_at=2.0), 0.5, WINDOW_S)
    assert [d.false_alarm for d in decided] == [False, True, False, False]
    assert [d.time_to_alert_s for d in decided] == [None, None, pytest.approx(1.5), None]
