"""CPU cost of the acoustic and channel conditions, per 2 s window and per stage.

Each stage is applied alone to a batch of 2 s windows of the bundled call (warm caches: every
impulse and noise file read once before timing), through ``apply_conditions``; CPU time includes
ffmpeg's (children's user + system time). Then a whole ``phone_full`` and a default batch, and
per-file cost for 6 s files.

    OMP_NUM_THREADS=1 python benchmarks/conditions_cost.py [--windows 64]
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

import numpy as np
import torch

from dfd.dsp.audio_io import PIPELINE_SAMPLE_RATE as RATE
from dfd.dsp.audio_io import load_audio
from dfd.trainers.corpus.conditions import (
    DEFAULT_CONDITIONS,
    PHONE_FULL,
    Condition,
    DeviceStage,
    NoiseStage,
    PhoneStage,
    RoomStage,
    apply_conditions,
    sample_condition,
)
from dfd.trainers.corpus.conditions.impulses import CABINET_IMPULSES, ROOM_IMPULSES, load_impulse
from dfd.trainers.corpus.conditions.noises import key_clicks

SAMPLE_CALL = Path(__file__).resolve().parent.parent / "samples" / "call-8k-ulaw-stereo.wav"


def _cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _cost_ms(
    segments: list[np.ndarray], conditions: list[Condition], babble: list[np.ndarray]
) -> tuple[float, float]:
    apply_conditions(segments[:2], conditions[:2], [0, 1], babble)  # warm-up
    cpu, wall = _cpu_s(), time.perf_counter()
    apply_conditions(segments, conditions, list(range(len(segments))), babble)
    return (_cpu_s() - cpu) * 1e3 / len(segments), (time.perf_counter() - wall) * 1e3 / len(
        segments
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--windows", type=int, default=64)
    count = parser.parse_args().windows
    torch.set_num_threads(1)
    channels = load_audio(SAMPLE_CALL).samples
    speech = np.concatenate([channels[0, : 5 * RATE], channels[1, 5 * RATE : 11 * RATE]])
    starts = np.random.default_rng(0).integers(0, len(speech) - 2 * RATE, count)
    windows = [speech[s : s + 2 * RATE].copy() for s in starts]
    for name in (*ROOM_IMPULSES, *CABINET_IMPULSES):
        load_impulse(name)
    key_clicks()
    stages: dict[str, list[Condition]] = {
        "room sim (rt60 0.15-0.8)": [
            Condition(room=RoomStage("sim", round(0.15 + 0.65 * i / count, 2)))
            for i in range(count)
        ],
        "room packaged IR": [
            Condition(room=RoomStage(sorted(ROOM_IMPULSES)[i % 7])) for i in range(count)
        ],
    }
    for kind in ("keyboard", "human", "crowd", "babble", "pink"):
        stages[f"noise {kind}"] = [Condition(noise=NoiseStage(kind, 15.0))] * count
    stages["device EQ + clip"] = [
        Condition(device=DeviceStage("handset", 0.0, "soft", 6.0))
    ] * count
    stages["device cabinet"] = [
        Condition(device=DeviceStage(sorted(CABINET_IMPULSES)[i % 99])) for i in range(count)
    ]
    for route, kbps in (
        ("band", None),
        ("mulaw", None),
        ("g722", None),
        ("g726", None),
        ("gsm", None),
        ("opus", 8),
        ("resample44k", None),
    ):
        stages[f"phone {route}"] = [
            Condition(
                phone=PhoneStage(route, kbps, 0.02 if route not in ("band", "resample44k") else 0.0)
            )
        ] * count
    for name, preset in (("all: phone_full", PHONE_FULL), ("all: default", DEFAULT_CONDITIONS)):
        stages[name] = [sample_condition(np.random.default_rng(i), preset) for i in range(count)]
    print(f"{count} windows of 2 s, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print("| stage | CPU ms / window | wall ms / window |\n|---|---|---|")
    for name, conditions in stages.items():
        cpu, wall = _cost_ms(windows, conditions, windows)
        print(f"| {name} | {cpu:.1f} | {wall:.1f} |")
    files = [np.tile(w, 3) for w in windows]
    cpu, wall = _cost_ms(files, stages["all: phone_full"], windows)
    print(f"| per 6 s file, phone_full, batch of {count} | {cpu:.1f} | {wall:.1f} |")


if __name__ == "__main__":
    main()
