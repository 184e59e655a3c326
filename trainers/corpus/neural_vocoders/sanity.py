"""Sanity figures that show a vocoder makes speech and not noise, on held-out prompts.

Held-out speech is the Italian male Asterisk prompts (``it_IT_m_Carlo``), which the corpus keeps
for evaluation and which no vocoder here was trained on. For each system, averaged over
utterances:

- ``log_mel_distance``: mean absolute difference of 80-band log10 magnitude mel spectrograms
  (the front end of ``frontend.LogMel``), in decades;
- ``f0_rmse_hz``: RMS difference of the WORLD F0 (DIO + StoneMask) on frames voiced in both;
- ``voicing_agreement``: the fraction of 5 ms frames whose voiced/unvoiced decision agrees.

The same figures for reference systems make them readable: ``world`` (a good classical vocoder),
``griffinlim`` (the mel spectrogram phased by Griffin-Lim) and ``shaped_noise`` (white noise with
the input's 16 ms energy envelope: right loudness, no speech). A working neural vocoder lands near
Griffin-Lim or better, and far from the noise.

    python -m dfd.trainers.corpus.neural_vocoders.sanity --arch vocos   # refresh weights/vocos.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import structlog
import torch

from dfd.dsp.audio_io import load_audio
from dfd.trainers.corpus.neural_vocoders.frontend import HOP, SAMPLE_RATE, LogMel, world_f0
from dfd.trainers.corpus.neural_vocoders.models import get_architecture
from dfd.trainers.corpus.neural_vocoders.synthesis import WEIGHTS_DIR, load_model, resynthesize
from dfd.trainers.corpus.vocoders import VOCODERS

HELD_OUT_DIR = Path("/usr/share/asterisk/sounds/it_IT_m_Carlo")
SEED = 0

System = Callable[[np.ndarray], np.ndarray]


def held_out_prompts(count: int) -> list[np.ndarray]:
    """The first ``count`` held-out prompts (sorted by name) of at least half a second, 16 kHz."""
    prompts = []
    for path in sorted(HELD_OUT_DIR.glob("*.g722")):
        samples = load_audio(path, SAMPLE_RATE).samples[0]
        if samples.shape[0] >= SAMPLE_RATE // 2:
            prompts.append(samples)
        if len(prompts) == count:
            break
    return prompts


def shaped_noise(samples: np.ndarray, seed: int = SEED) -> np.ndarray:
    """White noise whose RMS follows the input's over 16 ms blocks."""
    blocks = -(-samples.shape[0] // HOP)
    padded = np.pad(samples.astype(np.float64), (0, blocks * HOP - samples.shape[0]))
    rms = np.sqrt(np.mean(padded.reshape(blocks, HOP) ** 2, axis=1))
    noise = np.random.default_rng(seed).standard_normal(padded.shape)
    shaped: np.ndarray = (noise.reshape(blocks, HOP) * rms[:, None]).reshape(-1)
    return shaped[: samples.shape[0]].astype(np.float32)


def log_mel_distance(reference: np.ndarray, other: np.ndarray) -> float:
    """Mean absolute difference of 80-band log10 mel spectrograms, in decades."""
    front_end = LogMel()
    with torch.no_grad():
        a = front_end(torch.from_numpy(reference.astype(np.float32)))
        b = front_end(torch.from_numpy(other.astype(np.float32)))
    return float(torch.mean(torch.abs(a - b)) / math.log(10))


def f0_figures(reference: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    """F0 RMSE in Hz on frames voiced in both (NaN if none), and the voicing agreement."""
    a, b = world_f0(reference), world_f0(other)
    frames = min(a.shape[0], b.shape[0])
    a, b = a[:frames], b[:frames]
    both = (a > 0) & (b > 0)
    rmse = float(np.sqrt(np.mean((a[both] - b[both]) ** 2))) if both.any() else math.nan
    return rmse, float(np.mean((a > 0) == (b > 0)))


def figures(system: System, prompts: list[np.ndarray]) -> dict[str, float | None]:
    """Each figure averaged over ``prompts``, and the system's CPU seconds per audio second."""
    distances, rmses, agreements = [], [], []
    cpu = 0.0
    for prompt in prompts:
        start = time.process_time()
        output = system(prompt)
        cpu += time.process_time() - start
        distances.append(log_mel_distance(prompt, output))
        rmse, agreement = f0_figures(prompt, output)
        rmses.append(rmse)
        agreements.append(agreement)
    audio_seconds = sum(prompt.shape[0] for prompt in prompts) / SAMPLE_RATE
    return {
        "log_mel_distance": round(float(np.mean(distances)), 4),
        # None when no frame was voiced in both, for any prompt (untrained models)
        "f0_rmse_hz": round(float(np.nanmean(rmses)), 2) if not np.isnan(rmses).all() else None,
        "voicing_agreement": round(float(np.mean(agreements)), 4),
        "cpu_seconds_per_audio_second": round(cpu / audio_seconds, 4),
    }


def sanity_report(arch: str, model: torch.nn.Module, count: int) -> dict[str, Any]:
    """The figures of ``model`` and of the reference systems on ``count`` held-out prompts."""
    torch.set_num_threads(1)
    uses_f0 = get_architecture(arch).uses_f0
    prompts = held_out_prompts(count)
    systems: dict[str, System] = {
        arch: lambda x: resynthesize(model, uses_f0, x, SAMPLE_RATE, SEED, arch),
        "world": lambda x: VOCODERS["world"](x, SAMPLE_RATE, SEED),
        "griffinlim": lambda x: VOCODERS["griffinlim"](x, SAMPLE_RATE, SEED),
        "shaped_noise": shaped_noise,
    }
    return {
        "held_out": f"{HELD_OUT_DIR}/*.g722, first {len(prompts)} of at least 0.5 s by name",
        "audio_seconds": round(sum(p.shape[0] for p in prompts) / SAMPLE_RATE, 1),
        "log_mel_distance_unit": "mean |log10 mel difference| over 80 bands and 16 ms frames",
        "systems": {name: figures(system, prompts) for name, system in systems.items()},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="refresh the sanity figures of committed weights")
    parser.add_argument("--arch", required=True, choices=["hifigan", "vocos", "nsf"])
    parser.add_argument("--held-out", type=int, default=30)
    args = parser.parse_args(argv)
    json_path = WEIGHTS_DIR / f"{args.arch}.json"
    report = json.loads(json_path.read_text(encoding="utf-8"))
    report["sanity"] = sanity_report(args.arch, load_model(args.arch), args.held_out)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    structlog.get_logger("dfd.vocoders").info("sanity", **report["sanity"])


if __name__ == "__main__":
    main()
