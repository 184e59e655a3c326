"""Decisions per call, the rule before and the rule now, on the corpus's held-out calls.

Two measures, both through the daemon's own audit path (``dfd replay``'s pipeline: its windows,
speech gate and calibrated scores) and its own ``DecisionState``:

- False alarms per real call by call length. The real speech of the evaluation calls (held-out
  speakers: every real call and the real part of every turning call) is joined per language and
  cut into calls of 1, 3 and 10 minutes; each is audited once and decided by both rules.
- The calls that turn synthetic: alerted before the turn (a false alarm), after it, and how soon.

The rule before is ``windows`` (3 of the last 5 speech windows at or above the model's EER
threshold); the rule now is ``evidence`` at the model card's operating point (or the default when
the card has none). Writes a Markdown report:

    python benchmarks/call_decisions.py --corpus corpus [--model BUNDLE] \\
        [--out docs/call-decisions.md]
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile

from dfd.daemon.engine.decisions import DecisionPolicy
from dfd.daemon.engine.models import ModelSet, resolve_bundle_path
from dfd.daemon.logs import configure_logging
from dfd.daemon.settings import Settings
from dfd.dsp.audio_io import load_audio
from dfd.trainers.calibrate_bundle import audit_calls
from dfd.trainers.datasets.calls import CallTrial, read_calls_protocol
from dfd.trainers.operating_point import ScoredWindow, decide_calls

RATE = 16_000
LENGTHS_MIN = (1, 3, 10)


def real_speech_by_language(calls: Sequence[CallTrial]) -> dict[str, np.ndarray]:
    """The real part of every call, joined per language in protocol order, at 16 kHz."""
    parts: dict[str, list[np.ndarray]] = collections.defaultdict(list)
    for call in calls:
        audio = load_audio(call.path, sample_rate=RATE).samples[0]
        parts[call.language].append(audio[: int(call.synthetic_from_s * RATE)])
    return {language: np.concatenate(chunks) for language, chunks in sorted(parts.items())}


def cut_calls(speech: dict[str, np.ndarray], minutes: int, folder: Path) -> list[CallTrial]:
    """Real calls of ``minutes`` each, cut from each language's joined speech (remainders
    shorter than that are left out), written as FLAC files."""
    length = minutes * 60 * RATE
    calls = []
    for language, audio in speech.items():
        for number in range(len(audio) // length):
            path = folder / f"real-{minutes}min-{language}-{number:02d}.flac"
            soundfile.write(path, audio[number * length : (number + 1) * length], RATE)
            seconds = length / RATE
            calls.append(
                CallTrial(path.stem, path, "bonafide", "-", language, "-", seconds, seconds)
            )
    return calls


@dataclasses.dataclass(frozen=True)
class RuleFigures:
    alerted: int
    calls: int
    times: tuple[float, ...] = ()
    early: int = 0

    def share(self) -> str:
        return f"{self.alerted} of {self.calls} ({100 * self.alerted / self.calls:.1f} %)"


def figures(
    calls: Sequence[CallTrial],
    windows: dict[str, list[ScoredWindow]],
    policy: DecisionPolicy,
    threshold: float,
    window_s: float,
) -> RuleFigures:
    decided = decide_calls(calls, windows, policy, threshold, window_s)
    turning = [d for d in decided if d.call.kind == "turns-synthetic"]
    if not turning:
        return RuleFigures(sum(d.false_alarm for d in decided), len(decided))
    times = tuple(t for d in turning if (t := d.time_to_alert_s) is not None)
    return RuleFigures(len(times), len(turning), times, sum(d.false_alarm for d in turning))


def median_text(times: Sequence[float]) -> str:
    return f"{statistics.median(times):.1f} s" if times else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--model", default="default", help="bundle folder, or 'default'")
    parser.add_argument("--out", type=Path, default=Path("docs/call-decisions.md"))
    args = parser.parse_args()
    configure_logging("warning", "console")

    started = time.monotonic()
    settings = Settings()
    models = ModelSet.load([args.model])
    window_s = models.geometry.window_s
    old = DecisionPolicy(rule="windows")
    new = settings.decision.with_raise_at(models.raise_at)
    bundle = resolve_bundle_path(args.model)
    eval_calls = read_calls_protocol(args.corpus / "protocols" / "calls.eval.tsv")
    speech = real_speech_by_language(eval_calls)

    rows = []
    with tempfile.TemporaryDirectory(prefix="dfd-calls-") as scratch:
        for minutes in LENGTHS_MIN:
            folder = Path(scratch) / f"{minutes}min"
            folder.mkdir()
            calls = cut_calls(speech, minutes, folder)
            windows = audit_calls(bundle, calls, settings)
            before = figures(calls, windows, old, models.threshold, window_s)
            after = figures(calls, windows, new, models.threshold, window_s)
            rows.append(
                f"| real, {minutes} min | {len(calls)} | {before.share()} | {after.share()} |"
            )
            print(rows[-1], flush=True)
    windows = audit_calls(bundle, eval_calls, settings)
    before = figures(eval_calls, windows, old, models.threshold, window_s)
    after = figures(eval_calls, windows, new, models.threshold, window_s)
    real_calls = [c for c in eval_calls if c.kind == "bonafide"]
    real_before = figures(real_calls, windows, old, models.threshold, window_s)
    real_after = figures(real_calls, windows, new, models.threshold, window_s)
    turning = before.calls

    card = models.models[0].bundle.card
    point = card.operating_point
    chosen = (
        "the card has none: the default"
        if point is None
        else f"chosen on {point.chosen_on} for {100 * point.target_false_alarm_rate:g} % "
        f"({100 * point.false_alarm_rate:.1f} % of {point.real_calls} dev calls reached)"
    )
    git = subprocess.run(
        ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
    ).stdout.strip()
    lines = [
        "# Decisions per call: the rule before and the rule now",
        "",
        "Generated by `python benchmarks/call_decisions.py --corpus CORPUS "
        f"--model {args.model}` (commit {git or '?'}, {platform.node()}, "
        f"{time.monotonic() - started:.0f} s). Model: {card.family} {card.version}, "
        f"{window_s:g} s windows every {models.geometry.hop_s:g} s. The corpus's evaluation calls "
        "hold out their speakers and their synthesizers (docs/corpus.md).",
        "",
        f'- **before**: `rule = "windows"`, 3 of the last 5 speech windows at or above the EER '
        f"threshold ({models.threshold:.3f});",
        f'- **now**: `rule = "evidence"`, an alert at {new.raise_at:g} nats of accumulated '
        f"evidence ({chosen}), windows capped at {new.max_window_evidence:g} nats.",
        "",
        "## Real calls by length",
        "",
        "The real speech of the evaluation calls (every real call, and every turning call up to "
        "its turn), joined per language and cut into calls of each length.",
        "",
        "| calls | count | alerted before | alerted now |",
        "| --- | ---: | ---: | ---: |",
        *rows,
        f"| the real evaluation calls as they are | {real_before.calls} | {real_before.share()} "
        f"| {real_after.share()} |",
        "",
        "## Calls that turn synthetic",
        "",
        "| rule | calls | alerted before the turn | alerted after it | median time to alert |",
        "| --- | ---: | ---: | ---: | ---: |",
        f"| before | {turning} | {before.early} | {before.alerted} | {median_text(before.times)} |",
        f"| now | {turning} | {after.early} | {after.alerted} | {median_text(after.times)} |",
        "",
        "Time to alert: from the first synthetic second to the end of the window that raised "
        "the alert. A turning call alerted before its turn counts as a false alarm, not as "
        "detected.",
        "",
    ]
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
