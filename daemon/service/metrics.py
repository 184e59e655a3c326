"""Prometheus metrics of ``dfd serve``, on a localhost HTTP endpoint (``[serve] metrics``).

Counters and gauges are read from the daemon's own counters when Prometheus scrapes (a custom
collector), so there is one source of truth and nothing to keep in step with it. The histograms
observe the engine's events as they happen (``DaemonMetrics.emit``, an event sink before the
bus): batch sizes (``BatchDispatched``), and the delay from a window's last sample arriving to
its score being applied (``WindowScored``, ``event="score"``) or its alert being raised
(``AlertRaised``, ``event="alert"``). Everything lives in the daemon's own
``CollectorRegistry``, never the process-global one, so several daemons (or tests) in one
process do not clash.

``dfd status`` reads this endpoint back (``dfd.daemon.clients.status``).
"""

from __future__ import annotations

import importlib.metadata
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import structlog
from prometheus_client import CollectorRegistry, Histogram, ProcessCollector, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)

from dfd.daemon.engine.events import AlertRaised, BatchDispatched, EngineEvent, WindowScored

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from dfd.daemon.engine.scoring import WorkerPool
    from dfd.daemon.service.serve import Daemon

log = structlog.get_logger(__name__)

# From well under a hop (a free host: tens of ms) to the bounded backlog of an overloaded one
# (8 windows of 0.5 s per call: about 4 s).
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10)
# reason label -> SourceCounters field
CAPTURE_DROP_REASONS = {
    "malformed": "malformed",
    "late": "late",
    "duplicate": "duplicates",
    "refused": "refused",
}


def batch_size_buckets(batch_size: int) -> list[float]:
    """Powers of two below ``batch_size``, then ``batch_size`` itself (the largest batch)."""
    buckets, size = [], 1
    while size < batch_size:
        buckets.append(float(size))
        size *= 2
    return [*buckets, float(batch_size)]


