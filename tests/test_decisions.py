"""Decisions with hysteresis: k of the last n speech windows raise an alert once; it clears once
when the count falls to ``clear_at_most``; windows without speech neither raise nor clear."""

from __future__ import annotations

import collections

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfd.core.typed_config import ConfigError
from dfd.daemon.decisions import DecisionPolicy, DecisionState, Transition

THRESHOLD = 0.5
HIGH, LOW = 0.9, 0.1


def feed(state: DecisionState, windows: list[tuple[float | None, bool]]) -> list[Transition | None]:
    return [state.update(score, speech, THRESHOLD) for score, speech in windows]


def speech(*scores: float) -> list[tuple[float | None, bool]]:
    return [(score, True) for score in scores]


def test_three_of_five_raises_once_and_is_not_repeated_while_active() -> None:
    state = DecisionState(DecisionPolicy(raise_over=3, of=5))
    transitions = feed(state, speech(HIGH, LOW, HIGH, LOW, HIGH, HIGH, HIGH, HIGH, HIGH))
    assert transitions == [None, None, None, None, "raised", None, None, None, None]
    assert state.active
    assert state.alerts == 1
    assert state.over == 5


def test_the_threshold_itself_counts_as_over() -> None:
    state = DecisionState(DecisionPolicy(raise_over=1, of=1))
    assert state.update(THRESHOLD, True, THRESHOLD) == "raised"
    assert DecisionState(DecisionPolicy(1, 1)).update(0.4999, True, THRESHOLD) is None


def test_only_the_last_n_speech_windows_count() -> None:
    """Three highs spread so that no five consecutive speech windows hold three."""
    state = DecisionState(DecisionPolicy(raise_over=3, of=5))
    assert feed(state, speech(HIGH, LOW, LOW, LOW, HIGH, LOW, LOW, LOW, HIGH)) == [None] * 9
    assert state.over == 2  # the 5th and the 9th
    assert state.alerts == 0


def test_clears_once_when_the_history_drops_to_clear_at_most() -> None:
    state = DecisionState(DecisionPolicy(raise_over=3, of=5, clear_at_most=1))
    transitions = feed(state, speech(HIGH, HIGH, HIGH, LOW, LOW, LOW, LOW, LOW, LOW))
    # over after each window: 1 2 3 3 3 2 1 1 0 -> raised at the 3rd, cleared at over == 1
    assert transitions == [None, None, "raised", None, None, None, "cleared", None, None]
    assert not state.active
    assert state.alerts == 1


def test_default_clears_only_when_no_recent_window_is_over() -> None:
    state = DecisionState(DecisionPolicy())  # 3 of 5, clear at 0
    transitions = feed(state, speech(HIGH, HIGH, HIGH, LOW, LOW, LOW, LOW, LOW))
    assert transitions == [None, None, "raised", None, None, None, None, "cleared"]


def test_a_second_episode_raises_again() -> None:
    state = DecisionState(DecisionPolicy(raise_over=2, of=3))
    transitions = feed(state, speech(HIGH, HIGH, LOW, LOW, LOW, HIGH, HIGH))
    assert transitions == [None, "raised", None, None, "cleared", None, "raised"]
    assert state.alerts == 2
    assert state.verdict == "synthetic"


def test_windows_without_speech_neither_count_nor_clear() -> None:
    state = DecisionState(DecisionPolicy(raise_over=3, of=5))
    silent_high = [(HIGH, False)] * 10
    assert feed(state, silent_high) == [None] * 10
    assert state.over == 0  # a silent window scored high does not count
    assert feed(state, speech(HIGH, HIGH)) == [None, None]
    assert feed(state, [(LOW, False)] * 10 + [(None, False)] * 3) == [None] * 13
    assert state.over == 2  # pauses did not push the two highs out of the history
    assert feed(state, speech(HIGH)) == ["raised"]
    assert feed(state, [(LOW, False)] * 20) == [None] * 20
    assert state.active  # a long pause does not clear an alert


