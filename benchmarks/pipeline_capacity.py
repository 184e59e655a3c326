"""How many concurrent real-time calls the daemon sustains, and how fast alerts reach the bus.

Runs the real daemon (``service.serve.Daemon``: pipeline, detector worker processes, ZeroMQ
bus, alert journal) in this process with a load source that plays N calls at real-time pace in
20 ms packets (what RTP delivers), their starts spread over one hop so windows arrive evenly.
Every call is the demo sample (8 kHz mu-law, human then synthetic speech, 20.3 s), played
again under a new call id each time it ends, so calls start, raise alerts and end throughout.

A subscriber in a separate process receives every event from the bus and timestamps it. The
delay of a window is the time its ``score`` (or ``alert.raised``) event arrives minus the time
the window's last sample was sent into the daemon. The first ``--warmup`` seconds (20) are left
out: every call starts in the run's first half second, a burst no steady state has.

N calls *keep up* when no window was shed or lost, no capture event was dropped, and the p99
window delay stayed under one hop (the backlog is not growing); they *meet the target* when,
on top of that, the p99 window delay and the p99 alert delay are at most 100 ms (the live-
capacity issue's target).

    python benchmarks/pipeline_capacity.py [--calls 20,40,...] [--hops 0.5,1.0] [--seconds 40]
        [--batch-size 4] [--model BUNDLE] [--repeat N] [--out FILE]

``--repeat N`` measures every load N times (in turns, so a noisy spell on a shared host does not
fall on one load's runs only) and gives each run its row: a load is *within the target* only
when every run of it was.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
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
from dfd.daemon.settings import PipelineSettings, ServeSettings, Settings
from dfd.dsp.audio_stream import open_audio_stream

SAMPLE = (
    Path(__file__).resolve().parent.parent / "samples" / "call-bonafide-then-synthetic-8k-ulaw.wav"
)
DEFAULT_OUT = Path("docs/benchmarks/capacity.md")
TARGET_P99_S = 0.1  # p99 window and alert delay the live-capacity target allows
PACKET_S = 0.02


class PacedCalls(Source):
    """``calls`` concurrent calls, each the sample played at real-time pace in 20 ms packets.

    Call k starts ``spread_s * k / calls`` into the run (so windows arrive evenly over a hop).
    Its first call plays the sample from ``k / calls`` of the way in, so that calls end, and
    new ones start, evenly over the sample's length as they do in a call centre; every later
    call plays it whole. ``staggered_ends=False`` starts every first call at the sample's start:
    then every call ends within the same hop, a burst the daemon scores on top of the steady load
    (each ending call adds a window over its tail)."""

    name = "load"

    def __init__(
        self,
        calls: int,
        audio: np.ndarray,
        rate: int,
        spread_s: float,
        staggered_ends: bool = True,
    ) -> None:
        super().__init__()
        self.calls, self.audio, self.rate = calls, audio, rate
        self.offsets = [spread_s * k / calls for k in range(calls)]
        packet = round(PACKET_S * rate)
        self.first_positions = [
            (len(audio) * k // calls) // packet * packet if staggered_ends else 0
            for k in range(calls)
        ]
        self.starts: dict[str, float] = {}  # call id -> monotonic time of its first sample
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, sink: Sink) -> None:
        self._thread = threading.Thread(target=self._run, args=(sink,), daemon=True)
        self._thread.start()

    def _run(self, sink: Sink) -> None:
        packet = round(PACKET_S * self.rate)
        length = len(self.audio)
        begin = time.monotonic() + 0.1
        position = list(self.first_positions)  # where in the sample this call began
        call_start = [begin + offset for offset in self.offsets]  # its first sample's time
        sent = [0] * self.calls  # samples of this call sent
        generation = [0] * self.calls
        tick = 0
        while not self._stop.is_set():
            tick += 1
            now_target = begin + tick * PACKET_S
            delay = now_target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            for k in range(self.calls):
                call_id = f"load-{k}-{generation[k]}"
                available = length - position[k]
                due = min(available, int((now_target - call_start[k]) * self.rate))
                due = due // packet * packet if due < available else due
                if due <= sent[k]:
                    continue
                if sent[k] == 0:
                    self.starts[call_id] = call_start[k]
                chunk = self.audio[position[k] + sent[k] : position[k] + due]
                sink(AudioChunk(call_id, 0, chunk, self.rate))
                sent[k] = due
                if due == available:
                    sink(StreamEnded(call_id, 0, "bye"))
                    call_start[k] += available / self.rate
                    generation[k] += 1
                    position[k], sent[k] = 0, 0

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
    def keeps_up(self) -> bool:
        """Nothing shed, lost or dropped, and the p99 window delay under one hop."""
        complete = self.shed == 0 and self.lost == 0 and self.intake_dropped == 0
        return complete and _p99(self.score_delays) < self.hop_s

    @property
    def meets_target(self) -> bool:
        """Keeps up, with p99 window and alert delays at most ``TARGET_P99_S``."""
        alert_p99 = _p99(self.alert_delays) if len(self.alert_delays) else 0.0
        return (
            self.keeps_up and _p99(self.score_delays) <= TARGET_P99_S and alert_p99 <= TARGET_P99_S
        )


def _p99(values: np.ndarray) -> float:
    return float(np.percentile(values, 99)) if len(values) else float("inf")


def run_load(
    calls: int,
    seconds: float,
    warmup: float,
    workers: int,
    hop_s: float,
    batch_size: int,
    model: str = "default",
    staggered_ends: bool = True,
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
            models=dataclasses.replace(
                settings.models, bundles=(model,), workers=workers, hop_s=hop_s
            ),
            pipeline=dataclasses.replace(settings.pipeline, batch_size=batch_size),
        )
        source = PacedCalls(calls, audio, info.sample_rate, hop_s, staggered_ends)
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
    """The ``q``th percentile in milliseconds, or "-" when there are no values."""
    return f"{1000 * np.percentile(values, q):.0f}" if len(values) else "-"


def report(runs: Sequence[Run], args: argparse.Namespace, model: str) -> str:
    import torch

    lines = [
        "# Concurrent real-time calls and window-to-alert delay",
        "",
        "Generated by `benchmarks/pipeline_capacity.py`; do not edit by hand, run it again.",
        "",
        f"- command: `python benchmarks/pipeline_capacity.py --calls {args.calls} "
        f"--hops {args.hops} --seconds {args.seconds:g} --warmup {args.warmup:g} "
        f"--batch-size {args.batch_size}"
        + (f" --repeat {args.repeat}" if args.repeat > 1 else "")
        + (f" --model {args.model}" if args.model != "default" else "")
        + (" --synchronised-ends" if args.synchronised_ends else "")
        + "`",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- CPU: {cpu_name()}, {os.cpu_count()} logical cores; GPU: "
        f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}",
        f"- Python {platform.python_version()}, torch {torch.__version__}",
        f"- model: {model}, 2 s windows; detector workers: "
        f"{args.workers or os.cpu_count()} processes, 1 ONNX Runtime thread each; "
        f"`[pipeline] batch_size = {args.batch_size}`",
        "",
        "Each call is one caller stream: the demo sample (human, then synthetic speech) at 8 kHz "
        "in 20 ms packets at real-time pace, replayed under a new call id whenever it ends, all "
        "in the daemon's process (the load thread takes its share of the cores). "
        + (
            "Every first call starts at the sample's start, so all calls end within one hop "
            "(a burst: each ending call adds a window over its tail). "
            if args.synchronised_ends
            else "The first calls start at staggered points of the sample, so calls end and "
            "new ones start evenly over time, as in a call centre, not all at once. "
        )
        + "Delay = the "
        "event's arrival at a subscriber process minus the moment the window's last sample was "
        "due (so it includes packetisation, resampling, batching, scoring, decisions and the "
        "ZeroMQ hop). Alert delay is counted from the end of the window that tripped the alert. "
        "*Keeps up* = nothing shed, lost or dropped and p99 window delay under one hop (the "
        "backlog is not growing); *target* = keeps up with p99 window and alert delays at most "
        f"{1000 * TARGET_P99_S:.0f} ms.",
        "",
    ]
    for hop in dict.fromkeys(r.hop_s for r in runs):
        lines += _hop_section([r for r in runs if r.hop_s == hop], hop)
    return "\n".join(lines)


def _hop_section(runs: Sequence[Run], hop: float) -> list[str]:
    loads = sorted({r.calls for r in runs})
    of_load = {calls: [r for r in runs if r.calls == calls] for calls in loads}
    kept_up = max((c for c in loads if all(r.keeps_up for r in of_load[c])), default=0)
    on_target = max((c for c in loads if all(r.meets_target for r in of_load[c])), default=0)
    repeated = any(len(of_load[c]) > 1 for c in loads)
    lines = [
        f"## A window every {hop:g} s",
        "",
        "| calls | " + ("run | " if repeated else "") + "windows cut/s | CPU used (cores) "
        "| window delay p50 / p99 (ms) | alerts | alert delay p50 / p99 (ms) "
        "| shed, lost, dropped | keeps up | target |",
        "| ---: | " + ("---: | " if repeated else "") + "---: | ---: | ---: | ---: | ---: "
        "| ---: | --- | --- |",
    ]
    for calls in loads:
        for number, r in enumerate(of_load[calls], start=1):
            lines.append(_row(r, number if repeated else None))
    runs_word = " in every run" if repeated else ""
    lines += [
        "",
        f"Most calls kept up with{runs_word}: **{kept_up}**; most within the target{runs_word}: "
        f"**{on_target}**.",
        "",
    ]
    return lines


def _row(r: Run, number: int | None) -> str:
    return (
        f"| {r.calls} | "
        + (f"{number} | " if number is not None else "")
        + f"{r.windows / r.seconds:.0f} | {r.cpu_s / r.seconds:.2f} "
        f"| {_ms(r.score_delays, 50)} / {_ms(r.score_delays, 99)} | {len(r.alert_delays)} "
        f"| {_ms(r.alert_delays, 50)} / {_ms(r.alert_delays, 99)} "
        f"| {r.shed + r.lost + r.intake_dropped} | {'yes' if r.keeps_up else 'no'} "
        f"| {'yes' if r.meets_target else 'no'} |"
    )


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
    parser.add_argument(
        "--warmup",
        type=float,
        default=20.0,
        help="seconds left out of the delays: every call starts in the run's first half second",
    )
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=PipelineSettings().batch_size,
        help="[pipeline] batch_size (default: the daemon's)",
    )
    parser.add_argument("--model", default="default", help="bundle folder (default: embedded)")
    parser.add_argument(
        "--synchronised-ends",
        action="store_true",
        help="start every first call at the sample's start, so that all calls end in one hop",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of every load, taken in turns (default 1)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    configure_logging("error", "console")
    identity = ModelSet.load([args.model]).identity
    model = f"{identity['name']} {identity['version']}" + (
        " (the embedded default)" if args.model == "default" else f" ({args.model})"
    )
    runs = []
    loads = [(float(h), int(c)) for h in args.hops.split(",") for c in args.calls.split(",")]
    for _, (hop, calls) in itertools.product(range(args.repeat), loads):
        run = run_load(
            calls,
            args.seconds,
            args.warmup,
            args.workers,
            hop,
            args.batch_size,
            args.model,
            staggered_ends=not args.synchronised_ends,
        )
        print(
            f"hop {hop:g} s, {calls} calls: {run.windows / run.seconds:.0f} windows/s, "
            f"p50 {_ms(run.score_delays, 50)} ms, p99 {_ms(run.score_delays, 99)} ms, "
            f"alert p99 {_ms(run.alert_delays, 99)} ms, shed {run.shed}, "
            f"keeps up {run.keeps_up}, target {run.meets_target}",
            flush=True,
        )
        runs.append(run)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(runs, args, model))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
