"""The daemon at twice the load it can score, for ten minutes: memory, drops and delay.

Runs the real ``dfd serve`` as a subprocess, as operators run it: its PCM ingest receives N
calls pushed by a separate process over ZeroMQ (each the demo sample, 8 kHz mu-law decoded to
16-bit PCM, human then synthetic speech, in 20 ms messages at real-time pace, pushed again under
a new call id whenever it ends). A subscriber process timestamps every event. Every
``--sample-s`` seconds this script records the resident memory of the daemon and of each of its
detector worker processes (``/proc``) and scrapes its Prometheus endpoint (windows cut, scored,
shed, lost, queued; intake drops).

What overload must look like: queues stay bounded, so memory stays flat; capture never blocks
(the pusher's non-blocking sends never find the daemon's socket full, and the intake queue drops
nothing); the oldest waiting windows of each call are shed and counted; ``status`` events say
``overload``; alerts keep flowing, late by at most the per-call backlog bound.

    python benchmarks/overload.py [--calls 120] [--seconds 600] [--out docs/benchmarks/overload.md]

The default load, 120 calls at a 0.5 s hop, is twice the 60 calls the capacity benchmark
(``benchmarks/pipeline_capacity.py``, docs/benchmarks.md) found sustained on the 2-core host.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_capacity import cpu_name

from dfd.dsp.audio_stream import open_audio_stream

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "call-bonafide-then-synthetic-8k-ulaw.wav"
DEFAULT_OUT = ROOT / "docs" / "benchmarks" / "overload.md"
PACKET_S = 0.02
SAMPLE_RATE = 8_000
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ----------------------------------------------------------------------------- load: pusher


def push_calls(
    endpoint: str, calls: int, seconds: float, pcm: bytes, go: Connection, results: Connection
) -> None:
    """N calls of ``pcm`` (s16le, 8 kHz) at real-time pace, starts spread over 0.5 s. Call k's
    first call plays ``pcm`` from ``k / calls`` of the way in, so that calls end, and new ones
    start, evenly over time (as in a call centre) instead of all in the same half second; every
    later call plays it whole."""
    import zmq

    context = zmq.Context()
    push = context.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    push.connect(endpoint)
    packet_bytes = 2 * round(PACKET_S * SAMPLE_RATE)
    go.recv()
    begin = time.monotonic() + 0.1
    call_start = [begin + 0.5 * k / calls for k in range(calls)]  # the call's first sample
    position = [len(pcm) // packet_bytes * k // calls * packet_bytes for k in range(calls)]
    sent = [0] * calls  # bytes of the current call sent
    seq = [0] * calls
    generation = [0] * calls
    starts: dict[str, float] = {}
    blocked = late_ticks = 0
    tick = 0
    while True:
        tick += 1
        target = begin + tick * PACKET_S
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -PACKET_S:
            late_ticks += 1
        if target - begin >= seconds:
            break
        for k in range(calls):
            call_id = f"load-{k}-{generation[k]}"
            audio = len(pcm) - position[k]
            elapsed = int((target - call_start[k]) * SAMPLE_RATE) * 2
            due = min(audio, elapsed // packet_bytes * packet_bytes)
            while sent[k] < due:
                if sent[k] == 0:
                    starts[call_id] = call_start[k]
                at = position[k] + sent[k]
                chunk = pcm[at : min(at + packet_bytes, len(pcm))]
                try:
                    push.send_multipart(
                        [call_id.encode(), b"0", str(seq[k]).encode(), chunk], zmq.NOBLOCK
                    )
                except zmq.Again:
                    blocked += 1
                seq[k] += 1
                sent[k] += len(chunk)
            if sent[k] >= audio:
                push.send_multipart([call_id.encode(), b"0", str(seq[k]).encode(), b""])
                call_start[k] += audio / 2 / SAMPLE_RATE
                generation[k] += 1
                sent[k] = seq[k] = position[k] = 0
    for k in range(calls):  # end the calls still open
        if sent[k]:
            call_id = f"load-{k}-{generation[k]}"
            push.send_multipart([call_id.encode(), b"0", str(seq[k]).encode(), b""])
    results.send({"starts": starts, "blocked_sends": blocked, "late_ticks": late_ticks})
    push.close()
    context.term()


# ------------------------------------------------------------------------ events: subscriber


def receive_events(endpoint: str, ready: Connection, results: Connection) -> None:
    import zmq

    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    poller = zmq.Poller()
    poller.register(sub, zmq.POLLIN)
    announced = False
    scores: list[tuple[float, str, float]] = []
    alerts: list[tuple[float, str, float]] = []
    statuses: list[dict[str, Any]] = []
    ended: list[dict[str, Any]] = []
    while not ready.poll(0):
        if not poller.poll(50):
            continue
        topic, payload = sub.recv_multipart()
        now = time.monotonic()
        event = json.loads(payload)
        if topic == b"status":
            if not announced:
                ready.send("first status")  # the daemon is up and we hear it
                announced = True
            statuses.append({"at": now, **event})
        elif topic == b"score":
            scores.append((now, event["call_id"], event["end"]))
        elif topic == b"alert.raised":
            alerts.append((now, event["call_id"], event["end"]))
        elif topic == b"call.ended":
            ended.append(event)
    results.send({"scores": scores, "alerts": alerts, "statuses": statuses, "ended": ended})
    sub.close()
    context.term()


# ------------------------------------------------------------------------- daemon: memory


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid:
            found.append(int(entry.name))
    return found


def rss_mb(pid: int) -> float:
    try:
        resident = int((Path(f"/proc/{pid}/statm")).read_text().split()[1])
    except (OSError, IndexError):
        return 0.0
    return resident * PAGE_KB / 1024


def scrape(port: int) -> dict[str, float]:
    values: dict[str, float] = {}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("dfd_") and "{" not in line:
                name, _, value = line.partition(" ")
                values[name] = float(value)
    return values


def run(args: argparse.Namespace) -> dict[str, Any]:
    info, blocks = open_audio_stream(SAMPLE)
    if info.sample_rate != SAMPLE_RATE:
        raise SystemExit(f"{SAMPLE} is at {info.sample_rate} Hz, expected {SAMPLE_RATE}")
    audio = np.concatenate(list(blocks), axis=1)[0]
    pcm = (np.clip(audio, -1, 1 - 1 / 32768) * 32768).astype("<i2").tobytes()
    pcm_port, pub_port, metrics_port = free_port(), free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="dfd-overload-") as folder:
        config = Path(folder) / "dfd.toml"
        config.write_text(
            f'[logging]\nlevel = "warning"\nformat = "json"\n\n'
            f"[models]\nhop_s = {args.hop}\nworkers = {args.workers}\n\n"
            f'[serve]\npub = "tcp://127.0.0.1:{pub_port}"\n'
            f'pcm = ["tcp://127.0.0.1:{pcm_port}"]\npcm_rate = {SAMPLE_RATE}\n'
            f'state_directory = "{folder}"\npublish_scores = true\n'
            f'status_interval_s = 2.0\nmetrics = "127.0.0.1:{metrics_port}"\n'
        )
        log_path = Path(folder) / "daemon.log"
        dfd = Path(sys.executable).with_name("dfd")
        with log_path.open("wb") as log_file:
            daemon = subprocess.Popen(
                [str(dfd), "--config", str(config), "serve"], stdout=log_file, stderr=log_file
            )
        context = multiprocessing.get_context("spawn")
        sub_ready, sub_ready_child = context.Pipe()
        sub_results, sub_results_child = context.Pipe()
        subscriber = context.Process(
            target=receive_events,
            args=(f"tcp://127.0.0.1:{pub_port}", sub_ready_child, sub_results_child),
        )
        subscriber.start()
        if not sub_ready.poll(120):
            daemon.kill()
            raise SystemExit(f"the daemon did not come up:\n{log_path.read_text()[-2000:]}")
        sub_ready.recv()
        push_go, push_go_child = context.Pipe()
        push_results, push_results_child = context.Pipe()
        pusher = context.Process(
            target=push_calls,
            args=(
                f"tcp://127.0.0.1:{pcm_port}",
                args.calls,
                args.seconds,
                pcm,
                push_go_child,
                push_results_child,
            ),
        )
        pusher.start()
        time.sleep(1.0)
        started = time.monotonic()
        push_go.send("go")
        samples: list[dict[str, Any]] = []
        next_sample = started
        while pusher.is_alive() or push_results.poll(0):
            if push_results.poll(0):
                break
            if time.monotonic() >= next_sample:
                workers = children_of(daemon.pid)
                sample = {
                    "t": time.monotonic() - started,
                    "daemon_mb": rss_mb(daemon.pid),
                    "workers_mb": [rss_mb(pid) for pid in workers],
                    "metrics": scrape(metrics_port),
                }
                samples.append(sample)
                print(
                    f"{sample['t']:6.0f} s  daemon {sample['daemon_mb']:.0f} MB  workers "
                    f"{sum(sample['workers_mb']):.0f} MB  shed "
                    f"{sample['metrics'].get('dfd_windows_shed_total', 0):.0f}  queued "
                    f"{sample['metrics'].get('dfd_queued_windows', 0):.0f}",
                    flush=True,
                )
                next_sample += args.sample_s
            time.sleep(0.2)
        pushed = push_results.recv()
        pusher.join()
        time.sleep(3.0)  # the last windows and call.ended events
        final_metrics = scrape(metrics_port)
        daemon.send_signal(signal.SIGTERM)
        exit_code = daemon.wait(60)
        sub_ready.send("stop")
        events = sub_results.recv()
        subscriber.join()
        log_tail = log_path.read_text()[-3000:]
    return {
        "started": started,
        "samples": samples,
        "final_metrics": final_metrics,
        "pushed": pushed,
        "events": events,
        "exit_code": exit_code,
        "log_tail": log_tail,
        "call_s": len(audio) / SAMPLE_RATE,
    }


# ----------------------------------------------------------------------------------- report


def delays(
    arrivals: Sequence[tuple[float, str, float]], starts: dict[str, float], since: float
) -> np.ndarray:
    values = [
        arrived - (starts[call_id] + end)
        for arrived, call_id, end in arrivals
        if call_id in starts and starts[call_id] + end >= since
    ]
    return np.array(values)


def ms(values: np.ndarray, q: float) -> str:
    return f"{1000 * np.percentile(values, q):.0f}" if len(values) else "-"


def report(result: dict[str, Any], args: argparse.Namespace) -> str:
    import torch

    samples = result["samples"]
    started = result["started"]
    starts = result["pushed"]["starts"]
    events = result["events"]
    final = result["final_metrics"]
    total_mb = [s["daemon_mb"] + sum(s["workers_mb"]) for s in samples]
    times = np.array([s["t"] for s in samples])
    settled = times >= args.warmup
    slope = (
        float(np.polyfit(times[settled] / 60, np.array(total_mb)[settled], 1)[0])
        if settled.sum() >= 2
        else float("nan")
    )
    settled_mb = np.array(total_mb)[settled]
    overload_statuses = [s for s in events["statuses"] if s.get("overload")]
    statuses_in_run = [
        s for s in events["statuses"] if started <= s["at"] <= started + args.seconds
    ]
    window_delays = delays(events["scores"], starts, started + args.warmup)
    alert_delays = delays(events["alerts"], starts, started + args.warmup)
    # a call whose synthetic part (from 8.9 s on) was pushed to the end should raise an alert
    complete = [e for e in events["ended"] if e["reason"] == "end-message" and e["duration"] > 19]
    alerted = [e for e in complete if e["alerts"] > 0]

    def metric(name: str) -> int:
        return round(final.get(name, 0))

    lines = [
        f"# {args.calls} calls at a {args.hop:g} s hop for {args.seconds / 60:g} minutes: "
        "memory, drops and delay",
        "",
        "Generated by `benchmarks/overload.py`; do not edit by hand, run it again.",
        "",
        f"- command: `python benchmarks/overload.py --calls {args.calls} --seconds "
        f"{args.seconds:g} --hop {args.hop:g}`",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- CPU: {cpu_name()}, {os.cpu_count()} logical cores; GPU: "
        f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}",
        f"- Python {platform.python_version()}; the daemon: `dfd serve` with the embedded "
        f"default model, a window every {args.hop:g} s, detector workers: "
        f"{args.workers or os.cpu_count()}",
        f"- load: {args.calls} concurrent calls pushed to the PCM ingest (ZeroMQ) by another "
        f"process, each the {result['call_s']:.1f} s demo sample at real-time pace in 20 ms "
        "messages, pushed again under a new call id when it ends (the first calls start at "
        "staggered points of the sample, so calls end evenly over time). The capacity benchmark "
        "(docs/benchmarks.md) gives the load this host sustains.",
        "",
        "## Summary",
        "",
        "| measure | value |",
        "| --- | ---: |",
        f"| memory, daemon + workers, after {args.warmup:g} s: min / max (MB) "
        f"| {settled_mb.min():.0f} / {settled_mb.max():.0f} |",
        f"| memory trend after {args.warmup:g} s (least-squares slope) | {slope:+.2f} MB/min |",
        f"| windows cut from calls | {metric('dfd_windows_total')} |",
        f"| windows scored | {metric('dfd_windows_scored_total')} |",
        f"| windows shed (oldest first, per call) | {metric('dfd_windows_shed_total')} |",
        f"| windows lost (detector failures) | {metric('dfd_windows_lost_total')} |",
        f"| capture events dropped at the intake queue | {metric('dfd_intake_dropped_total')} |",
        f"| pusher sends that found the ingest socket full | {result['pushed']['blocked_sends']} |",
        f"| status events saying overload / all status events | {len(overload_statuses)} / "
        f"{len(statuses_in_run)} |",
        f"| calls pushed to the end / of those with an alert | {len(complete)} / {len(alerted)} |",
        f"| window delay p50 / p99 (ms), after {args.warmup:g} s | {ms(window_delays, 50)} / "
        f"{ms(window_delays, 99)} |",
        f"| alert delay p50 / p99 (ms), after {args.warmup:g} s | {ms(alert_delays, 50)} / "
        f"{ms(alert_delays, 99)} |",
        f"| daemon exit status after SIGTERM | {result['exit_code']} |",
        "",
        "Delay = the event's arrival at the subscriber minus the moment the window's last sample "
        "was pushed. Under overload each call keeps at most "
        "`pipeline.max_queued_windows_per_stream` windows waiting (8 by default, 4 s of hops at "
        "0.5 s): older ones are shed, so the delay is bounded instead of growing.",
        "",
        "## Over time",
        "",
        "| minute | memory daemon / workers (MB) | windows scored | shed | queued windows "
        "| intake dropped |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    per_minute = max(1, round(60 / args.sample_s))
    for sample in samples[::per_minute] + ([samples[-1]] if len(samples) % per_minute != 1 else []):
        m = sample["metrics"]
        lines.append(
            f"| {sample['t'] / 60:.1f} | {sample['daemon_mb']:.0f} / "
            f"{' + '.join(f'{w:.0f}' for w in sample['workers_mb'])} "
            f"| {m.get('dfd_windows_scored_total', 0):.0f} "
            f"| {m.get('dfd_windows_shed_total', 0):.0f} "
            f"| {m.get('dfd_queued_windows', 0):.0f} | {m.get('dfd_intake_dropped_total', 0):.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=120)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--hop", type=float, default=0.5)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--warmup", type=float, default=60.0)
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    result = run(args)
    text = report(result, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    print(f"wrote {args.out}")
    if result["exit_code"] != 0:
        print(result["log_tail"])


if __name__ == "__main__":
    main()
