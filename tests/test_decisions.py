"""Decisions per call.

The windows rule: k of the last n speech windows raise an alert once; it clears once when the
count falls to ``clear_at_most``. The evidence rule: capped, overlap-weighted log-odds accumulated
as a CUSUM raise at ``raise_at`` and clear at ``clear_at``. Under both, windows without speech
neither raise nor clear, and input too short to judge is ``inconclusive``, never ``bona fide``.
"""

from __future__ import annotations

import collections
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dfd.core.typed_config import ConfigError
from dfd.daemon.engine.decisions import (
    DEFAULT_RAISE_AT,
    DecisionPolicy,
    DecisionState,
    Transition,
    window_log_odds,
)

THRESHOLD = 0.5
HIGH, LOW = 0.9, 0.1
WINDOW_S, HOP_S = 2.0, 0.5
WINDOWS = DecisionPolicy(rule="windows")
EVIDENCE = DecisionPolicy(raise_at=6.0)


def feed(
    state: DecisionState, windows: list[tuple[float | None, bool]], hop_s: float = HOP_S
) -> list[Transition | None]:
    """Windows of 2 s every ``hop_s``, continuing after those the state has seen."""
    first = state.windows
    return [
        state.update(
            score, speech, THRESHOLD, (first + i) * hop_s, (first + i) * hop_s + WINDOW_S, WINDOW_S
        )
        for i, (score, speech) in enumerate(windows)
    ]


def speech(*scores: float) -> list[tuple[float | None, bool]]:
    return [(score, True) for score in scores]


def windows_rule(raise_over: int = 3, of: int = 5, clear_at_most: int = 0) -> DecisionPolicy:
    return DecisionPolicy(rule="windows", raise_over=raise_over, of=of, clear_at_most=clear_at_most)


# ------------------------------------------------------------------------- the windows rule


def test_three_of_five_raises_once_and_is_not_repeated_while_active() -> None:
    state = DecisionState(windows_rule(3, 5))
    transitions = feed(state, speech(HIGH, LOW, HIGH, LOW, HIGH, HIGH, HIGH, HIGH, HIGH))
    assert transitions == [None, None, None, None, "raised", None, None, None, None]
    assert state.active
    assert state.alerts == 1
    assert state.over == 5


def test_the_threshold_itself_counts_as_over() -> None:
    state = DecisionState(windows_rule(1, 1))
    assert feed(state, speech(THRESHOLD)) == ["raised"]
    assert feed(DecisionState(windows_rule(1, 1)), speech(0.4999)) == [None]


def test_only_the_last_n_speech_windows_count() -> None:
    """Three highs spread so that no five consecutive speech windows hold three."""
    state = DecisionState(windows_rule(3, 5))
    assert feed(state, speech(HIGH, LOW, LOW, LOW, HIGH, LOW, LOW, LOW, HIGH)) == [None] * 9
    assert state.over == 2  # the 5th and the 9th
    assert state.alerts == 0


def test_clears_once_when_the_history_drops_to_clear_at_most() -> None:
    state = DecisionState(windows_rule(3, 5, clear_at_most=1))
    transitions = feed(state, speech(HIGH, HIGH, HIGH, LOW, LOW, LOW, LOW, LOW, LOW))
    # over after each window: 1 2 3 3 3 2 1 1 0 -> raised at the 3rd, cleared at over == 1
    assert transitions == [None, None, "raised", None, None, None, "cleared", None, None]
    assert not state.active
    assert state.alerts == 1


def test_windows_rule_defaults_clear_only_when_no_recent_window_is_over() -> None:
    state = DecisionState(WINDOWS)  # 3 of 5, clear at 0
    transitions = feed(state, speech(HIGH, HIGH, HIGH, LOW, LOW, LOW, LOW, LOW))
    assert transitions == [None, None, "raised", None, None, None, None, "cleared"]


def test_a_second_episode_raises_again() -> None:
    state = DecisionState(windows_rule(2, 3))
    transitions = feed(state, speech(HIGH, HIGH, LOW, LOW, LOW, HIGH, HIGH))
    assert transitions == [None, "raised", None, None, "cleared", None, "raised"]
    assert state.alerts == 2
    assert state.verdict == "synthetic"


def test_windows_without_speech_neither_count_nor_clear() -> None:
    state = DecisionState(windows_rule(3, 5))
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
    state = DecisionState(windows_rule(2, 2))
    assert feed(state, [(HIGH, True), (None, True), (HIGH, True)]) == [None, None, "raised"]
    assert state.windows == 3
    assert state.speech_windows == 2


