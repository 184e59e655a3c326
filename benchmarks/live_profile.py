"""Where the live daemon's time goes: py-spy over the capacity benchmark, by process and stage.

Runs ``benchmarks/pipeline_capacity.py`` (the real daemon in-process, detector worker processes,
a subscriber process) at one load under ``py-spy record --subprocesses --threads`` (py-spy from
PyPI samples every process without changing it; idle threads are not sampled), then sums the
samples of each thread into the stages of the packet path, and draws the daemon's main thread
and the detector workers as flame graphs (SVG, the widest frames labelled).

A stage's share is in cores: its samples / sampling rate / seconds of load (start-up and
shut-down, sampled too, are counted apart, in seconds). A thread that is ready to run but
waiting for a core is still sampled, so when the host is saturated the shares add up to more
than its cores. py-spy itself takes a share of the cores, so the delays of a profiled run are
worse than the capacity benchmark's on its own.

    python benchmarks/live_profile.py --label after [--calls 150] [--hop 0.5] [--seconds 30]
        [--model BUNDLE] [--batch-size N] [--pythonpath DIR --capacity-script FILE]

``--pythonpath``/``--capacity-script`` profile another checkout of dfd (a copy of an older
commit with its ``dfd`` package importable from DIR), for a before/after comparison.
Writes docs/benchmarks/profile-LABEL.md and docs/benchmarks/profile-LABEL-*.svg.
"""

from __future__ import annotations

import argparse
import collections
import html
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "docs" / "benchmarks"
RATE = 25  # samples per second per thread (py-spy takes a share of the cores too)

# (stage, any of these function names in the stack): the first match names a sample's stage
MAIN_STAGES = [
    ("start-up and shut-down", ("_find_and_load", "ModelSet.load", "Daemon.shutdown", "drain")),
    ("resampling", ("StreamResampler",)),
    ("speech gate", ("SpeechGate", "SpeechFrames")),
    ("cutting windows, per-packet work", ("Pipeline.accept", "_take_intake")),
    ("features (mean removal, front ends)", ("FeatureStage.compute",)),
    ("batching and hand-off to workers", ("Pipeline._dispatch", "WorkerPool.submit")),
    ("decisions, events, ZeroMQ bus", ("Pipeline._apply", "Pipeline._finish_batch", "emit")),
    ("waiting on worker pipes", ("WorkerPool.collect",)),
]
WORKER_STAGES = [
    ("start-up", ("_find_and_load", "DetectorSession.__init__", "load_bundle")),
    ("ONNX Runtime", ("Session.run",)),
    ("receiving batches", ("recv",)),
    ("sending results", ("send",)),
]


def record(args: argparse.Namespace, raw: Path) -> None:
    spy = Path(sys.executable).with_name("py-spy")
    script = args.capacity_script or ROOT / "benchmarks" / "pipeline_capacity.py"
    command = [
        str(spy if spy.exists() else "py-spy"),
        "record", "-r", str(RATE), "-f", "raw", "--subprocesses", "--threads",
        "-o", str(raw), "--",
        sys.executable, str(script), "--calls", str(args.calls), "--hops", str(args.hop),
        "--seconds", str(args.seconds), "--out", str(raw.with_suffix(".md")),
    ]  # fmt: skip
    if args.model:
        command += ["--model", args.model]
    if args.batch_size:
        command += ["--batch-size", str(args.batch_size)]
    env = dict(os.environ)
    if args.pythonpath:
        env["PYTHONPATH"] = str(args.pythonpath)
    started = time.monotonic()
    subprocess.run(command, check=True, env=env, cwd=args.pythonpath or ROOT)
    args.sampled_s = time.monotonic() - started


