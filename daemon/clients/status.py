"""``dfd status``: read the daemon's metrics endpoint and summarise it for a person.

Rates are averages since the daemon started (one scrape); Prometheus gives rates over any span
(``rate(dfd_windows_scored_total[1m])``). Latency percentiles are estimated from the histogram
buckets the way Prometheus' ``histogram_quantile`` does: linear within the bucket that holds
the rank.
"""

from __future__ import annotations

import math
import urllib.error
import urllib.request
from collections.abc import Sequence

from prometheus_client.parser import text_string_to_metric_families


class StatusError(Exception):
    """The endpoint could not be read, or is not a dfd daemon's."""


def metrics_url(address: str) -> str:
    host, _, port = address.rpartition(":")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # a bare IPv6 address
    return f"http://{host}:{port}/metrics"


def fetch_metrics(address: str, timeout_s: float = 3.0) -> str:
    url = metrics_url(address)
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            body: bytes = response.read()
    except urllib.error.URLError as error:
        reason = getattr(error, "reason", error)
        raise StatusError(f"cannot reach the dfd daemon at {url}: {reason}") from error
    except (OSError, ValueError) as error:  # timeouts, resets, a malformed address
        raise StatusError(f"cannot reach the dfd daemon at {url}: {error}") from error
    return body.decode("utf-8", errors="replace")


class Scrape:
    """Samples of one exposition: ``value(name, **labels)``; histograms as cumulative buckets."""

    def __init__(self, text: str) -> None:
        self.samples: list[tuple[str, dict[str, str], float]] = []
        try:
            for family in text_string_to_metric_families(text):
                self.samples += [(s.name, dict(s.labels), s.value) for s in family.samples]
        except ValueError as error:
            raise StatusError(f"not a Prometheus exposition: {error}") from error

    def find(self, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
        return [
            (sample_labels, value)
            for sample_name, sample_labels, value in self.samples
            if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items())
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples named ``name`` with these labels (0 when there is none)."""
        return sum(value for _, value in self.find(name, **labels))

    def buckets(self, name: str, **labels: str) -> list[tuple[float, float]]:
        """``(upper bound, cumulative count)`` of histogram ``name``, by bound."""
        found = self.find(f"{name}_bucket", **labels)
        return sorted((float(sample_labels["le"]), value) for sample_labels, value in found)


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The ``q`` quantile from cumulative ``(upper bound, count)`` buckets (the last +Inf), as
    Prometheus estimates it; None when the histogram is empty. A rank in the +Inf bucket gives
    the largest finite bound (the quantile is at least that)."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, cumulative in buckets:
        if cumulative >= rank and cumulative > below:
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * (rank - below) / (cumulative - below)
        lower, below = upper, cumulative
    return lower


def _duration(seconds: float) -> str:
    whole = int(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours}h {minutes:02d}m {secs:02d}s" if hours or days else f"{minutes}m {secs:02d}s"
    return f"{days}d {clock}" if days else clock


def _latency(scrape: Scrape, event: str) -> str:
    buckets = scrape.buckets("dfd_window_to_event_seconds", event=event)
    if not buckets or buckets[-1][1] <= 0:
        return "n/a"
    total = buckets[-1][1]
    finite_bound, finite_count = buckets[-2] if len(buckets) > 1 else (0.0, 0.0)

    def shown(q: float) -> str:
        if q * total > finite_count:  # in the +Inf bucket: only a lower bound is known
            return f">{finite_bound:g} s"
        value = histogram_quantile(q, buckets)
        return "n/a" if value is None else f"{value:.3f} s"

    return f"p50 {shown(0.5)}, p99 {shown(0.99)}"


def _plural(count: float, word: str) -> str:
    return f"{count:.0f} {word}{'' if round(count) == 1 else 's'}"


def summarize(text: str, address: str) -> list[str]:
    """The lines ``dfd status`` prints."""
    scrape = Scrape(text)
    if not scrape.find("dfd_uptime_seconds"):
        raise StatusError(f"{metrics_url(address)} answers, but not with a dfd daemon's metrics")
    value = scrape.value
    uptime = value("dfd_uptime_seconds")
    model = next(iter(scrape.find("dfd_model_info")), ({}, 0.0))[0]
    build = next(iter(scrape.find("dfd_build_info")), ({}, 0.0))[0]
    scored = value("dfd_windows_scored_total")
    capture = [
        f"{labels['source']} {labels['reason']} {count:.0f}"
        for labels, count in scrape.find("dfd_capture_dropped_total")
        if count
    ] + [
        f"{labels['source']} lost {count:.0f}"
        for labels, count in scrape.find("dfd_capture_lost_total")
        if count
    ]
    return [
        f"dfd {build.get('version', '?')} at {address}: up {_duration(uptime)}",
        f"model      {model.get('name', '?')} {model.get('version', '?')}, threshold "
        f"{value('dfd_model_threshold'):.4f}; {_plural(value('dfd_model_reloads_total'), 'reload')}"
        f" ({value('dfd_model_reload_failures_total'):.0f} failed), "
        f"{_plural(value('dfd_detector_worker_restarts_total'), 'worker restart')}",
        f"calls      {value('dfd_active_calls'):.0f} active; "
        f"{value('dfd_calls_started_total'):.0f} started, "
        f"{value('dfd_calls_ended_total'):.0f} ended",
        f"windows    {value('dfd_windows_total'):.0f} cut: {scored:.0f} scored "
        f"({scored / max(uptime, 1e-9):.1f}/s since start), "
        f"{value('dfd_windows_unscored_total'):.0f} without speech, "
        f"{value('dfd_windows_shed_total'):.0f} shed, {value('dfd_windows_lost_total'):.0f} lost",
        f"queues     {value('dfd_queued_windows'):.0f} windows waiting, "
        f"{value('dfd_intake_queue_events'):.0f} capture events; "
        f"{value('dfd_intake_dropped_total'):.0f} capture events dropped (intake full)",
        f"capture    {', '.join(capture) if capture else 'nothing dropped or lost'}",
        f"alerts     {value('dfd_alerts_raised_total'):.0f} raised, "
        f"{value('dfd_alerts_cleared_total'):.0f} cleared",
        f"latency    window to score {_latency(scrape, 'score')}; "
        f"to alert {_latency(scrape, 'alert')}",
    ]
