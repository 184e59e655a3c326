"""Which stage of a real call breaks a detector: the EER of bundles on a protocol's files with
each stage of the ``phone_full`` chain alone (room, noise, device, phone line), then all four.

Each file meets a condition drawn from ``phone_full`` (docs/corpus.md) with every other stage
switched off, seeded by the stage and the file's id, so every bundle hears the same audio, and
the "all" column is a chain of the kind the corpus's ``*.phone.*`` protocols hold (drawn afresh,
not the same draws). Both classes alike: nothing looks at the label. The conditioned files are
written once under ``--workdir`` (FLAC, reused by later runs) and scored by ``dfd eval``'s own
code (``dfd.trainers.evaluate``) into ``--workdir``/eval, where a later run finds them (a bundle
retrained under the same name needs its folders removed); the table is written to ``--out``.

    python benchmarks/condition_stages.py --model NAME=BUNDLE [--model NAME=BUNDLE ...] \\
        --data corpus/protocols/eval.unseen.txt --babble corpus/protocols/train.txt \\
        [--workdir /tmp/condition-stages] [--out docs/condition-stages.md]

``--babble``: the protocol whose bona fide files make babble noise (the corpus uses its training
speakers). About 25 ms of one core a file per stage to condition (70 ms for the whole chain), and
then one ``dfd eval`` per bundle and column.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile
import torch

from dfd.dsp.audio_io import PIPELINE_SAMPLE_RATE as RATE
from dfd.dsp.audio_io import load_audio
from dfd.trainers.corpus.conditions import (
    PHONE_FULL,
    ConditionConfig,
    apply_conditions,
    sample_condition,
)
from dfd.trainers.datasets import Trial, read_dataset
from dfd.trainers.evaluate import evaluate_trials

SINGLE_STAGES = ("room", "noise", "device", "phone")
STAGES: dict[str, ConditionConfig] = {
    stage: dataclasses.replace(
        PHONE_FULL, **{f"{other}_probability": float(other == stage) for other in SINGLE_STAGES}
    )
    for stage in SINGLE_STAGES
}
STAGES["all"] = PHONE_FULL
CHUNK = 64  # files per apply_conditions call: few ffmpeg processes, bounded memory


def conditioned_trials(
    trials: list[Trial], stage: str, babble: Callable[[], list[np.ndarray]], workdir: Path
) -> list[Trial]:
    """The trials with their audio under ``stage``'s chains, written once into ``workdir``
    (``babble`` is called only when a file is still to be made)."""
    folder = workdir / stage
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{t.utterance_id}.flac" for t in trials]
    missing = [i for i, path in enumerate(paths) if not path.is_file()]
    for start in range(0, len(missing), CHUNK):
        chunk = missing[start : start + CHUNK]
        audio = [load_audio(trials[i].path, sample_rate=RATE).samples[0] for i in chunk]
        seeds = [zlib.crc32(f"{stage}:{trials[i].utterance_id}".encode()) for i in chunk]
        conditions = [sample_condition(np.random.default_rng(s), STAGES[stage]) for s in seeds]
        for i, samples in zip(
            chunk, apply_conditions(audio, conditions, seeds, babble()), strict=True
        ):
            partial = paths[i].with_suffix(".part.flac")
            soundfile.write(partial, np.clip(samples, -1.0, 1.0), RATE, subtype="PCM_16")
            partial.rename(paths[i])
    return [
        dataclasses.replace(trial, path=path, condition=stage)
        for trial, path in zip(trials, paths, strict=True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", required=True, metavar="NAME=BUNDLE")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--babble", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/condition-stages"))
    parser.add_argument("--out", type=Path, default=Path("docs/condition-stages.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    models = [spec.split("=", 1) for spec in args.model]
    trials = read_dataset(args.data)

    @functools.cache
    def babble() -> list[np.ndarray]:
        return [
            load_audio(t.path, sample_rate=RATE).samples[0]
            for t in read_dataset(args.babble)
            if t.label == "bonafide"
        ]

    columns = {"clean": trials}
    for stage in STAGES:
        started = time.process_time()
        columns[stage] = conditioned_trials(trials, stage, babble, args.workdir)
        print(f"{stage}: conditioned in {time.process_time() - started:.0f} s of CPU", flush=True)
    rows = []
    for name, bundle in models:
        cells = [name]
        for column, column_trials in columns.items():
            out = args.workdir / "eval" / f"{name}-{column}".replace(" ", "_").replace("/", "_")
            if (out / "report.json").is_file():  # scored by an earlier run: reused
                report = json.loads((out / "report.json").read_text())
            else:
                report = evaluate_trials(
                    Path(bundle), column_trials, f"{args.data} ({column})", out
                )
            cells.append(f"{100 * report['eer']:.2f} %")
            print(name, column, cells[-1], flush=True)
        rows.append(cells)

    header = ["model", "clean", *(f"{stage} only" for stage in STAGES if stage != "all"), "all"]
    command = " ".join(
        [
            "python benchmarks/condition_stages.py",
            *(f'--model "{spec}"' for spec in args.model),
            f"--data {args.data} --babble {args.babble}",
        ]
    )
    lines = [
        "# Which stage of a call breaks a detector",
        "",
        "Generated by `benchmarks/condition_stages.py`; do not edit by hand.",
        "",
        f"- command: `{command}`",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- trials: {len(trials)} ({sum(t.label == 'spoof' for t in trials)} spoofed), each "
        "file under one chain per column, drawn from the `phone_full` preset with the other "
        "stages off (seeded by the stage and the file's id; both classes alike). Room: a "
        "simulated shoebox (RT60 0.15-0.8 s) or a packaged impulse response; noise: one of nine "
        "kinds at 5-30 dB SNR; device: a headset, handset, laptop, speakerphone or loudspeaker "
        "cabinet response, gain, sometimes clipping; phone: G.711, G.726, GSM or Opus at 6-12 "
        "kbit/s, packets lost on half of the lines; all: the four in series.",
        "- EER: the ASVspoof way, one score per utterance (`dfd eval`'s scoring).",
        "",
        "| " + " | ".join(header) + " |",
        "| --- | " + " | ".join("---:" for _ in header[1:]) + " |",
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
