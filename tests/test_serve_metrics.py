"""The daemon's Prometheus metrics and ``dfd status``.

End to end: the installed ``dfd serve`` in a subprocess, a call pushed over the ZeroMQ PCM ingest
(the synthetic part of the sample call), the metrics read over real HTTP on 127.0.0.1 and checked
against the events the daemon published; ``dfd status`` run as a user runs it. In process: the
pipeline feeding the histograms (checked against the pipeline's own records), worker restarts
staying counted across reloads, the quantile estimate against hand-computed values, settings.

(``tests/test_metrics.py`` holds the evaluation metrics of ``dfd.trainers``.)
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from dfd.core.typed_config import ConfigError
from dfd.daemon.audit.replay import ReplayRecorder
from dfd.daemon.clients.status import StatusError, histogram_quantile, summarize
from dfd.daemon.engine.events import (
    AlertRaised,
    AudioChunk,
    BatchDispatched,
    EngineEvent,
    EventFanout,
    StreamEnded,
    WindowScored,
)
from dfd.daemon.engine.models import ModelSet
from dfd.daemon.engine.pipeline import Pipeline
from dfd.daemon.logs import redacted_call_id
from dfd.daemon.service.capture.base import SourceCounters
from dfd.daemon.service.metrics import (
    LATENCY_BUCKETS,
    DaemonCollector,
    DaemonMetrics,
    batch_size_buckets,
    serve_metrics,
)
from dfd.daemon.service.serve import DaemonCounters
from dfd.daemon.settings import PipelineSettings, ServeSettings
from dfd.dsp.audio_io import load_audio
from tests.test_pipeline import LOUD_DBFS, ScriptedScorer, noise_at
from tests.test_serve import (
    BOUNDARY_S,
    CUT_S,
    DFD,
    PCM_RATE,
    SAMPLE,
    Served,
    push_call,
)

DEFAULT_VERSION = ModelSet.load(["default"]).identity["version"]  # the embedded default's

# --- reading metrics (prometheus-client's parser, not dfd's) -------------------------------


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` of an exposition."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(address: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
        assert response.status == 200
        return parse(response.read().decode())


def value(samples: dict[Any, float], metric: str, /, **labels: str) -> float:
    return samples[(metric, tuple(sorted(labels.items())))]


def listening_tcp_ports(pid: int) -> set[int]:
    """TCP ports process ``pid`` itself (not its children) listens on, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # LISTEN
                ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def detector_workers(pid: int) -> list[int]:
    """The daemon's detector worker processes (multiprocessing spawn children)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [
        int(child)
        for child in children
        if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
    ]


def run_dfd(*args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = [DFD, *(["--config", str(config)] if config else []), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


# --- a daemon with its metrics on a free port ----------------------------------------------


def write_config(folder: Path, metrics: str, redact: bool = False) -> Path:
    (folder / "state").mkdir(parents=True)
    config = folder / "dfd.toml"
    config.write_text(
        f"""
[logging]
level = "info"
format = "json"
redact_call_ids = {"true" if redact else "false"}

[models]
workers = 1