def test_counts_speech_seconds_and_max_score_cover_speech_windows_only() -> None:
    state = DecisionState(EVIDENCE)
    feed(state, [(0.99, False), (0.2, True), (None, False), (0.4, True), (0.3, True)])
    assert state.windows == 5
    assert state.speech_windows == 3
    assert state.max_score == 0.4
    # speech windows at 0.5-2.5, 1.5-3.5 and 2.0-4.0 s: 3.5 s of audio, overlaps counted once
    assert state.speech_s == pytest.approx(3.5)


@pytest.mark.parametrize(
    ("windows", "verdict"),
    [
        ([], "no speech"),
        ([(HIGH, False)] * 8, "no speech"),
        ([(None, True)] * 3, "no speech"),
        (speech(LOW, HIGH), "inconclusive"),  # two windows can never make three of five
        (speech(LOW, HIGH, LOW, HIGH, LOW), "bona fide"),
        (speech(HIGH, HIGH, HIGH), "synthetic"),
        (speech(HIGH, HIGH, HIGH, LOW, LOW, LOW, LOW, LOW), "synthetic"),  # raised, then cleared
    ],
)
def test_windows_rule_verdicts(windows: list[tuple[float | None, bool]], verdict: str) -> None:
    state = DecisionState(WINDOWS)
    feed(state, windows)
    assert state.verdict == verdict


policies = st.integers(1, 6).flatmap(
    lambda of: st.integers(1, of).flatmap(
        lambda raise_over: st.builds(
            windows_rule,
            raise_over=st.just(raise_over),
            of=st.just(of),
            clear_at_most=st.integers(0, raise_over - 1),
        )
    )
)
windows_strategy = st.lists(
    st.tuples(st.one_of(st.none(), st.floats(0.0, 1.0)), st.booleans()), max_size=80
)


def alternate(transitions: list[Transition | None], state: DecisionState) -> None:
    """Transitions alternate, starting with a raise; the alert count is the number of raises."""
    happened = [t for t in transitions if t is not None]
    assert happened == ["raised", "cleared"] * (len(happened) // 2) + ["raised"] * (
        len(happened) % 2
    )
    assert state.alerts == happened.count("raised")
    assert state.active == (len(happened) % 2 == 1)