class DaemonMetrics:
    """The daemon's metrics registry; the pipeline feeds its histograms."""

    def __init__(self, daemon: Daemon, batch_size: int) -> None:
        self.registry = CollectorRegistry()
        self._batch_size = Histogram(
            "dfd_batch_size_windows",
            "Windows per batch sent to the detector workers.",
            buckets=batch_size_buckets(batch_size),
            registry=self.registry,
        )
        latency = Histogram(
            "dfd_window_to_event_seconds",
            "Seconds from a window's last sample arriving to its score being applied "
            '(event="score") or its alert being published (event="alert").',
            ["event"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._score_latency = latency.labels(event="score")
        self._alert_latency = latency.labels(event="alert")
        self.collector = DaemonCollector(daemon)
        self.registry.register(self.collector)
        ProcessCollector(registry=self.registry)  # CPU, memory, open files, start time

    def emit(self, event: EngineEvent) -> None:
        """An engine event sink (before the bus, on the thread that drives the pipeline)."""
        if isinstance(event, BatchDispatched):
            self._batch_size.observe(event.windows)
        elif isinstance(event, WindowScored) and event.latency_s is not None:
            self._score_latency.observe(event.latency_s)
        elif isinstance(event, AlertRaised):
            self._alert_latency.observe(event.latency_s)


class DaemonCollector:
    """Counters and gauges read from the daemon at each scrape (on the HTTP server's thread:
    plain reads of integers the daemon's loop writes)."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon
        self._lock = threading.Lock()
        # Worker restarts are counted per pool, and a reload replaces the pool: the restarts of
        # the pools retired so far, and the last one retired (it may still be `daemon.pool`).
        self._retired_restarts = 0
        self._retired: WorkerPool | None = None
        try:
            self._version = importlib.metadata.version("dfd")
        except importlib.metadata.PackageNotFoundError:
            self._version = "unknown"

    def retire_pool(self, pool: WorkerPool) -> None:
        """Called by a reload before ``pool`` is replaced, once it has finished its batches."""
        with self._lock:
            self._retired_restarts += pool.restarts
            self._retired = pool

    def worker_restarts(self) -> int:
        with self._lock:
            pool = self._daemon.pool
            current = 0 if pool is self._retired else pool.restarts
            return self._retired_restarts + current

    def collect(self) -> Iterator[Metric]:
        daemon = self._daemon
        pipeline = daemon.pipeline
        counters = pipeline.counters
        models = pipeline.models

        def counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(name, documentation, value=value)

        def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, documentation, value=value)

        yield InfoMetricFamily("dfd_build", "The dfd package.", value={"version": self._version})
        yield InfoMetricFamily(
            "dfd_model",
            "The models scoring (names and versions joined with + when several fuse).",
            value=models.identity,
        )
        yield gauge("dfd_model_threshold", "The fused decision threshold.", models.threshold)
        yield gauge(
            "dfd_uptime_seconds",
            "Seconds since the daemon started.",
            time.monotonic() - daemon.started_at,
        )
        yield gauge(
            "dfd_active_calls",
            "Open call streams (one per party of a call).",
            pipeline.active_streams,
        )
        yield counter("dfd_calls_started", "Call streams started.", counters.streams_started)
        yield counter("dfd_calls_ended", "Call streams ended.", counters.streams_ended)
        yield counter("dfd_windows", "Windows cut from calls.", counters.windows)
        yield counter(
            "dfd_windows_scored", "Windows scored by the detectors.", counters.windows_scored
        )
        yield counter(
            "dfd_windows_unscored",
            "Windows not scored: no speech in a live call.",
            counters.windows_unscored,
        )
        yield counter(
            "dfd_windows_shed",
            "Windows dropped before scoring: their call's queue was full (overload).",
            counters.windows_shed,
        )
        yield counter(
            "dfd_windows_lost",
            "Windows in batches whose detector worker failed twice.",
            counters.windows_lost,
        )
        yield gauge(
            "dfd_queued_windows", "Windows waiting for a detector worker.", pipeline.queued_windows
        )
        yield gauge(
            "dfd_intake_queue_events",
            "Capture events waiting for the pipeline.",
            daemon.intake.qsize(),
        )
        yield counter(
            "dfd_intake_dropped",
            "Capture events dropped because the intake queue was full.",
            daemon.counters.intake_dropped,
        )
        dropped = CounterMetricFamily(
            "dfd_capture_dropped",
            "Packets or frames received and dropped by a capture source.",
            labels=["source", "reason"],
        )
        lost = CounterMetricFamily(
            "dfd_capture_lost",
            "Packets or frames never received (filled with silence), and device overflows.",
            labels=["source"],
        )
        fields = {**CAPTURE_DROP_REASONS, "lost": "lost"}
        by_kind: dict[str, dict[str, int]] = {}  # several sources of one kind add up
        for source in daemon.sources:
            totals = by_kind.setdefault(source.name, dict.fromkeys(fields, 0))
            for key, field in fields.items():
                totals[key] += getattr(source.counters, field)
        for kind, totals in sorted(by_kind.items()):
            for reason in CAPTURE_DROP_REASONS:
                dropped.add_metric([kind, reason], totals[reason])
            lost.add_metric([kind], totals["lost"])
        yield dropped
        yield lost
        yield counter("dfd_alerts_raised", "Alerts raised.", counters.alerts_raised)
        yield counter("dfd_alerts_cleared", "Alerts cleared.", counters.alerts_cleared)
        bus = daemon.bus
        yield counter("dfd_events_published", "Events published on the bus.", bus.published)
        yield counter(
            "dfd_events_dropped",
            "Events ZeroMQ refused to queue for a slow subscriber.",
            bus.dropped,
        )
        yield counter("dfd_journal_errors", "Alert journal writes that failed.", bus.journal_errors)
        yield counter(
            "dfd_model_reloads", "Successful model reloads (SIGHUP).", daemon.counters.reloads
        )
        yield counter(
            "dfd_model_reload_failures",
            "Reloads that failed (the previous models kept serving).",
            daemon.counters.reload_failures,
        )
        yield counter(
            "dfd_detector_worker_restarts",
            "Detector worker processes restarted after dying or hanging (batch_timeout_s).",
            self.worker_restarts(),
        )


class MetricsServer:
    """The HTTP endpoint (prometheus-client's threaded server, on its own daemon thread)."""

    def __init__(self, address: str, registry: CollectorRegistry) -> None:
        host, _, port = address.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        self._server: WSGIServer
        self._server, self._thread = start_http_server(int(port), host, registry)
        bound_port = self._server.server_port
        self.address = f"[{host}]:{bound_port}" if ":" in host else f"{host}:{bound_port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def serve_metrics(address: str, registry: CollectorRegistry) -> MetricsServer | None:
    """Listen on ``address`` (HOST:PORT; port 0 picks a free one), or nowhere when it is empty.
    A port that cannot be bound is logged as an error and the daemon screens calls without
    metrics: call screening matters more than its monitoring."""
    if not address:
        log.info("metrics_off")
        return None
    try:
        server = MetricsServer(address, registry)
    except OSError as error:
        log.error("metrics_unavailable", address=address, error=str(error))
        return None
    log.info("metrics_listening", address=server.address, url=f"http://{server.address}/metrics")
    return server