[serve]
state_directory = "{folder / "state"}"
status_interval_s = 0.5
metrics = "{metrics}"
""",
        encoding="utf-8",
    )
    return config


@pytest.fixture
def daemons() -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for daemon in started:
        daemon.kill()
        print(f"--- dfd {' '.join(daemon.args)}: exit status {daemon.process.returncode}")
        print(daemon.stderr)


def start(daemons: list[Served], config: Path, *args: str) -> Served:
    daemon = Served(config, "tcp://127.0.0.1:*", list(args), None)
    daemons.append(daemon)
    daemon.start_serving()
    return daemon


def synthetic_part(seconds: float) -> np.ndarray:
    """``seconds`` of the Piper TTS part of the sample call, as the PCM ingest takes it."""
    samples = load_audio(SAMPLE, sample_rate=PCM_RATE).samples[0]
    first = round((CUT_S[0] + BOUNDARY_S) * PCM_RATE)
    return samples[first : first + round(seconds * PCM_RATE)]


def test_a_served_call_shows_in_the_metrics_and_in_dfd_status(
    daemons: list[Served], tmp_path: Path
) -> None:
    config = write_config(tmp_path, "127.0.0.1:0", redact=True)
    daemon = start(daemons, config, "--pcm", "tcp://127.0.0.1:*")
    pid = daemon.process.pid
    _, listening = daemon.wait_for_log("metrics_listening")
    address = listening["address"]
    metrics_port = int(address.rsplit(":", 1)[1])
    _, serving = daemon.wait_for_log("serving")
    _, ingest = daemon.wait_for_log("pcm_ingest_listening")
    pub_port, pcm_port = (int(e.rsplit(":", 1)[1]) for e in (serving["pub"], ingest["endpoint"]))
    assert listening_tcp_ports(pid) == {pub_port, pcm_port, metrics_port}

    before = scrape(address)
    assert value(before, "dfd_model_info", name="sinc-lcnn", version=DEFAULT_VERSION) == 1
    assert value(before, "dfd_windows_scored_total") == 0
    assert value(before, "dfd_active_calls") == 0

    # A detector worker dies before the call: the first batch finds it dead, a new one is
    # started and the batch sent again.
    (worker,) = detector_workers(pid)
    subprocess.run(["kill", "-KILL", str(worker)], check=True)

    active_seen: list[float] = []
    pushing = threading.Thread(
        target=push_call, args=(ingest["endpoint"], "+15551234567", synthetic_part(8.0))
    )
    pushing.start()
    while pushing.is_alive():
        active_seen.append(value(scrape(address), "dfd_active_calls"))
        time.sleep(0.2)
    pushing.join()
    assert 1.0 in active_seen  # the call was counted while it lasted

    ended = daemon.wait_for_event("call.ended", "+15551234567").event
    alert = daemon.wait_for_event("alert.raised", "+15551234567").event
    assert (ended["verdict"], ended["alerts"]) == ("synthetic", 1)
    after = scrape(address)
    assert value(after, "dfd_active_calls") == 0
    assert value(after, "dfd_calls_started_total") == value(after, "dfd_calls_ended_total") == 1
    assert value(after, "dfd_alerts_raised_total") == 1
    assert value(after, "dfd_alerts_cleared_total") == 0
    assert value(after, "dfd_windows_total") == ended["windows"]
    scored = value(after, "dfd_windows_scored_total")
    assert scored > 0
    assert scored + value(after, "dfd_windows_shed_total") == ended["speech_windows"]
    assert value(after, "dfd_windows_lost_total") == 0
    assert value(after, "dfd_window_to_event_seconds_count", event="score") == scored
    assert value(after, "dfd_window_to_event_seconds_count", event="alert") == 1
    assert value(after, "dfd_batch_size_windows_sum") == scored  # every window in one batch
    assert value(after, "dfd_detector_worker_restarts_total") == 1
    assert value(after, "dfd_queued_windows") == value(after, "dfd_intake_queue_events") == 0
    assert value(after, "dfd_capture_lost_total", source="pcm") == 0

    # `dfd status`, as an operator runs it
    result = run_dfd("status", "--metrics", address)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"dfd 0.1.0 at {address}: up ")
    assert f"sinc-lcnn {DEFAULT_VERSION}, threshold" in lines[1]
    assert "1 worker restart" in lines[1]
    assert "calls      0 active; 1 started, 1 ended" in lines
    assert f"{ended['windows']} cut: {scored:.0f} scored" in result.stdout
    assert "alerts     1 raised, 0 cleared" in lines
    assert re.search(r"window to score p50 [0-9.]+ s, p99 >?[0-9.]+ s; to alert p50", lines[-1])

    # The log lines about the call carry its (redacted) id, the model and its version; the
    # caller's number, which the integrator put in the id, is in no log line.
    (_, raised), *_ = daemon.logs("alert raised")
    assert raised["call_id"] == redacted_call_id("+15551234567")
    assert (raised["model"], raised["model_version"]) == ("sinc-lcnn", DEFAULT_VERSION)
    assert (raised["start"], raised["end"]) == (alert["start"], alert["end"])
    assert daemon.logs("pcm_stream_started")[0][1]["call_id"] == raised["call_id"]
    assert "15551234567" not in daemon.stderr

    # A reload counts, keeps the counters, and keeps the old pool's restart counted.
    daemon.process.send_signal(signal.SIGHUP)
    daemon.wait_for_log("models reloaded")
    reloaded = scrape(address)
    assert value(reloaded, "dfd_model_reloads_total") == 1
    assert value(reloaded, "dfd_model_reload_failures_total") == 0
    assert value(reloaded, "dfd_detector_worker_restarts_total") == 1
    assert value(reloaded, "dfd_alerts_raised_total") == 1
    assert value(reloaded, "dfd_windows_scored_total") == scored

    assert daemon.stop() == 0
    # Once it has stopped, `dfd status` says so in one line and exits 1.
    result = run_dfd("status", "--metrics", address)
    assert result.returncode == 1
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"Error: cannot reach the dfd daemon at http://{address}/")


def test_metrics_off_means_no_listener_and_dfd_status_says_so(
    daemons: list[Served], tmp_path: Path
) -> None:
    config = write_config(tmp_path, "")
    daemon = start(daemons, config)
    daemon.wait_for_log("metrics_off")
    assert not daemon.logs("metrics_listening")
    _, serving = daemon.wait_for_log("serving")
    assert listening_tcp_ports(daemon.process.pid) == {int(serving["pub"].rsplit(":", 1)[1])}

    result = run_dfd("status", config=config)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Error: the metrics endpoint is off ([serve] metrics is empty); pass --metrics HOST:PORT"
    )
    assert daemon.stop() == 0


def test_a_non_local_metrics_endpoint_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path, "0.0.0.0:9464")
    result = run_dfd("serve", config=config)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert "0.0.0.0:9464 binds to 0.0.0.0, not localhost" in errors[0]
    assert "serve.allow_remote_endpoints = true" in errors[0]
    assert "Traceback" not in result.stderr


def test_dfd_status_refuses_an_endpoint_that_is_not_a_dfd_daemon() -> None:
    registry = CollectorRegistry()  # an empty exposition: valid, but no dfd metrics in it
    server = serve_metrics("127.0.0.1:0", registry)
    assert server is not None
    try:
        result = run_dfd("status", "--metrics", server.address)
    finally:
        server.close()
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"Error: http://{server.address}/metrics answers, but not with a dfd daemon's metrics"
    ]


# --- in process ----------------------------------------------------------------------------


class SteppingClock:
    """A clock that moves 7 ms at every reading, so latencies spread over the buckets."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.007
        return self.now


