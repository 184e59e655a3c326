"""Decisions per call: when a stream's windows add up to an alert, and what its verdict is.

Two rules, chosen by ``[decision] rule``:

``evidence`` (the default)
    Each speech window's calibrated score ``p`` = P(synthetic) gives its log-odds
    ``log(p / (1 - p))``, capped at ``max_window_evidence`` nats either way so that one wild
    window cannot decide a call. Windows overlap (a 2 s window every 0.5 s shares 1.5 s with the
    one before), so a window's log-odds is weighted by the share of its audio that no earlier
    speech window of the stream covered: the first counts whole, each later one ``hop / window``.
    Evidence is therefore counted per second of speech heard, whatever the hop.

    The weighted log-odds are accumulated as a CUSUM (Page's test): ``E = max(0, E + w * l)``.
    Real speech pulls ``E`` back towards 0, so the evidence of a long genuine call does not grow
    with its length: a false alarm needs a run of speech that looks synthetic in itself, not
    just a long call. An alert is **raised** when ``E`` reaches ``raise_at`` nats; while it is
    active ``E`` is capped at ``raise_at``, and the alert is **cleared** when it falls back to
    ``clear_at`` (by default 0: as much evidence of real speech as raised it). ``raise_at`` is the
    operating point: chosen per model on the development calls for a target false-alarm rate per
    real call (``dfd models calibrate``) and written on its card; a setting overrides it.

``windows`` (the rule before, kept for comparison)
    An alert is raised when at least ``raise_over`` of the last ``of`` speech windows score at or
    above the window threshold, cleared when at most ``clear_at_most`` of them do. Its false
    alarms grow with call length: every new window is another chance.

Windows without speech leave the state untouched under both rules: a pause neither raises nor
clears. The verdict of a stream: ``synthetic`` when it raised an alert; ``no speech``;
``inconclusive`` when less than ``min_speech_s`` of speech was heard and the evidence is not
decisive either way (evidence rule: the summed weighted log-odds reached ``-raise_at``; windows
rule: fewer speech windows than ``raise_over`` can never raise); else ``bona fide``.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Any, Literal

from dfd.core.typed_config import ConfigError

Transition = Literal["raised", "cleared"]
Rule = Literal["evidence", "windows"]
Verdict = Literal["synthetic", "bona fide", "inconclusive", "no speech"]
VERDICTS: tuple[Verdict, ...] = ("synthetic", "inconclusive", "bona fide", "no speech")

# The evidence (nats) that raises an alert when neither the settings nor the model card say:
# about 4 s of speech scored at the cap of 3 nats per window.
DEFAULT_RAISE_AT = 6.0
RECENT_WINDOWS = 5  # the evidence rule's events still say how many recent windows were over
# The fields an alert event carries about what raised or cleared it (DecisionState.basis).
ALERT_BASIS = ("rule", "speech_s", "evidence", "raise_at", "clear_at", "over", "of")


@dataclasses.dataclass(frozen=True)
class DecisionPolicy:
    rule: Rule = "evidence"
    # evidence rule; raise_at None: the model card's operating point (else DEFAULT_RAISE_AT)
    raise_at: float | None = None
    clear_at: float = 0.0
    max_window_evidence: float = 3.0
    min_speech_s: float = 4.0
    # windows rule
    raise_over: int = 3
    of: int = 5
    clear_at_most: int = 0

    def __post_init__(self) -> None:
        if self.rule not in ("evidence", "windows"):
            raise ConfigError(f"decision.rule must be 'evidence' or 'windows', got {self.rule!r}")
        if self.raise_at is not None and not (0.0 < self.raise_at < math.inf):
            raise ConfigError(f"decision.raise_at must be a positive number, got {self.raise_at}")
        if not 0.0 <= self.clear_at < (self.raise_at or math.inf):
            raise ConfigError(
                f"decision.clear_at must be at least 0 and below decision.raise_at, "
                f"got {self.clear_at}"
            )
        if not 0.0 < self.max_window_evidence < math.inf:
            raise ConfigError(
                "decision.max_window_evidence must be a positive number, "
                f"got {self.max_window_evidence}"
            )
        if not 0.0 <= self.min_speech_s < math.inf:
            raise ConfigError(f"decision.min_speech_s must be at least 0, got {self.min_speech_s}")
        if not 1 <= self.raise_over <= self.of:
            raise ConfigError(
                f"decision.raise_over must lie in [1, decision.of={self.of}], got {self.raise_over}"
            )
        if not 0 <= self.clear_at_most < self.raise_over:
            raise ConfigError(
                "decision.clear_at_most must be at least 0 and below decision.raise_over, "
                f"got {self.clear_at_most}"
            )

    def with_raise_at(self, card_raise_at: float | None) -> DecisionPolicy:
        """The policy with ``raise_at`` resolved: the setting, else the models' operating point,
        else ``DEFAULT_RAISE_AT``."""
        if self.raise_at is not None:
            return self
        raise_at = DEFAULT_RAISE_AT if card_raise_at is None else card_raise_at
        if not self.clear_at < raise_at:
            raise ConfigError(
                f"decision.clear_at ({self.clear_at}) must lie below the models' operating point "
                f"raise_at = {raise_at:g} nats"
            )
        return dataclasses.replace(self, raise_at=raise_at)


def window_log_odds(score: float, cap: float) -> float:
    """``log(p / (1 - p))`` of a calibrated score, capped at ``cap`` nats either way."""
    if score <= 0.0:
        return -cap
    if score >= 1.0:
        return cap
    return max(-cap, min(cap, math.log(score) - math.log1p(-score)))


class DecisionState:
    """One stream's decision state and what an end-of-call summary needs.

    A policy without ``raise_at`` gets ``DEFAULT_RAISE_AT``; the pipeline resolves it from the
    models first (``DecisionPolicy.with_raise_at``).
    """

    def __init__(self, policy: DecisionPolicy) -> None:
        policy = policy.with_raise_at(None)
        self.policy = policy
        window_count = policy.of if policy.rule == "windows" else RECENT_WINDOWS
        self._recent: collections.deque[bool] = collections.deque(maxlen=window_count)
        self.active = False
        self.alerts = 0
        self.windows = 0
        self.speech_windows = 0
        self.speech_s = 0.0  # seconds of speech heard, overlaps counted once
        self.evidence = 0.0  # the CUSUM statistic, nats
        self.total_evidence = 0.0  # the plain sum of weighted log-odds, nats
        self.max_score: float | None = None
        self._covered_until: float | None = None  # end of the last speech window, seconds

    def retune(self, policy: DecisionPolicy) -> bool:
        """Take new settings mid-call (a reload) when they keep the state meaningful: the same
        rule and, for the windows rule, the same history length. Otherwise the call keeps its
        policy to the end (new calls get the new one). Returns whether it was taken."""
        if policy.rule != self.policy.rule or (
            policy.rule == "windows" and policy.of != self.policy.of
        ):
            return False
        self.policy = policy = policy.with_raise_at(None)
        if self.active and policy.raise_at is not None:
            self.evidence = min(self.evidence, policy.raise_at)
        return True

    @property
    def over(self) -> int:
        """How many of the recent speech windows were at or above the window threshold."""
        return sum(self._recent)

    @property
    def recent(self) -> int:
        return self._recent.maxlen or 0

    def update(
        self,
        score: float | None,
        speech: bool,
        threshold: float,
        start_s: float,
        end_s: float,
        window_s: float,
    ) -> Transition | None:
        """Record one window (``start_s``-``end_s`` of the stream, a ``window_s`` window), in
        stream order; return the transition it causes, if any.

        ``score`` is ``None`` for a window that was not scored (no speech in a live call).
        """
        self.windows += 1
        if not speech or score is None:
            return None
        self.speech_windows += 1
        self.max_score = score if self.max_score is None else max(self.max_score, score)
        self._recent.append(score >= threshold)
        fresh_from = start_s if self._covered_until is None else max(start_s, self._covered_until)
        fresh_s = max(0.0, end_s - fresh_from)
        self._covered_until = (
            end_s if self._covered_until is None else max(end_s, self._covered_until)
        )
        self.speech_s += fresh_s
        if self.policy.rule == "windows":
            return self._update_windows()
        weighted = min(1.0, fresh_s / window_s) * window_log_odds(
            score, self.policy.max_window_evidence
        )
        self.total_evidence += weighted
        return self._update_evidence(weighted)

    def _update_evidence(self, weighted: float) -> Transition | None:
        raise_at = self.policy.raise_at
        assert raise_at is not None  # resolved in __init__
        self.evidence = max(0.0, self.evidence + weighted)
        if not self.active and self.evidence >= raise_at:
            self.active = True
            self.alerts += 1
            self.evidence = raise_at
            return "raised"
        if self.active:
            self.evidence = min(self.evidence, raise_at)
            if self.evidence <= self.policy.clear_at:
                self.active = False
                return "cleared"
        return None

    def _update_windows(self) -> Transition | None:
        if not self.active and self.over >= self.policy.raise_over:
            self.active = True
            self.alerts += 1
            return "raised"
        if self.active and self.over <= self.policy.clear_at_most:
            self.active = False
            return "cleared"
        return None

    @property
    def decisive(self) -> bool:
        """Enough speech heard to judge, or evidence that decides without it."""
        if self.policy.rule == "windows":
            return self.speech_windows >= self.policy.raise_over
        raise_at = self.policy.raise_at
        assert raise_at is not None  # resolved in __init__
        return self.speech_s >= self.policy.min_speech_s or self.total_evidence <= -raise_at

    @property
    def verdict(self) -> Verdict:
        if self.alerts:
            return "synthetic"
        if not self.speech_windows:
            return "no speech"
        return "bona fide" if self.decisive else "inconclusive"

    def basis(self) -> dict[str, Any]:
        """What a decision rests on, for events: the rule and its state."""
        basis: dict[str, Any] = {"rule": self.policy.rule, "speech_s": round(self.speech_s, 3)}
        if self.policy.rule == "evidence":
            basis["evidence"] = round(self.evidence, 4)
            basis["raise_at"] = self.policy.raise_at
            basis["clear_at"] = self.policy.clear_at
        basis["over"], basis["of"] = self.over, self.recent
        return basis  # in the order of docs/alerts.md
