"""Write docs/fusion.md: what fusing trained bundles would give on the open corpus.

The daemon fuses bundles of the same window length (``[models] bundles`` with ``weights``,
``engine.models``): per window, the weighted mean of their calibrated log-odds. ``dfd eval``
scores an utterance by the mean of its windows' calibrated log-odds, so the fused utterance score
is the weighted mean of the models' ``scores.txt`` entries, read here from the ``dfd eval``
folders each model already has; nothing is scored again. (Exact when the bundles share their
hop; with different hops each model averages over its own windows of the same utterance.)

The weight is chosen on dev (``PREFIX-dev``), in steps of 0.1, and only then applied to eval:
the eval attacks and speaker stay unseen by every choice made here.

    python benchmarks/fusion.py --model NAME=EVAL_PREFIX --model NAME=EVAL_PREFIX [...] \\
        [--split NAME=SUFFIX ...] [--attack ATTACK ...] [--even] [--out docs/fusion.md]

``EVAL_PREFIX`` names the ``dfd eval --out`` folders ``PREFIX`` + each split's suffix; by default
``PREFIX-dev``, ``PREFIX-eval`` and ``PREFIX-eval.mulaw`` (of ``dev.txt``, ``eval.txt`` and
``eval.mulaw.txt``; docs/fusion.md was made on corpus v1's). The first ``--split`` is the one the
weights are chosen on; the ``--attack`` columns (an attack or a real-voice family's trials) are
read from the second; an attack ``A`` also takes ``A-*`` (a family's voices). ``--even`` gives
every member the same weight instead (seeds of one recipe are exchangeable). Corpus v2's held-out
protocols (docs/fusion-v2-seeds.md, docs/fusion-v2-families.md):

    --split "dev held-out=-dev.unseen" --split "eval held-out=-eval.unseen" \\
    --split "held-out phone=-eval.phone.unseen" --attack nsf --attack lpc ...
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dfd.trainers.metrics import compute_eer

V1_SPLITS = {"dev": "-dev", "eval clean": "-eval", "eval mulaw": "-eval.mulaw"}
V1_ATTACKS = ["festival-slt-hts", "lpc", "piper-joe"]
WEIGHT_GRID = np.round(np.linspace(0.0, 1.0, 11), 1)


@dataclass(frozen=True)
class Scores:
    """One ``scores.txt``: per utterance, its attack, label and bona fide log-odds."""

    ids: list[str]
    attacks: np.ndarray
    is_spoof: np.ndarray
    values: np.ndarray

    @classmethod
    def read(cls, folder: Path) -> Scores:
        rows = [line.split() for line in (folder / "scores.txt").read_text().splitlines()]
        report = json.loads((folder / "report.json").read_text())
        if report.get("score") != "calibrated bona fide log-odds":
            raise SystemExit(
                f"{folder}: scores are {report.get('score')!r}; fusion needs calibrated "
                "log-odds (an imported checkpoint is not calibrated)"
            )
        return cls(
            ids=[row[0] for row in rows],
            attacks=np.array([row[1] for row in rows]),
            is_spoof=np.array([row[2] == "spoof" for row in rows]),
            values=np.array([float(row[3]) for row in rows]),
        )


def eer(scores: np.ndarray, is_spoof: np.ndarray) -> float:
    return float(compute_eer(scores[~is_spoof], scores[is_spoof])[0])


def fused(parts: list[Scores], weights: np.ndarray) -> np.ndarray:
    for part in parts[1:]:
        if part.ids != parts[0].ids:
            raise SystemExit("the eval folders do not list the same utterances in the same order")
    total: np.ndarray = np.sum(
        [w * part.values for w, part in zip(weights, parts, strict=True)], axis=0
    )
    return total


def dev_chosen_weights(dev: list[Scores]) -> np.ndarray:
    """The weights (grid 0.1, summing to 1) with the lowest dev EER; ties go to the most even."""
    best: tuple[float, float, tuple[float, ...]] | None = None
    for combo in itertools.product(WEIGHT_GRID, repeat=len(dev) - 1):
        last = round(1.0 - sum(combo), 1)
        if last < 0:
            continue
        weights = np.array([*combo, last])
        key = (eer(fused(dev, weights), dev[0].is_spoof), float(np.ptp(weights)), tuple(weights))
        best = key if best is None or key < best else best
    assert best is not None
    return np.array(best[2])


def _pct(value: float) -> str:
    return f"{100 * value:.2f} %"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", required=True, metavar="NAME=PREFIX")
    parser.add_argument("--split", action="append", metavar="NAME=SUFFIX")
    parser.add_argument("--attack", action="append")
    parser.add_argument("--even", action="store_true", help="equal weights, none chosen")
    parser.add_argument("--out", type=Path, default=Path("docs/fusion.md"))
    args = parser.parse_args()
    splits = dict(spec.split("=", 1) for spec in args.split) if args.split else V1_SPLITS
    attacks = args.attack or (V1_ATTACKS if not args.split else [])
    if len(splits) < 2:
        raise SystemExit("give at least two splits: one to choose the weights, one to report")
    choose_on, attacks_on = list(splits)[:2]
    names, scores = [], []
    for spec in args.model:
        name, prefix = spec.split("=")
        names.append(name)
        scores.append({split: Scores.read(Path(prefix + s)) for split, s in splits.items()})
    if len(names) < 2:
        raise SystemExit("give at least two models")

    header = [
        "models",
        "weights" if args.even else f"weights (chosen on {choose_on})",
        *splits,
        *(f"{attacks_on}: {a}" for a in attacks),
    ]
    rows = []
    for size in range(1, len(names) + 1):
        for members in itertools.combinations(range(len(names)), size):
            parts = {split: [scores[m][split] for m in members] for split in splits}
            if args.even:
                weights = np.full(size, 1.0 / size)
            else:
                weights = dev_chosen_weights(parts[choose_on]) if size > 1 else np.array([1.0])
            cells = [" + ".join(names[m] for m in members), " / ".join(f"{w:.2g}" for w in weights)]
            for split in splits:
                cells.append(_pct(eer(fused(parts[split], weights), parts[split][0].is_spoof)))
            reported = parts[attacks_on]
            values = fused(reported, weights)
            for attack in attacks:
                family = np.char.startswith(reported[0].attacks.astype(str), attack + "-")
                keep = (reported[0].attacks == attack) | family | ~reported[0].is_spoof
                cells.append(_pct(eer(values[keep], reported[0].is_spoof[keep])))
            rows.append(cells)

    command = " ".join(
        [
            "python benchmarks/fusion.py",
            *(f'--model "{m}"' for m in args.model),
            *(f'--split "{s}"' for s in args.split or ()),
            *(f"--attack {a}" for a in args.attack or ()),
            *(["--even"] if args.even else []),
        ]
    )
    lines = [
        "# Fusing detectors on the open corpus",
        "",
        "Generated by `benchmarks/fusion.py` from the models' `dfd eval` score files; do not edit "
        "by hand.",
        "",
        f"- command: `{command}`",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "- fused score: the weighted mean of the models' calibrated bona fide log-odds, as "
        "`[models] bundles` with `weights` fuses them in `dfd serve` and `dfd replay` (bundles of "
        "one window length). "
        + (
            "Every member weighs the same."
            if args.even
            else "Weights in steps of 0.1, chosen on the first split (lowest EER; ties go to "
            "the most even), then applied unchanged to the others."
        ),
        "- EER: the ASVspoof way (step DET curve, no interpolation), one score per utterance; "
        "per attack, that attack's trials (or a family's: `dectalk` holds `dectalk-paul`, ...) "
        "against every bona fide trial.",
        "",
        "| " + " | ".join(header) + " |",
        "| --- | --- | " + " | ".join("---:" for _ in header[2:]) + " |",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