def read_raw(raw: Path) -> dict[str, collections.Counter[tuple[str, ...]]]:
    """Stacks (outermost first, as 'function (file)') with their sample counts, per thread
    role: daemon main thread, load thread, detector worker N, worker hand-off, subscriber."""
    roles: dict[str, collections.Counter[tuple[str, ...]]] = collections.defaultdict(
        collections.Counter
    )
    for line in raw.read_text().splitlines():
        if not line.strip():
            continue
        stack_text, count = line.rsplit(" ", 1)
        frames = stack_text.split(";")
        # the process frame quotes its command line, which may itself hold ";" (python -c ...)
        at = next((i for i, f in enumerate(frames) if i and f.startswith("thread (")), 1)
        process, thread = ";".join(frames[:at]), frames[at]
        calls = tuple(_short(f) for f in frames[at + 1 :])
        roles[_role(process, thread, calls)][calls] += int(count)
    return roles


def _short(frame: str) -> str:
    match = re.match(r"(.*?) \((.*?):\d+\)$", frame)
    if not match:
        return frame
    function, path = match.groups()
    return f"{function} ({'/'.join(path.split('/')[-2:])})"


def _role(process: str, thread: str, calls: tuple[str, ...]) -> str:
    text = " ".join(calls)
    if "worker_main" in text:
        return "detector workers (all)"
    if "_subscriber" in text:
        return "subscriber process (the benchmark's)"
    if "PacedCalls._run" in text:
        return "load thread (the benchmark's calls)"
    if "-send" in thread:
        return "worker hand-off threads"
    if "MainThread" in thread and "spawn_main" not in process:
        return "daemon main thread"
    if "spawn_main" in process:
        return "spawned processes' start-up (imports)"
    return f"other ({thread.split(':')[-1].strip()})"


def stages(
    stacks: collections.Counter[tuple[str, ...]], table: list[tuple[str, tuple[str, ...]]]
) -> collections.Counter[str]:
    totals: collections.Counter[str] = collections.Counter()
    for calls, count in stacks.items():
        text = " ".join(calls)
        stage = next((name for name, keys in table if any(k in text for k in keys)), "other")
        totals[stage] += count
    return totals


def flame_svg(stacks: collections.Counter[tuple[str, ...]], title: str) -> str:
    """An icicle flame graph: the root on top, each frame as wide as its samples."""
    width, row, min_px = 1200.0, 16, 2.0
    counts: dict[tuple[str, ...], int] = collections.Counter()
    for calls, count in stacks.items():
        for depth in range(1, len(calls) + 1):
            counts[calls[:depth]] += count
    total = sum(stacks.values()) or 1
    children: dict[tuple[str, ...], list[tuple[str, ...]]] = collections.defaultdict(list)
    for path in counts:
        children[path[:-1]].append(path)
    rects: list[str] = []
    depth_max = 0

    def draw(path: tuple[str, ...], x: float) -> None:
        nonlocal depth_max
        w = width * counts[path] / total
        if w < min_px:
            return
        y = 24 + row * (len(path) - 1)
        depth_max = max(depth_max, len(path))
        hue = 20 + (hash(path[-1]) % 40)
        name = path[-1]
        share = 100 * counts[path] / total
        text = name if len(name) * 6.5 < w else name[: max(0, int(w / 6.5) - 2)] + ".."
        rects.append(
            f'<g><title>{html.escape(name)}: {share:.1f} %</title><rect x="{x:.1f}" y="{y}" '
            f'width="{w:.1f}" height="{row - 1}" fill="hsl({hue},80%,60%)"/>'
            + (f'<text x="{x + 2:.1f}" y="{y + 12}">{html.escape(text)}</text>' if w > 20 else "")
            + "</g>"
        )
        child_x = x
        for child in sorted(children[path], key=lambda p: -counts[p]):
            draw(child, child_x)
            child_x += width * counts[child] / total

    x = 0.0
    for top in sorted(children[()], key=lambda p: -counts[p]):
        draw(top, x)
        x += width * counts[top] / total
    height = 24 + row * depth_max + 8
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height}" '
        f'font-family="monospace" font-size="11">'
        f'<text x="4" y="16" font-size="13">{html.escape(title)}</text>'
        + "".join(rects)
        + "</svg>\n"
    )


