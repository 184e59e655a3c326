"""Decisions with hysteresis: an alert is raised once and cleared once per episode.

Each stream keeps the outcome of its last ``of`` speech windows (score at or above the
threshold, or not). The alert is **raised** when at least ``raise_over`` of them are above it and
no alert is active; it is **cleared** when at most ``clear_at_most`` of them are above it while
one is active. Windows without speech leave the history untouched: a pause in the caller's speech
neither raises nor clears. Defaults: raise on 3 of the last 5 speech windows (with a 2 s window
every 0.5 s, about 3 s of speech), clear when none of the last 5 is above the threshold.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Literal

from dfd.core.typed_config import ConfigError

Transition = Literal["raised", "cleared"]


@dataclasses.dataclass(frozen=True)
class DecisionPolicy:
    raise_over: int = 3
    of: int = 5
    clear_at_most: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.raise_over <= self.of:
            raise ConfigError(
                f"decision.raise_over must lie in [1, decision.of={self.of}], got {self.raise_over}"
            )
        if not 0 <= self.clear_at_most < self.raise_over:
            raise ConfigError(
                "decision.clear_at_most must be at least 0 and below decision.raise_over, "
                f"got {self.clear_at_most}"
            )


class DecisionState:
    """One stream's decision history and what an end-of-call summary needs."""

    def __init__(self, policy: DecisionPolicy) -> None:
        self.policy = policy
        self._recent: collections.deque[bool] = collections.deque(maxlen=policy.of)
        self.active = False
        self.alerts = 0
        self.windows = 0
        self.speech_windows = 0
        self.max_score: float | None = None

    @property
    def over(self) -> int:
        """How many of the recent speech windows were at or above the threshold."""
        return sum(self._recent)

    def update(self, score: float | None, speech: bool, threshold: float) -> Transition | None:
        """Record one window, in stream order; return the transition it causes, if any.

        ``score`` is ``None`` for a window that was not scored (no speech in a live call).
        """
        self.windows += 1
        if not speech or score is None:
            return None
        self.speech_windows += 1
        self.max_score = score if self.max_score is None else max(self.max_score, score)
        self._recent.append(score >= threshold)
        if not self.active and self.over >= self.policy.raise_over:
            self.active = True
            self.alerts += 1
            return "raised"
        if self.active and self.over <= self.policy.clear_at_most:
            self.active = False
            return "cleared"
        return None

    @property
    def verdict(self) -> str:
        if self.alerts:
            return "synthetic"
        return "bona fide" if self.speech_windows else "no speech"
