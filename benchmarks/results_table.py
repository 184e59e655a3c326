"""Write docs/results.md: how each trained model does on corpus v2's held-out families, under
phone codecs and on whole calls, and what it costs.

Reads what ``dfd eval`` wrote for each model (``report.json`` and ``scores.txt``) and what
``benchmarks/calls_protocol.py --json`` wrote, splits the held-out trials by the family that put
them there (from the corpus ``manifest.json``), counts the parameters of each bundle's ONNX graph
and times one window through ONNX Runtime (one thread, batch 1, median of repeated runs).

    python benchmarks/results_table.py --corpus corpus --model NAME=BUNDLE=PREFIX [--model ...] \\
        [--out docs/results.md]

``PREFIX`` names the output folders: ``PREFIX-dev.unseen``, ``PREFIX-eval``,
``PREFIX-eval.unseen``, ``PREFIX-eval.phone.unseen`` and ``PREFIX-eval.CODEC.unseen`` from
``dfd eval --data corpus/protocols/<name>.txt --out PREFIX-<name>``, and ``PREFIX-calls.json``
from ``calls_protocol.py``. A missing one prints as ``-``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from dfd.detectors.bundle import load_bundle
from dfd.detectors.registry import family_names
from dfd.detectors.runtime import DetectorSession
from dfd.trainers.metrics import compute_eer

CODECS = ["mulaw", "alaw", "g722", "gsm", "opus"]
CALL_COLUMNS = [
    "model",
    "real calls alerted",
    "turning calls alerted before the turn",
    "alerted after the turn",
    "median time to alert",
]


def _report(folder: Path) -> dict[str, Any] | None:
    path = folder / "report.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _eer(report: dict[str, Any] | None) -> float | None:
    return None if report is None else float(report["eer"])


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def parameters(bundle: Path) -> int:
    model = onnx.load(str(bundle / "model.onnx"))
    return sum(int(np.prod(init.dims)) for init in model.graph.initializer)


def ms_per_window(bundle: Path) -> float:
    session = DetectorSession(bundle, threads=1, device="cpu")
    features = np.random.default_rng(0).standard_normal((1, *session.feature_shape))
    features = (0.1 * features).astype(np.float32)
    for _ in range(5):
        session.raw(features)
    times = []
    for _ in range(30):
        start = time.perf_counter()
        session.raw(features)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def _kept_timings(path: Path) -> dict[str, str]:
    """Model name -> the ms / window column of an earlier results file's first table."""
    kept = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) > 3 and cells[0] not in ("model", "---") and cells[2][:1].isdigit():
            kept.setdefault(cells[0], cells[2])
    return kept


def held_out_group(entry: dict[str, Any], held_out: dict[str, list[str]]) -> str:
    """Why a held-out trial is held out: its synthesizer or vocoder family for a spoof, its
    source family, language or speaker for bona fide speech."""
    if entry["label"] == "spoof":
        return entry["family"].split(":", 1)[-1]
    if entry["family"] in held_out["families"]:
        return f"{entry['family']} (real)"
    if entry["language"] in held_out["languages"]:
        return f"{entry['language']} (real)"
    return f"{entry['speaker']} (real)"


def group_eers(scores: Path, manifest: dict[str, Any], split: str) -> dict[str, tuple[float, int]]:
    """EER and trial count per held-out group: each spoof family against all bona fide trials,
    each bona fide group against all spoofs."""
    entries = {entry["utt_id"]: entry for entry in manifest["files"]}
    held_out = manifest["held_out"][split]
    bonafide: dict[str, list[float]] = defaultdict(list)
    spoof: dict[str, list[float]] = defaultdict(list)
    for line in scores.read_text().splitlines():
        utt_id, _attack, label, score = line.split()[:4]
        group = held_out_group(entries[utt_id], held_out)
        (spoof if label == "spoof" else bonafide)[group].append(float(score))
    all_bonafide = [s for values in bonafide.values() for s in values]
    all_spoof = [s for values in spoof.values() for s in values]
    result = {g: (compute_eer(all_bonafide, v)[0], len(v)) for g, v in spoof.items()}
    result.update({g: (compute_eer(v, all_spoof)[0], len(v)) for g, v in bonafide.items()})
    return result


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table's lines: the first column left-aligned, the others (figures) right."""
    return [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |",
        *["| " + " | ".join(row) + " |" for row in rows],
    ]