def report(
    roles: dict[str, collections.Counter[tuple[str, ...]]],
    args: argparse.Namespace,
    svgs: Iterable[tuple[str, str]],
) -> str:
    seconds = args.seconds
    lines = [
        f"# Live profile: {args.label}",
        "",
        "Generated by `benchmarks/live_profile.py`; do not edit by hand, run it again.",
        "",
        f"- command: `python benchmarks/live_profile.py --label {args.label} --calls "
        f"{args.calls} --hop {args.hop:g} --seconds {args.seconds:g}"
        + (f" --model {args.model}" if args.model else "")
        + (f" --batch-size {args.batch_size}" if args.batch_size else "")
        + (" --pythonpath ... --capacity-script ..." if args.pythonpath else "")
        + "`",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {args.note}",
        f"- {args.calls} calls at a {args.hop:g} s hop for {args.seconds:g} s "
        f"(`benchmarks/pipeline_capacity.py`, {args.sampled_s:.0f} s sampled with its start-up "
        f"and drain); py-spy at {RATE} samples/s per thread",
        "",
        "| thread | stage | cores |",
        "| --- | --- | ---: |",
    ]
    for role, stacks in sorted(roles.items(), key=lambda item: -sum(item[1].values())):
        table = (
            MAIN_STAGES if role == "daemon main thread"
            else WORKER_STAGES if role.startswith("detector workers") else []
        )  # fmt: skip
        split = stages(stacks, table)
        setup = sum(count for stage, count in split.items() if stage.startswith("start-up"))
        if role.endswith("start-up (imports)"):
            setup = sum(stacks.values())
        busy = sum(stacks.values()) - setup
        lines.append(f"| **{role}** | under load | **{busy / RATE / seconds:.2f}** |")
        for stage, count in split.most_common():
            if table and not stage.startswith("start-up"):
                lines.append(f"| | {stage} | {count / RATE / seconds:.2f} |")
        if setup:
            lines.append(f"| | (start-up and shut-down: {setup / RATE:.1f} s, not counted) | |")
    lines += ["", "Flame graphs (hover a frame for its share):", ""]
    lines += [f"- [{name}]({file})" for name, file in svgs]
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--label", required=True, help="names the output files (before, after)")
    parser.add_argument("--calls", type=int, default=150)
    parser.add_argument("--hop", type=float, default=0.5)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--model", default="", help="bundle folder (default: embedded)")
    parser.add_argument("--batch-size", type=int, default=0)
    parser.add_argument("--pythonpath", type=Path)
    parser.add_argument("--capacity-script", type=Path)
    parser.add_argument("--note", default="", help="a line on what this run is (commit, model)")
    args = parser.parse_args()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dfd-profile-") as scratch:
        raw = Path(scratch) / "profile.txt"
        record(args, raw)
        roles = read_raw(raw)
        capacity = raw.with_suffix(".md").read_text() if raw.with_suffix(".md").exists() else ""
    svgs = []
    for role in ["daemon main thread", "detector workers (all)"]:
        if role not in roles:
            continue
        name = f"profile-{args.label}-{role.split(' (')[0].replace(' ', '-')}.svg"
        (OUT_DIR / name).write_text(flame_svg(roles[role], f"{args.label}: {role}"))
        svgs.append((role, name))
    text = report(roles, args, svgs)
    table = [line for line in capacity.splitlines() if line.startswith("|")]
    if len(table) >= 3:  # the capacity benchmark's header, its rule and this run's row
        text += "\nThe capacity benchmark's row for this run:\n\n" + "\n".join(table[:3]) + "\n"
    out = OUT_DIR / f"profile-{args.label}.md"
    out.write_text(text)
    print(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
