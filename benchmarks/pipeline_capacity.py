"""How many concurrent real-time calls the daemon sustains, and how fast alerts reach the bus.

Runs the real daemon (``service.serve.Daemon``: pipeline, detector worker processes, ZeroMQ
bus, alert journal) in this process with a load source that plays N calls at real-time pace in
20 ms packets (what RTP delivers), their starts spread over one hop so windows arrive evenly.
Every call is the demo sample (8 kHz mu-law, human then synthetic speech, 20.3 s), played
again under a new call id each time it ends, so calls start, raise alerts and end throughout.

A subscriber in a separate process receives every event from the bus and timestamps it. The
delay of a window is the time its ``score`` (or ``alert.raised``) event arrives minus the time
the window's last sample was sent into the daemon. The first ``--warmup`` seconds are ignored.

N is sustained when no window was shed or lost, no capture event was dropped, and the p99
window delay stayed under one hop (0.5 s, so the backlog is not growing).

    python benchmarks/pipeline_capacity.py [--calls 20,40,...] [--seconds 40] [--out FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import platform
import tempfile
import threading
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from dfd.daemon.engine.events import AudioChunk, StreamEnded
from dfd.daemon.engine.models import ModelSet
from dfd.daemon.logs import configure_logging
from dfd.daemon.service.capture.base import Sink, Source
from dfd.daemon.service.serve import Daemon
from dfd.daemon.settings import ServeSettings, Settings
from dfd.dsp.audio_stream import open_audio_stream

SAMPLE = (
    Path(__file__).resolve().parent.parent / "samples" / "call-bonafide-then-synthetic-8k-ulaw.wav"
)
DEFAULT_OUT = Path("docs/benchmarks.md")
PACKET_S = 0.02


class PacedCalls(Source):
    """``calls`` concurrent calls, each the sample played at real-time pace in 20 ms packets."""

    name = "load"

    def __init__(self, calls: int, audio: np.ndarray, rate: int, spread_s: float) -> None:
        super().__init__()
        self.calls, self.audio, self.rate = calls, audio, rate
        self.offsets = [spread_s * k / calls for k in range(calls)]
        self.starts: dict[str, float] = {}  # call id -> monotonic time of its sample 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, sink: Sink) -> None:
        self._thread = threading.Thread(target=self._run, args=(sink,), daemon=True)
        self._thread.start()

    def _run(self, sink: Sink) -> None:
        packet = round(PACKET_S * self.rate)
        length = len(self.audio)
        begin = time.monotonic() + 0.1
        sent = [0] * self.calls
        generation = [0] * self.calls
        tick = 0
        while not self._stop.is_set():
            tick += 1
            now_target = begin + tick * PACKET_S
            delay = now_target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            for k in range(self.calls):
                start = begin + self.offsets[k] + generation[k] * (length / self.rate)
                call_id = f"load-{k}-{generation[k]}"
                due = min(length, int((now_target - start) * self.rate) // packet * packet)
                if due <= sent[k]:
                    continue
                if sent[k] == 0:
                    self.starts[call_id] = start
                sink(AudioChunk(call_id, 0, self.audio[sent[k] : due], self.rate))
                sent[k] = due
                if due == length:
                    sink(StreamEnded(call_id, 0, "bye"))
                    generation[k] += 1
                    sent[k] = 0

    def stop(self, reason: str = "source-stopped") -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def _subscriber(endpoint: str, ready: Connection, results: Connection) -> None:
    import json

    import zmq

    context = zmq.Context()
    socket = context.socket(zmq.SUB)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.RCVHWM, 0)
    for topic in (b"score", b"alert.raised", b"status"):
        socket.setsockopt(zmq.SUBSCRIBE, topic)
    socket.connect(endpoint)
    ready.send("connected")
    received: list[tuple[float, str, str, float]] = []
    poller = zmq.Poller()
    poller.register(socket, zmq.POLLIN)
    while True:
        if ready.poll(0):
            break
        if not poller.poll(50):
            continue
        topic, payload = socket.recv_multipart()
        now = time.monotonic()
        event = json.loads(payload)
        if topic == b"status":
            continue
        if event.get("score") is None:
            continue
        received.append((now, topic.decode(), event["call_id"], event["end"]))
    results.send(received)
    socket.close()
    context.term()


@dataclasses.dataclass
class Run:
    calls: int
    hop_s: float
    windows: int
    shed: int
    lost: int
    intake_dropped: int
    score_delays: np.ndarray
    alert_delays: np.ndarray
    cpu_s: float
    seconds: float

    @property
    def sustained(self) -> bool:
        p99 = np.percentile(self.score_delays, 99) if len(self.score_delays) else np.inf
        return self.shed == 0 and self.lost == 0 and self.intake_dropped == 0 and p99 < self.hop_s


def run_load(
    calls: int, seconds: float, warmup: float, workers: int, hop_s: float, batch_size: int = 16
) -> Run:
    info, blocks = open_audio_stream(SAMPLE)
    audio = np.concatenate(list(blocks), axis=1)[0]
    with tempfile.TemporaryDirectory(prefix="dfd-bench-") as state:
        settings = Settings(
            serve=ServeSettings(
                pub="tcp://127.0.0.1:*", state_directory=state, publish_scores=True
            ),
        )
        settings = dataclasses.replace(
            settings,
            models=dataclasses.replace(settings.models, workers=workers, hop_s=hop_s),
            pipeline=dataclasses.replace(settings.pipeline, batch_size=batch_size),
        )
        source = PacedCalls(calls, audio, info.sample_rate, spread_s=hop_s)
        stop_at: list[float] = []

        def stop_when_done(daemon: Daemon) -> None:
            if stop_at and time.monotonic() >= stop_at[0]:
                daemon.request_stop()

        daemon = Daemon(settings, [source], on_loop=stop_when_done)
        context = multiprocessing.get_context("spawn")
        ready_parent, ready_child = context.Pipe()
        results_parent, results_child = context.Pipe()
        subscriber = context.Process(
            target=_subscriber, args=(daemon.bus.endpoint, ready_child, results_child)
        )
        subscriber.start()
        ready_parent.recv()
        time.sleep(0.5)  # let the subscription reach the publisher
        cpu_before = os.times()
        started = time.monotonic()
        stop_at.append(started + seconds)
        daemon.run()
        cpu_after = os.times()
        ready_parent.send("stop")
        received = results_parent.recv()
        subscriber.join()
    counters = daemon.pipeline.counters
    score_delays, alert_delays = [], []
    for arrived, topic, call_id, end in received:
        start = source.starts.get(call_id)
        if start is None or start + end < started + warmup or arrived > started + seconds:
            continue
        delay = arrived - (start + end)
        (alert_delays if topic == "alert.raised" else score_delays).append(delay)
    cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    cpu += (cpu_after.children_user - cpu_before.children_user) + (
        cpu_after.children_system - cpu_before.children_system
    )
    return Run(
        calls,
        hop_s,
        counters.windows,
        counters.windows_shed,
        counters.windows_lost,
        daemon.counters.intake_dropped,
        np.array(score_delays),
        np.array(alert_delays),
        cpu,
        seconds,
    )


def _ms(values: np.ndarray, q: float) -> str:
    return f"{1000 * np.percentile(values, q):.0f}" if len(values) else "-"


def report(runs: Sequence[Run], args: argparse.Namespace, model: str) -> str:
    import torch

    lines = [
        "# Benchmarks",
        "",
        "Front-end throughput alone: [benchmarks/frontends.md](benchmarks/frontends.md).",
        "",
        "## Concurrent real-time calls and window-to-alert delay",
        "",
        "Generated by `benchmarks/pipeline_capacity.py`; do not edit by hand, run it again.",
        "",
        f"- command: `python benchmarks/pipeline_capacity.py --calls {args.calls} "
        f"--hops {args.hops} --seconds {args.seconds:g}`",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- CPU: {cpu_name()}, {os.cpu_count()} logical cores; GPU: "
        f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}",
        f"- Python {platform.python_version()}, torch {torch.__version__}",
        f"- model: {model} (the embedded default), 2 s windows; detector workers: "
        f"{args.workers or os.cpu_count()} processes, 1 ONNX Runtime thread each",
        "",
        "Each call is one caller stream: the demo sample (human, then synthetic speech) at 8 kHz "
        "in 20 ms packets at real-time pace, replayed under a new call id whenever it ends. "
        "Delay = the event's arrival at a subscriber process minus the moment the window's last "
        "sample was sent into the daemon (so it includes packetisation, resampling, batching, "
        "scoring, decisions and the ZeroMQ hop). Sustained = nothing shed, lost or dropped, and "
        "p99 window delay under one hop (the backlog is not growing). Alert delay is counted "
        "from the end of the window that tripped the alert (3 of the last 5 speech windows).",
        "",
    ]
    for hop in dict.fromkeys(r.hop_s for r in runs):
        lines += _hop_section([r for r in runs if r.hop_s == hop], hop)
    return "\n".join(lines)


def _hop_section(runs: Sequence[Run], hop: float) -> list[str]:
    best = max((r.calls for r in runs if r.sustained), default=0)
    lines = [
        f"### A window every {hop:g} s",
        "",
        "| calls | windows scored/s | CPU used (cores) | window delay p50 / p99 (ms) "
        "| alerts | alert delay p50 / p99 (ms) | shed | sustained |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in runs:
        lines.append(
            f"| {r.calls} | {r.windows / r.seconds:.0f} | {r.cpu_s / r.seconds:.2f} "
            f"| {_ms(r.score_delays, 50)} / {_ms(r.score_delays, 99)} | {len(r.alert_delays)} "
            f"| {_ms(r.alert_delays, 50)} / {_ms(r.alert_delays, 99)} "
            f"| {r.shed + r.lost + r.intake_dropped} | {'yes' if r.sustained else 'no'} |"
        )
    lines += ["", f"Largest load sustained: **{best} concurrent calls**.", ""]
    return lines


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", default="20,40,60,80,100")
    parser.add_argument("--hops", default="0.5", help="window hops to measure, e.g. 0.5,1.0")
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16, help="[pipeline] batch_size")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    configure_logging("error", "console")
    model = ModelSet.load(["default"]).identity
    runs = []
    loads = [(float(h), int(c)) for h in args.hops.split(",") for c in args.calls.split(",")]
    for hop, calls in loads:
        run = run_load(calls, args.seconds, args.warmup, args.workers, hop, args.batch_size)
        print(
            f"hop {hop:g} s, {calls} calls: {run.windows / run.seconds:.0f} windows/s, "
            f"p50 {_ms(run.score_delays, 50)} ms, p99 {_ms(run.score_delays, 99)} ms, "
            f"alerts {len(run.alert_delays)}, shed {run.shed}, sustained {run.sustained}",
            flush=True,
        )
        runs.append(run)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(runs, args, f"{model['name']} {model['version']}"))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