def stub_daemon(pipeline: Pipeline) -> Any:
    import queue

    return SimpleNamespace(
        pipeline=pipeline,
        counters=DaemonCounters(intake_dropped=2, reloads=1),
        intake=queue.Queue(),
        sources=[
            SimpleNamespace(name="rtp", counters=SourceCounters(lost=3, late=1)),
            SimpleNamespace(name="rtp", counters=SourceCounters(lost=4, duplicates=5)),
        ],
        bus=SimpleNamespace(published=10, dropped=0, journal_errors=0),
        pool=SimpleNamespace(restarts=0),
        started_at=time.monotonic(),
    )


class Tape:
    """Every engine event, in order."""

    def __init__(self) -> None:
        self.events: list[EngineEvent] = []

    def emit(self, event: EngineEvent) -> None:
        self.events.append(event)


def cumulative(observations: list[float], bounds: list[float]) -> list[float]:
    return [float(sum(1 for o in observations if o <= bound)) for bound in bounds]


def test_the_pipeline_feeds_the_histograms_and_the_counters_follow_it() -> None:
    recorder = ReplayRecorder()
    pipeline = Pipeline(
        ModelSet.load(["default"]),
        ScriptedScorer(slots=1),
        recorder,
        PipelineSettings(batch_size=8),
        frontend_device="cpu",
        clock=SteppingClock(),
    )
    daemon = stub_daemon(pipeline)
    metrics = DaemonMetrics(daemon, batch_size=8)
    tape = Tape()
    pipeline.events = EventFanout([metrics, recorder, tape])  # as the daemon: metrics first
    loud = noise_at(LOUD_DBFS, 6.0)
    with capture_logs() as logs:
        # one call scored as it comes (batches of one), one left to queue (bigger batches)
        for first in range(0, len(loud), 1600):
            pipeline.accept(AudioChunk("a", 0, loud[first : first + 1600], 16_000))
            pipeline.pump()
        pipeline.accept(StreamEnded("a", 0, "bye"))
        pipeline.accept(AudioChunk("b", 1, loud, 16_000))
        pipeline.accept(StreamEnded("b", 1, "bye"))
        pipeline.drain()
    samples = parse(generate_latest(metrics.registry).decode())

    counters = pipeline.counters
    assert counters.alerts_raised == 2
    for name, expected in {
        "dfd_windows_total": counters.windows,
        "dfd_windows_scored_total": counters.windows_scored,
        "dfd_windows_shed_total": counters.windows_shed,
        "dfd_alerts_raised_total": 2,
        "dfd_calls_started_total": 2,
        "dfd_calls_ended_total": 2,
        "dfd_active_calls": 0,
        "dfd_intake_dropped_total": 2,
        "dfd_model_reloads_total": 1,
        "dfd_events_published_total": 10,
    }.items():
        assert value(samples, name) == expected, name
    assert value(samples, "dfd_capture_lost_total", source="rtp") == 7
    assert value(samples, "dfd_capture_dropped_total", source="rtp", reason="late") == 1
    assert value(samples, "dfd_capture_dropped_total", source="rtp", reason="duplicate") == 5

    # batch sizes: against the events the metrics observed
    sizes = [e.windows for e in tape.events if isinstance(e, BatchDispatched)]
    assert len(set(sizes)) > 1
    bounds = batch_size_buckets(8)
    assert bounds == [1.0, 2.0, 4.0, 8.0]
    assert [
        value(samples, "dfd_batch_size_windows_bucket", le=str(bound)) for bound in bounds
    ] == cumulative([float(s) for s in sizes], bounds)
    assert value(samples, "dfd_batch_size_windows_sum") == sum(sizes) == counters.windows_scored

    # latencies: against the events' own
    score_latency = [
        e.latency_s for e in tape.events if isinstance(e, WindowScored) and e.latency_s is not None
    ]
    alert_latency = [e.latency_s for e in tape.events if isinstance(e, AlertRaised)]
    for event, recorded in (("score", score_latency), ("alert", alert_latency)):
        got = [
            value(samples, "dfd_window_to_event_seconds_bucket", event=event, le=str(float(bound)))
            for bound in LATENCY_BUCKETS
        ]
        assert got == cumulative(list(recorded), list(LATENCY_BUCKETS)), event
        count = value(samples, "dfd_window_to_event_seconds_count", event=event)
        assert count == len(recorded)
        assert value(samples, "dfd_window_to_event_seconds_sum", event=event) == pytest.approx(
            sum(recorded)
        )
    assert len(score_latency) == counters.windows_scored
    assert len({round(x, 3) for x in score_latency}) > 3  # spread, not one value

    # every log line about a call names it and the model
    raised = [entry for entry in logs if entry["event"] == "alert raised"]
    assert {entry["call_id"] for entry in raised} == {"a", "b"}
    for entry in raised:
        assert (entry["model"], entry["model_version"]) == ("sinc-lcnn", DEFAULT_VERSION)

    lines = summarize(generate_latest(metrics.registry).decode(), "here:1")
    assert "alerts     2 raised, 0 cleared" in lines
    assert "capture    rtp late 1, rtp duplicate 5, rtp lost 7" in lines


