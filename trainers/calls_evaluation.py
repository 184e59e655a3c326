"""Per-call figures on the corpus's calls protocol: how many real callers raise an alert, and how
soon a call that turns synthetic does.

The input is what ``dfd replay --json`` reports for each call file (its alerts, each with the end
of the window that raised it), so the figures describe the very decisions the daemon would publish.
An alert raised in a turning call before its synthetic part starts is a false alarm too.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dfd.trainers.datasets.calls import CallTrial


@dataclass(frozen=True)
class CallOutcome:
    call: CallTrial
    first_alert_s: float | None  # end of the window that raised the first alert

    @property
    def false_alarm(self) -> bool:
        """An alert while the caller was still real."""
        return self.first_alert_s is not None and self.first_alert_s <= self.call.synthetic_from_s

    @property
    def detected(self) -> bool:
        """A turning call alerted once it turned (and not before)."""
        return (
            self.call.kind == "turns-synthetic"
            and self.first_alert_s is not None
            and not self.false_alarm
        )

    @property
    def time_to_alert_s(self) -> float | None:
        if not self.detected or self.first_alert_s is None:
            return None
        return self.first_alert_s - self.call.synthetic_from_s


@dataclass(frozen=True)
class CallsSummary:
    real_calls: int
    real_calls_alerted: int
    real_hours: float
    turning_calls: int
    turning_alerted_early: int  # false alarms before the synthetic part
    turning_detected: int
    times_to_alert_s: tuple[float, ...]

    @property
    def real_alerted_share(self) -> float:
        return self.real_calls_alerted / self.real_calls if self.real_calls else float("nan")

    @property
    def detected_share(self) -> float:
        return self.turning_detected / self.turning_calls if self.turning_calls else float("nan")

    @property
    def median_time_to_alert_s(self) -> float | None:
        return statistics.median(self.times_to_alert_s) if self.times_to_alert_s else None

    def to_json(self) -> dict[str, Any]:
        return {
            "real_calls": self.real_calls,
            "real_calls_alerted": self.real_calls_alerted,
            "real_hours": round(self.real_hours, 4),
            "turning_calls": self.turning_calls,
            "turning_alerted_early": self.turning_alerted_early,
            "turning_detected": self.turning_detected,
            "median_time_to_alert_s": self.median_time_to_alert_s,
            "times_to_alert_s": list(self.times_to_alert_s),
        }


def first_alert_s(report: Mapping[str, Any]) -> float | None:
    """The end of the window that raised the first alert in a ``dfd replay --json`` report."""
    raised = [a["end"] for a in report["alerts"] if a["topic"] == "alert.raised"]
    return min(raised) if raised else None


def call_outcomes(
    calls: Sequence[CallTrial], reports: Mapping[str, Mapping[str, Any]]
) -> list[CallOutcome]:
    """``reports``: replay reports keyed by the call file's path (as ``dfd replay`` prints it)."""
    outcomes = []
    for call in calls:
        report = reports.get(str(call.path))
        if report is None:
            raise ValueError(f"no replay report for {call.call_id} ({call.path})")
        outcomes.append(CallOutcome(call, first_alert_s(report)))
    return outcomes


def summarise(outcomes: Sequence[CallOutcome]) -> CallsSummary:
    real = [o for o in outcomes if o.call.kind == "bonafide"]
    turning = [o for o in outcomes if o.call.kind == "turns-synthetic"]
    return CallsSummary(
        real_calls=len(real),
        real_calls_alerted=sum(o.false_alarm for o in real),
        real_hours=sum(o.call.seconds for o in real) / 3600,
        turning_calls=len(turning),
        turning_alerted_early=sum(o.false_alarm for o in turning),
        turning_detected=sum(o.detected for o in turning),
        times_to_alert_s=tuple(sorted(t for o in turning if (t := o.time_to_alert_s) is not None)),
    )
