"""How a model does per call on the corpus's calls protocol: real callers alerted, and how soon a
call that turns synthetic is.

Runs the installed ``dfd replay --json`` (the daemon's decisions: 2 s windows every hop, the
model's threshold, the k-of-n rule) over every call of each protocol, then counts.

    python benchmarks/calls_protocol.py --model BUNDLE \\
        --calls corpus/protocols/calls.dev.tsv --calls corpus/protocols/calls.eval.tsv \\
        [--json calls.json]

Prints one Markdown table row per protocol.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from dfd.trainers.calls_evaluation import CallsSummary, call_outcomes, summarise
from dfd.trainers.datasets.calls import read_calls_protocol

DFD = str(Path(sys.executable).with_name("dfd"))
HEADER = (
    "| protocol | real calls | real calls alerted | turning calls | alerted before turning "
    "| alerted after turning | median time to alert |\n"
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
)


def replay_reports(model: str, paths: list[Path]) -> dict[str, dict[str, Any]]:
    """``dfd replay --json`` over the files, one report per file, keyed by path."""
    result = subprocess.run(
        [DFD, "replay", "--json", "--model", model, *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode not in (0, 1):  # 1: an alert was raised somewhere
        raise RuntimeError(f"dfd replay failed ({result.returncode}): {result.stderr[-2000:]}")
    reports = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return {report["path"]: report for report in reports}


def evaluate(model: str, protocol: Path) -> CallsSummary:
    calls = read_calls_protocol(protocol)
    return summarise(call_outcomes(calls, replay_reports(model, [c.path for c in calls])))


def table_row(name: str, summary: CallsSummary) -> str:
    median = summary.median_time_to_alert_s
    return (
        f"| {name} | {summary.real_calls} ({summary.real_hours:.2f} h) "
        f"| {summary.real_calls_alerted} ({100 * summary.real_alerted_share:.1f} %) "
        f"| {summary.turning_calls} | {summary.turning_alerted_early} "
        f"| {summary.turning_detected} ({100 * summary.detected_share:.1f} %) "
        f"| {'-' if median is None else f'{median:.1f} s'} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default", help="bundle folder, or 'default'")
    parser.add_argument("--calls", type=Path, action="append", required=True)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    print(HEADER)
    figures = {}
    for protocol in args.calls:
        summary = evaluate(args.model, protocol)
        figures[protocol.name] = summary.to_json()
        print(table_row(protocol.name, summary), flush=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