def test_worker_restarts_stay_counted_across_reloads() -> None:
    pools = [SimpleNamespace(restarts=0) for _ in range(4)]
    daemon = SimpleNamespace(pool=pools[0])
    collector = DaemonCollector(daemon)  # type: ignore[arg-type]
    pools[0].restarts = 2
    assert collector.worker_restarts() == 2

    def reload(new: SimpleNamespace) -> list[int]:
        """Counts seen at each point of a reload: retired, then swapped."""
        collector.retire_pool(daemon.pool)
        seen = [collector.worker_restarts()]
        daemon.pool = new
        return [*seen, collector.worker_restarts()]

    assert reload(pools[1]) == [2, 2]
    pools[1].restarts = 1
    assert collector.worker_restarts() == 3
    # two reloads between scrapes: nothing of the pool in the middle is lost
    pools[1].restarts = 2
    collector.retire_pool(daemon.pool)
    daemon.pool = pools[2]
    pools[2].restarts = 5
    assert reload(pools[3]) == [9, 9]


def test_histogram_quantile_against_hand_computed_values() -> None:
    buckets = [(0.1, 2.0), (0.2, 6.0), (0.5, 10.0), (float("inf"), 10.0)]
    # rank 5 lies in (0.1, 0.2], which holds observations 3..6: 0.1 + 0.1 * (5 - 2) / 4
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.175)
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.2 + 0.3 * (9.9 - 6) / 4)
    assert histogram_quantile(0.1, buckets) == pytest.approx(0.05)
    assert histogram_quantile(1.0, buckets) == pytest.approx(0.5)
    # in the +Inf bucket only a lower bound is known: the largest finite bound
    assert histogram_quantile(0.5, [(0.1, 1.0), (float("inf"), 4.0)]) == 0.1
    assert histogram_quantile(0.5, [(0.1, 0.0), (float("inf"), 0.0)]) is None