@settings(max_examples=300, deadline=None)
@given(policy=policies, windows=windows_strategy)
def test_windows_rule_follows_an_independent_model_of_the_policy(
    policy: DecisionPolicy, windows: list[tuple[float | None, bool]]
) -> None:
    state = DecisionState(policy)
    transitions = feed(state, windows)
    alternate(transitions, state)
    judged = sum(1 for s, sp in windows if sp and s is not None)
    assert state.verdict == (
        "synthetic"
        if state.alerts
        else "no speech"
        if not judged
        else "bona fide"
        if judged >= policy.raise_over
        else "inconclusive"
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
    assert state.speech_windows == judged


# ------------------------------------------------------------------------ the evidence rule


def test_window_log_odds_are_capped_either_way() -> None:
    assert window_log_odds(0.5, 3.0) == 0.0
    assert window_log_odds(HIGH, 3.0) == pytest.approx(math.log(9))
    assert window_log_odds(1.0, 3.0) == 3.0
    assert window_log_odds(0.999999, 3.0) == 3.0
    assert window_log_odds(0.0, 3.0) == -3.0
    assert window_log_odds(1e-9, 2.0) == -2.0


def test_evidence_counts_each_second_of_audio_once() -> None:
    """The first window counts whole, each later one by the share of new audio (hop / window):
    at 0.9 a window, log 9 = 2.197 nats the first, 0.549 each next; 6 nats after 8 windows."""
    state = DecisionState(EVIDENCE)
    transitions = feed(state, speech(*[HIGH] * 10))
    first, step = math.log(9), math.log(9) * HOP_S / WINDOW_S
    raised_at = next(i for i in range(10) if first + i * step >= 6.0)
    assert raised_at == 7
    assert transitions == [None] * raised_at + ["raised"] + [None] * (9 - raised_at)
    assert state.evidence == 6.0  # capped at raise_at while active


def test_the_hop_does_not_change_how_much_speech_raises_an_alert() -> None:
    """The same stretch of synthetic speech raises after the same seconds of speech, whether
    windows come every 0.25 s or every 1 s (to within one hop)."""
    seconds = []
    for hop in (0.25, 0.5, 1.0):
        state = DecisionState(EVIDENCE)
        transitions = feed(state, speech(*[HIGH] * 100), hop_s=hop)
        seconds.append(WINDOW_S + transitions.index("raised") * hop)
    assert max(seconds) - min(seconds) <= 1.0


def test_a_long_genuine_call_with_some_high_windows_does_not_alert() -> None:
    """What the windows rule gets wrong: a real caller with one window in five scoring high
    trips 3 of 5 sooner or later in a long call; the evidence does not grow with the length."""
    rng = np.random.default_rng(0)
    scores = np.where(rng.random(2400) < 0.2, HIGH, LOW)  # 20 minutes at a 0.5 s hop
    windows = speech(*scores.tolist())
    by_windows = DecisionState(WINDOWS)
    feed(by_windows, windows)
    assert by_windows.alerts > 0
    by_evidence = DecisionState(EVIDENCE)
    assert set(feed(by_evidence, windows)) == {None}
    assert by_evidence.verdict == "bona fide"


def test_a_call_that_turns_synthetic_raises_after_the_turn_and_clears_when_it_turns_back() -> None:
    state = DecisionState(EVIDENCE)
    real = feed(state, speech(*[LOW] * 600))
    assert set(real) == {None}
    assert state.evidence == 0.0
    synthetic = feed(state, speech(*[0.97] * 40))
    raised = synthetic.index("raised")
    assert 2.0 + raised * HOP_S <= 6.0  # within 6 s of the turn, however long the real part
    back = feed(state, speech(*[LOW] * 40))
    assert back.count("cleared") == 1
    assert state.alerts == 1 and not state.active


def test_pauses_neither_raise_nor_clear_and_audio_after_them_counts_whole() -> None:
    state = DecisionState(EVIDENCE)
    feed(state, speech(HIGH))
    assert feed(state, [(1.0, False)] * 40) == [None] * 40
    assert state.evidence == pytest.approx(math.log(9))
    # the next speech window shares no audio with the last one: it counts whole
    feed(state, speech(HIGH))
    assert state.evidence == pytest.approx(2 * math.log(9))


def test_one_wild_window_cannot_raise_alone() -> None:
    state = DecisionState(EVIDENCE)
    assert feed(state, speech(1.0, LOW, LOW, 1.0, LOW, LOW)) == [None] * 6
    assert state.evidence <= EVIDENCE.max_window_evidence


@pytest.mark.parametrize(
    ("windows", "verdict"),
    [
        (speech(1.0), "inconclusive"),  # a 2 s clip scoring 1.0: too short, not bona fide
        (speech(*[1.0] * 3), "inconclusive"),  # 3 s of speech
        (speech(*[LOW] * 3), "inconclusive"),
        (speech(*[LOW] * 5), "bona fide"),  # 4 s of speech
        (speech(*[1.0] * 13), "synthetic"),  # 3 + 12 * 0.75 >= 6 nats within 8 s
        ([(LOW, True), (None, False), (LOW, True)], "inconclusive"),
    ],
)
def test_evidence_rule_verdicts(windows: list[tuple[float | None, bool]], verdict: str) -> None:
    state = DecisionState(EVIDENCE)
    feed(state, windows)
    assert state.verdict == verdict


def test_decisive_evidence_of_real_speech_needs_no_minimum() -> None:
    state = DecisionState(DecisionPolicy(raise_at=2.5, max_window_evidence=3.0))
    feed(state, speech(0.001))  # a single 2 s window at -3 nats, below -raise_at
    assert state.speech_s == 2.0
    assert state.verdict == "bona fide"


evidence_policies = st.builds(
    DecisionPolicy,
    raise_at=st.floats(0.5, 12.0),
    max_window_evidence=st.floats(0.5, 5.0),
    min_speech_s=st.floats(0.0, 8.0),
).flatmap(
    lambda p: st.builds(
        DecisionPolicy,
        raise_at=st.just(p.raise_at),
        clear_at=st.floats(0.0, p.raise_at * 0.99),
        max_window_evidence=st.just(p.max_window_evidence),
        min_speech_s=st.just(p.min_speech_s),
    )
)


@settings(max_examples=300, deadline=None)
@given(policy=evidence_policies, windows=windows_strategy)
def test_evidence_rule_follows_an_independent_model(
    policy: DecisionPolicy, windows: list[tuple[float | None, bool]]
) -> None:
    state = DecisionState(policy)
    transitions = feed(state, windows)
    alternate(transitions, state)
    raise_at = policy.raise_at
    assert raise_at is not None
    evidence = total = heard = 0.0
    active = False
    last_end: float | None = None
    for i, ((score, is_speech), transition) in enumerate(zip(windows, transitions, strict=True)):
        expected: Transition | None = None
        if is_speech and score is not None:
            start, end = i * HOP_S, i * HOP_S + WINDOW_S
            new = end - (start if last_end is None else max(start, last_end))
            last_end, heard = end, heard + new
            p = min(max(score, 1e-300), 1 - 1e-16)
            log_odds = float(
                np.clip(
                    math.log(p / (1 - p)), -policy.max_window_evidence, policy.max_window_evidence
                )
            )
            total += new / WINDOW_S * log_odds
            evidence = max(0.0, evidence + new / WINDOW_S * log_odds)
            if not active and evidence >= raise_at:
                active, expected, evidence = True, "raised", raise_at
            elif active:
                evidence = min(evidence, raise_at)
                if evidence <= policy.clear_at:
                    active, expected = False, "cleared"
        assert transition == expected
        assert 0.0 <= state.evidence <= (raise_at if state.active else math.inf)
    assert state.evidence == pytest.approx(evidence, abs=1e-6)
    assert state.speech_s == pytest.approx(heard)
    judged = sum(1 for s, sp in windows if sp and s is not None)
    expected_verdict = (
        "synthetic"
        if state.alerts
        else "no speech"
        if not judged
        else "bona fide"
        if heard >= policy.min_speech_s or total <= -raise_at
        else "inconclusive"
    )
    assert state.verdict == expected_verdict


def test_retune_keeps_the_state_when_the_rule_is_the_same() -> None:
    state = DecisionState(EVIDENCE)
    feed(state, speech(*[HIGH] * 10))
    assert state.active and state.evidence == 6.0
    assert state.retune(DecisionPolicy(raise_at=4.0))
    assert state.evidence == 4.0  # capped at the new operating point
    assert not state.retune(WINDOWS)  # another rule: the call keeps its own to the end
    assert state.policy.raise_at == 4.0
    windows_state = DecisionState(windows_rule(3, 5))
    assert not windows_state.retune(windows_rule(2, 4))
    assert windows_state.retune(windows_rule(2, 5))


def test_raise_at_comes_from_the_settings_then_the_models_then_the_default() -> None:
    assert DecisionPolicy(raise_at=4.0).with_raise_at(9.0).raise_at == 4.0
    assert DecisionPolicy().with_raise_at(9.0).raise_at == 9.0
    assert DecisionPolicy().with_raise_at(None).raise_at == DEFAULT_RAISE_AT
    with pytest.raises(ConfigError, match="clear_at"):
        DecisionPolicy(clear_at=5.0).with_raise_at(3.0)
    assert DecisionState(DecisionPolicy()).policy.raise_at == DEFAULT_RAISE_AT


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"raise_over": 0}, "raise_over"),
        ({"raise_over": 6, "of": 5}, "raise_over"),
        ({"raise_over": 3, "of": 5, "clear_at_most": 3}, "clear_at_most"),
        ({"raise_over": 3, "of": 5, "clear_at_most": 4}, "clear_at_most"),
        ({"clear_at_most": -1}, "clear_at_most"),
        ({"of": 0, "raise_over": 0}, "raise_over"),
        ({"rule": "vote"}, "rule"),
        ({"raise_at": 0.0}, "raise_at"),
        ({"raise_at": math.inf}, "raise_at"),
        ({"raise_at": 4.0, "clear_at": 4.0}, "clear_at"),
        ({"clear_at": -1.0}, "clear_at"),
        ({"max_window_evidence": 0.0}, "max_window_evidence"),
        ({"min_speech_s": -1.0}, "min_speech_s"),
    ],
)
def test_bad_policies_are_refused(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DecisionPolicy(**settings)  # type: ignore[arg-type]


def test_boundary_policies_are_accepted() -> None:
    windows_rule(1, 1, 0)
    windows_rule(5, 5, 4)
    DecisionPolicy(raise_at=1e-3, clear_at=0.0, min_speech_s=0.0)
