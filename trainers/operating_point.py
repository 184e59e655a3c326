"""The call-level operating point: the evidence that raises an alert, chosen on whole calls.

The input is each call's scored windows as an audit reports them (``dfd replay``: start, end,
calibrated score and speech flag per window) and the calls protocol, which says where each call
stops being real. The decisions are made by the daemon's own ``DecisionState``, window by window,
so what is measured here is what the daemon would do.

``choose_raise_at`` runs the evidence rule without a limit over the real part of every call
(the whole of a real call, the part of a turning call before its synthetic speech starts; a window
reaching past that second is not real speech any more) and takes each call's peak evidence. With
``n`` real calls and a target false-alarm rate ``r``, at most ``floor(r * n)`` of them may reach
the operating point: it is set ``MARGIN`` above the next-highest peak, and never below two windows'
worth of capped evidence (``2 * max_window_evidence``), so that no alert rests on less than about
4 s of speech. With fewer than ``1 / r`` calls that means no real call alerts, and the achieved
rate says only "0 of n".
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from dfd.daemon.engine.decisions import DecisionPolicy, DecisionState
from dfd.detectors.bundle import OperatingPoint
from dfd.trainers.datasets.calls import CallTrial

MARGIN = 1.1  # the operating point's factor over the highest real peak it must stay above
UNBOUNDED = 1e12  # raise_at for a run that only measures the evidence


@dataclasses.dataclass(frozen=True)
class ScoredWindow:
    start: float
    end: float
    score: float | None
    speech: bool

    @classmethod
    def from_report(cls, row: Mapping[str, Any]) -> ScoredWindow:
        return cls(float(row["start"]), float(row["end"]), row["score"], bool(row["speech"]))


def channel_windows(report: Mapping[str, Any], channel: int = 0) -> list[ScoredWindow]:
    """One channel's windows from a ``dfd replay --json`` report, in stream order."""
    rows = [row for row in report["windows"] if row["channel"] == channel]
    return [ScoredWindow.from_report(row) for row in rows]


def run_decisions(
    windows: Sequence[ScoredWindow],
    policy: DecisionPolicy,
    threshold: float,
    window_s: float,
    until_s: float = math.inf,
) -> tuple[float | None, float, DecisionState]:
    """Feed the windows ending by ``until_s`` to a fresh ``DecisionState``: (end of the window
    that first raised an alert or None, peak evidence, the final state)."""
    state = DecisionState(policy)
    first_alert: float | None = None
    peak = 0.0
    for window in windows:
        if window.end > until_s:
            break
        transition = state.update(
            window.score, window.speech, threshold, window.start, window.end, window_s
        )
        peak = max(peak, state.evidence)
        if transition == "raised" and first_alert is None:
            first_alert = window.end
    return first_alert, peak, state


def real_peak(
    call: CallTrial, windows: Sequence[ScoredWindow], policy: DecisionPolicy, window_s: float
) -> float:
    """The highest evidence the real part of a call reaches, with no alert to cap it."""
    unbounded = dataclasses.replace(policy, rule="evidence", raise_at=UNBOUNDED)
    return run_decisions(windows, unbounded, 0.5, window_s, call.synthetic_from_s)[1]


def choose_raise_at(
    peaks: Sequence[float], target_false_alarm_rate: float, max_window_evidence: float
) -> float:
    """The operating point for real-call peaks ``peaks`` (see the module's docstring)."""
    if not peaks:
        raise ValueError("no real calls to choose an operating point on")
    if not 0.0 <= target_false_alarm_rate < 1.0:
        raise ValueError(f"the target rate must lie in [0, 1), got {target_false_alarm_rate}")
    allowed = math.floor(target_false_alarm_rate * len(peaks) + 1e-9)
    ordered = sorted(peaks, reverse=True)
    highest_kept_below = ordered[allowed] if allowed < len(ordered) else 0.0
    return max(2.0 * max_window_evidence, MARGIN * highest_kept_below)


@dataclasses.dataclass(frozen=True)
class CallDecision:
    call: CallTrial
    first_alert_s: float | None  # at the operating point

    @property
    def false_alarm(self) -> bool:
        return self.first_alert_s is not None and self.first_alert_s <= self.call.synthetic_from_s

    @property
    def time_to_alert_s(self) -> float | None:
        if self.call.kind != "turns-synthetic" or self.first_alert_s is None or self.false_alarm:
            return None
        return self.first_alert_s - self.call.synthetic_from_s


def decide_calls(
    calls: Sequence[CallTrial],
    windows: Mapping[str, Sequence[ScoredWindow]],
    policy: DecisionPolicy,
    threshold: float,
    window_s: float,
) -> list[CallDecision]:
    """Each call decided under ``policy`` (its ``raise_at`` resolved); ``windows`` by call id."""
    return [
        CallDecision(call, run_decisions(windows[call.call_id], policy, threshold, window_s)[0])
        for call in calls
    ]


def operating_point(
    calls: Sequence[CallTrial],
    windows: Mapping[str, Sequence[ScoredWindow]],
    policy: DecisionPolicy,
    window_s: float,
    target_false_alarm_rate: float,
    chosen_on: str,
) -> OperatingPoint:
    """Choose ``raise_at`` on the real parts of ``calls`` and measure it on all of them."""
    peaks = [real_peak(call, windows[call.call_id], policy, window_s) for call in calls]
    raise_at = choose_raise_at(peaks, target_false_alarm_rate, policy.max_window_evidence)
    chosen = dataclasses.replace(policy, rule="evidence", raise_at=raise_at)
    decided = decide_calls(calls, windows, chosen, 0.5, window_s)
    turning = [d for d in decided if d.call.kind == "turns-synthetic"]
    times = [t for d in turning if (t := d.time_to_alert_s) is not None]
    return OperatingPoint(
        raise_at=round(raise_at, 4),
        max_window_evidence=policy.max_window_evidence,
        target_false_alarm_rate=target_false_alarm_rate,
        false_alarm_rate=sum(d.false_alarm for d in decided) / len(decided),
        real_calls=len(decided),
        real_hours=round(sum(c.synthetic_from_s for c in calls) / 3600, 4),
        turning_calls=len(turning),
        turning_detected=len(times),
        median_time_to_alert_s=round(statistics.median(times), 3) if times else None,
        chosen_on=chosen_on,
    )