def test_status_shows_n_a_without_observations_and_a_bound_beyond_the_buckets() -> None:
    lines = "\n".join(
        [
            "dfd_uptime_seconds 61",
            *(f'dfd_window_to_event_seconds_bucket{{event="alert",le="{b}"}} 0' for b in (1, 10)),
            'dfd_window_to_event_seconds_bucket{event="alert",le="+Inf"} 3',
            'dfd_window_to_event_seconds_count{event="alert"} 3',
        ]
    )
    summary = summarize(lines + "\n", "here:1")
    assert summary[0] == "dfd ? at here:1: up 1m 01s"
    assert summary[-1] == "latency    window to score n/a; to alert p50 >10 s, p99 >10 s"
    with pytest.raises(StatusError, match="not with a dfd daemon's metrics"):
        summarize("other_metric 1\n", "here:1")


def test_the_metrics_server_serves_its_registry_and_a_taken_port_is_not_fatal() -> None:
    registry = CollectorRegistry()
    server = serve_metrics("127.0.0.1:0", registry)
    assert server is not None
    try:
        port = int(server.address.rsplit(":", 1)[1])
        with urllib.request.urlopen(f"http://{server.address}/metrics", timeout=5) as response:
            assert response.status == 200
        with capture_logs() as logs:
            assert serve_metrics(server.address, CollectorRegistry()) is None
        assert [entry["event"] for entry in logs] == ["metrics_unavailable"]
        assert logs[0]["log_level"] == "error"
    finally:
        server.close()
    with socket.socket() as probe, pytest.raises(ConnectionRefusedError):
        probe.connect(("127.0.0.1", port))


@pytest.mark.parametrize(
    ("metrics", "allow_remote", "error"),
    [
        ("127.0.0.1:9464", False, None),
        ("localhost:0", False, None),
        ("[::1]:9464", False, None),
        ("", False, None),
        ("0.0.0.0:9464", False, "binds to 0.0.0.0, not localhost"),
        (":9464", False, "binds to every interface"),
        ("0.0.0.0:9464", True, None),
        ("127.0.0.1", False, "serve.metrics must be HOST:PORT"),
        ("127.0.0.1:http", False, "serve.metrics must be HOST:PORT"),
        ("127.0.0.1:70000", False, "serve.metrics must be HOST:PORT"),
    ],
)
def test_metrics_setting(metrics: str, allow_remote: bool, error: str | None) -> None:
    if error is None:
        assert (
            ServeSettings(metrics=metrics, allow_remote_endpoints=allow_remote).metrics == metrics
        )
    else:
        with pytest.raises(ConfigError, match=re.escape(error)):
            ServeSettings(metrics=metrics, allow_remote_endpoints=allow_remote)