def test_unscored_windows_are_counted_but_not_judged() -> None:
    """A window shed or lost (score None) is a window, not a speech window."""
    state = DecisionState(DecisionPolicy(raise_over=2, of=2))
    assert feed(state, [(HIGH, True), (None, True), (HIGH, True)]) == [None, None, "raised"]
    assert state.windows == 3
    assert state.speech_windows == 2


def test_counts_and_max_score_cover_speech_windows_only() -> None:
    state = DecisionState(DecisionPolicy())
    feed(state, [(0.99, False), (0.2, True), (None, False), (0.4, True), (0.3, True)])
    assert state.windows == 5
    assert state.speech_windows == 3
    assert state.max_score == 0.4


@pytest.mark.parametrize(
    ("windows", "verdict"),
    [
        ([], "no speech"),
        ([(HIGH, False)] * 8, "no speech"),
        ([(None, True)] * 3, "no speech"),
        (speech(LOW, HIGH, LOW, HIGH, LOW), "bona fide"),
        (speech(HIGH, HIGH, HIGH), "synthetic"),
        (speech(HIGH, HIGH, HIGH, LOW, LOW, LOW, LOW, LOW), "synthetic"),  # raised, then cleared
    ],
)
def test_verdicts(windows: list[tuple[float | None, bool]], verdict: str) -> None:
    state = DecisionState(DecisionPolicy())
    feed(state, windows)
    assert state.verdict == verdict
    assert state.max_score is None or state.speech_windows > 0


policies = st.integers(1, 6).flatmap(
    lambda of: st.integers(1, of).flatmap(
        lambda raise_over: st.builds(
            DecisionPolicy,
            raise_over=st.just(raise_over),
            of=st.just(of),
            clear_at_most=st.integers(0, raise_over - 1),
        )
    )
)
windows_strategy = st.lists(
    st.tuples(st.one_of(st.none(), st.floats(0.0, 1.0)), st.booleans()), max_size=80
)


@settings(max_examples=300, deadline=None)
@given(policy=policies, windows=windows_strategy)
def test_transitions_follow_an_independent_model_of_the_policy(
    policy: DecisionPolicy, windows: list[tuple[float | None, bool]]
) -> None:
    state = DecisionState(policy)
    transitions = feed(state, windows)

    # Alternating, starting with a raise; the alert count is the number of raises.
    happened = [t for t in transitions if t is not None]
    assert happened == ["raised", "cleared"] * (len(happened) // 2) + ["raised"] * (
        len(happened) % 2
    )
    assert state.alerts == happened.count("raised")
    assert state.active == (len(happened) % 2 == 1)
    assert state.verdict == (
        "synthetic" if state.alerts else "bona fide" if state.speech_windows else "no speech"
    )

    # The same decisions, from the definition: over = highs among the last `of` judged windows.
    history: collections.deque[bool] = collections.deque(maxlen=policy.of)
    active = False
    for (score, is_speech), transition in zip(windows, transitions, strict=True):
        expected: Transition | None = None
        if is_speech and score is not None:
            history.append(score >= THRESHOLD)
            over = sum(history)
            if not active and over >= policy.raise_over:
                active, expected = True, "raised"
            elif active and over <= policy.clear_at_most:
                active, expected = False, "cleared"
        assert transition == expected
    assert state.windows == len(windows)
    assert state.speech_windows == sum(1 for s, sp in windows if sp and s is not None)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"raise_over": 0}, "raise_over"),
        ({"raise_over": 6, "of": 5}, "raise_over"),
        ({"raise_over": 3, "of": 5, "clear_at_most": 3}, "clear_at_most"),
        ({"raise_over": 3, "of": 5, "clear_at_most": 4}, "clear_at_most"),
        ({"clear_at_most": -1}, "clear_at_most"),
        ({"of": 0, "raise_over": 0}, "raise_over"),
    ],
)
def test_bad_policies_are_refused(settings: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DecisionPolicy(**settings)


def test_boundary_policies_are_accepted() -> None:
    DecisionPolicy(raise_over=1, of=1, clear_at_most=0)
    DecisionPolicy(raise_over=5, of=5, clear_at_most=4)