def calls_row(path: Path) -> list[str]:
    if not path.is_file():
        return ["-"] * 4
    summary = json.loads(path.read_text())["calls.eval.tsv"]
    real, turning = summary["real_calls"], summary["turning_calls"]
    median = summary["median_time_to_alert_s"]
    return [
        f"{summary['real_calls_alerted']} / {real}",
        f"{summary['turning_alerted_early']} / {turning}",
        f"{summary['turning_detected']} / {turning}",
        "-" if median is None else f"{median:.1f} s",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="the corpus v2 folder")
    parser.add_argument("--model", action="append", required=True, metavar="NAME=BUNDLE=PREFIX")
    parser.add_argument("--out", type=Path, default=Path("docs/results.md"))
    parser.add_argument(
        "--title",
        default="Results on corpus v2",
        help="the file's heading, for a table of one experiment beside docs/results.md",
    )
    parser.add_argument(
        "--keep-timings",
        type=Path,
        action="append",
        default=[],
        help="take each model's ms / window from this earlier results file when it has the "
        "model (by name), measuring only the others: a busy host measures nothing well "
        "(repeatable; the first file naming a model wins)",
    )
    args = parser.parse_args()
    kept: dict[str, str] = {}
    for earlier in args.keep_timings:
        kept = _kept_timings(earlier) | kept
    manifest = json.loads((args.corpus / "manifest.json").read_text())
    rows, group_rows, call_rows, notes = [], [], [], []
    groups: dict[str, int] = {}
    per_model: list[tuple[str, dict[str, tuple[float, int]]]] = []
    trained: set[str] = set()
    for spec in args.model:
        name, bundle_text, prefix = spec.split("=")
        bundle = Path(bundle_text)
        card = load_bundle(bundle).card
        if card.training.data_manifest_sha256 is not None:  # imported checkpoints have none
            trained.add(card.family)
        reports = {
            protocol: _report(Path(f"{prefix}-{protocol}"))
            for protocol in ["dev.unseen", "eval", "eval.unseen", "eval.phone.unseen"]
            + [f"eval.{codec}.unseen" for codec in CODECS]
        }
        rows.append(
            [
                name,
                f"{parameters(bundle):,}",
                kept.get(name) or f"{ms_per_window(bundle):.2f}",
                *[_pct(_eer(report)) for report in reports.values()],
            ]
        )
        scores = Path(f"{prefix}-eval.unseen") / "scores.txt"
        eers = group_eers(scores, manifest, "eval") if scores.is_file() else {}
        per_model.append((name, eers))
        groups.update({group: count for group, (_, count) in eers.items()})
        call_rows.append([name, *calls_row(Path(f"{prefix}-calls.json"))])
        config = card.training.config
        notes.append(
            f"- **{name}**: `{bundle}`, {card.family} {card.version}, window "
            f"{card.window.window_s:g} s every {card.window.hop_s:g} s; training config: "
            f"`{json.dumps(config, sort_keys=True) if config else 'n/a'}`"
        )
    ordered = sorted(groups, key=lambda g: (g.endswith("(real)"), g))
    for name, eers in per_model:
        group_rows.append([name, *[_pct(eers[g][0]) if g in eers else "-" for g in ordered]])
    command = f"--corpus {args.corpus} " + " ".join("--model " + m for m in args.model)
    if args.title != parser.get_default("title"):
        command += f' --out {args.out} --title "{args.title}"'
    header = ["model", "graph weights", "ms / window", "dev held-out", "eval all"]
    header += ["eval held-out", "held-out phone"] + [f"held-out {codec}" for codec in CODECS]
    held = manifest["held_out"]
    lines = [
        f"# {args.title}",
        "",
        "Generated by `benchmarks/results_table.py` from `dfd eval` reports; do not edit by hand."
        " The figures on corpus v1 are kept in docs/results-v1.md.",
        "",
        f"- command: `python benchmarks/results_table.py {command}`",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "- corpus: `dfd corpus build --preset full --seed 0` (docs/corpus.md). Held-out families "
        "never reach training. Dev holds out "
        + _holdout_words(held["dev"])
        + "; eval holds out "
        + _holdout_words(held["eval"])
        + ". `dev held-out` and `eval held-out` score only those trials (the `*.unseen.txt` "
        "protocols); `eval all` adds the seen families' eval split. Phone: every held-out file "
        "through a drawn room, noise, device and phone chain; codecs: the clean held-out files "
        "through one codec each.",
        "- EER: the ASVspoof way (step DET curve, no interpolation), one score per utterance "
        "(the mean raw output over its windows; `dfd eval`).",
        "- ms / window: one 2 s window through ONNX Runtime on the CPU, one thread, batch 1, "
        "median of 30 runs, on the machine that generated this file.",
        "",
        *markdown_table(header, rows),
        "",
        "EER per eval held-out family (clean; a synthesizer or vocoder family against every "
        "held-out real trial, a real-voice group against every held-out spoof; trials in "
        "brackets):",
        "",
        *markdown_table(["model", *(f"{g} ({groups[g]})" for g in ordered)], group_rows),
        "",
        "Calls (`benchmarks/calls_protocol.py`, eval calls: real calls of held-out speakers, and "
        "calls that turn synthetic part-way; `dfd replay`'s decisions: the evidence rule at the "
        "bundle's operating point, 6 nats where its card has none; docs/alerts.md):",
        "",
        *markdown_table(CALL_COLUMNS, call_rows),
        "",
        "Models:",
        "",
        *notes,
        "",
    ]
    if args.title == parser.get_default("title"):  # the whole table: say what it still lacks
        untrained = ", ".join(f for f in family_names() if f not in trained) or "none"
        lines += [f"Families not yet trained on corpus v2: {untrained}.", ""]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


def _holdout_words(held: dict[str, list[str]]) -> str:
    parts = []
    for key, words in [
        ("families", "real-voice families"),
        ("languages", "languages"),
        ("speakers", "speakers"),
        ("tts_families", "synthesizer families"),
        ("vocoders", "vocoders"),
    ]:
        if held.get(key):
            parts.append(f"{words} {', '.join(held[key])}")
    return "; ".join(parts)


if __name__ == "__main__":
    main()
