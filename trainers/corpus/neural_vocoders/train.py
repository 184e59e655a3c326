"""Train one neural vocoder on the bona fide training prompts, on one CPU thread.

    python -m dfd.trainers.corpus.neural_vocoders.train --arch vocos \
        --files trainers/corpus/neural_vocoders/training_files.txt --out runs/voc-vocos \
        [--resume] [--minutes 20] [--steps N]

Training stops after ``--minutes`` of training time or ``--steps`` steps in all, counting the
runs it resumes; a checkpoint (model, optimiser, step, clocks, random states) is written to
``--out`` every ``checkpoint_every`` steps and at the end, and ``--resume`` continues from it with
the same draws it would have made without the interruption. At the end the weights go to
``weights/<arch>.pt`` (a bare state dict) and ``weights/<arch>.json`` (config, steps, seconds, the
file list's sha256 and the sanity figures of :mod:`.sanity`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog
import torch

from dfd.trainers.corpus.neural_vocoders.data import (
    file_list_sha256,
    load_utterances,
    random_batch,
    read_file_list,
)
from dfd.trainers.corpus.neural_vocoders.frontend import HOP, LogMel
from dfd.trainers.corpus.neural_vocoders.losses import ReconstructionLoss
from dfd.trainers.corpus.neural_vocoders.models import get_architecture, parameter_count

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
CHECKPOINT_NAME = "checkpoint.pt"
LOG_EVERY = 25

log = structlog.get_logger("dfd.vocoders")


@dataclass(frozen=True)
class TrainingConfig:
    """Everything a run depends on besides the file list; saved in checkpoints and weights/*.json.

    ``segment_frames`` mel frames of 16 ms make one training segment (32 frames: 0.51 s).
    """

    arch: str
    model: dict[str, Any]
    segment_frames: int = 32
    batch_size: int = 4
    learning_rate: float = 1e-3
    betas: tuple[float, float] = (0.8, 0.99)
    mel_weight: float = 1.0
    grad_clip: float = 5.0
    checkpoint_every: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        get_architecture(self.arch).config(self.model)  # raises on an invalid model config
        if self.segment_frames < 8:
            raise ValueError(f"segment_frames must be at least 8, got {self.segment_frames}")
        if self.batch_size < 1 or self.checkpoint_every < 1:
            raise ValueError("batch_size and checkpoint_every must be positive")
        if not 0 < self.learning_rate < 1 or self.grad_clip <= 0 or self.mel_weight < 0:
            raise ValueError(f"bad optimisation settings: {self}")

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> TrainingConfig:
        return cls(**{**values, "betas": tuple(values["betas"])})


# Segment lengths and batches sized so 20 minutes on one busy core reach intelligible speech:
# the frame-rate vocos affords long segments; the sample-rate convolutions of the others do not.
DEFAULT_CONFIGS: dict[str, TrainingConfig] = {
    "vocos": TrainingConfig("vocos", {}, segment_frames=48, batch_size=8, learning_rate=1e-3),
    "hifigan": TrainingConfig("hifigan", {}, segment_frames=32, batch_size=4, learning_rate=1e-3),
    "nsf": TrainingConfig("nsf", {}, segment_frames=32, batch_size=4, learning_rate=1e-3),
}


@dataclass
class RunState:
    step: int = 0
    train_seconds: float = 0.0
    cpu_seconds: float = 0.0


def train(
    config: TrainingConfig,
    files_list: Path,
    out_dir: Path,
    *,
    resume: bool,
    minutes: float,
    max_steps: int | None,
    weights_dir: Path,
    held_out: int,
) -> dict[str, Any]:
    """Train (or resume) ``config`` on the files ``files_list`` names; returns the weights' json."""
    torch.set_num_threads(1)
    architecture = get_architecture(config.arch)
    files_sha = file_list_sha256(files_list)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out_dir / CHECKPOINT_NAME

    torch.manual_seed(config.seed)
    model = architecture.build(architecture.config(config.model))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, betas=config.betas)
    rng = np.random.default_rng(config.seed)
    state = RunState()
    if resume:
        state = _restore(checkpoint_path, config, files_sha, model, optimizer, rng)
        log.info("resumed", checkpoint=str(checkpoint_path), step=state.step)
    (out_dir / "config.json").write_text(json.dumps(config.as_json(), indent=2) + "\n")

    utterances = load_utterances(read_file_list(files_list), config.segment_frames * HOP)
    loss_function = ReconstructionLoss(config.mel_weight)
    log_mel = LogMel()
    budget_s = minutes * 60.0
    model.train()
    while state.train_seconds < budget_s and (max_steps is None or state.step < max_steps):
        wall, cpu = time.monotonic(), time.process_time()
        batch = random_batch(utterances, config.batch_size, config.segment_frames, rng)
        with torch.no_grad():
            conditioning = log_mel(batch.waveform)
        synthesized = model(conditioning, batch.f0 if architecture.uses_f0 else None)
        stft_loss, mel_loss = loss_function.terms(synthesized, batch.waveform)
        loss = stft_loss + config.mel_weight * mel_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        state.step += 1
        state.train_seconds += time.monotonic() - wall
        state.cpu_seconds += time.process_time() - cpu
        if state.step % LOG_EVERY == 0:
            log.info(
                "step",
                step=state.step,
                stft=round(stft_loss.item(), 4),
                mel=round(mel_loss.item(), 4),
                train_s=round(state.train_seconds),
                cpu_s=round(state.cpu_seconds),
            )
        if state.step % config.checkpoint_every == 0:
            _save_checkpoint(checkpoint_path, config, files_sha, model, optimizer, rng, state)
    _save_checkpoint(checkpoint_path, config, files_sha, model, optimizer, rng, state)
    return _publish(config, model, state, files_sha, weights_dir, held_out)


def _publish(
    config: TrainingConfig,
    model: torch.nn.Module,
    state: RunState,
    files_sha: str,
    weights_dir: Path,
    held_out: int,
) -> dict[str, Any]:
    """Write ``<arch>.pt`` and ``<arch>.json`` to ``weights_dir``, with the sanity figures on
    ``held_out`` held-out prompts (none when 0)."""
    weights_dir.mkdir(parents=True, exist_ok=True)
    weights_path = weights_dir / f"{config.arch}.pt"
    _atomic_save(model.state_dict(), weights_path)
    report: dict[str, Any] = {
        "arch": config.arch,
        "config": config.as_json(),
        "model_config": dataclasses.asdict(get_architecture(config.arch).config(config.model)),
        "steps": state.step,
        "train_seconds": round(state.train_seconds, 1),
        "cpu_seconds": round(state.cpu_seconds, 1),
        "parameters": parameter_count(model),
        "weights_bytes": weights_path.stat().st_size,
        "training_files_sha256": files_sha,
    }
    json_path = weights_dir / f"{config.arch}.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    if held_out > 0:
        from dfd.trainers.corpus.neural_vocoders import sanity  # only when asked: slow

        model.eval()
        report["sanity"] = sanity.sanity_report(config.arch, model, held_out)
        json_path.write_text(json.dumps(report, indent=2) + "\n")
    return report


def _save_checkpoint(
    path: Path,
    config: TrainingConfig,
    files_sha: str,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    rng: np.random.Generator,
    state: RunState,
) -> None:
    checkpoint = {
        "config": json.dumps(config.as_json()),
        "files_sha256": files_sha,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "numpy_rng": json.dumps(rng.bit_generator.state),
        "torch_rng": torch.get_rng_state(),
        "step": state.step,
        "train_seconds": state.train_seconds,
        "cpu_seconds": state.cpu_seconds,
    }
    _atomic_save(checkpoint, path)


def _restore(
    path: Path,
    config: TrainingConfig,
    files_sha: str,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    rng: np.random.Generator,
) -> RunState:
    """Load ``path`` into the model, optimiser and generator; refuse a different config or file
    list, which would make the resumed run a different experiment."""
    checkpoint = torch.load(path, weights_only=True)
    saved = TrainingConfig.from_json(json.loads(checkpoint["config"]))
    if saved != config:
        raise ValueError(f"{path} was trained with {saved}, not {config}")
    if checkpoint["files_sha256"] != files_sha:
        raise ValueError(f"{path} was trained on a different file list")
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    rng.bit_generator.state = json.loads(checkpoint["numpy_rng"])
    torch.set_rng_state(checkpoint["torch_rng"])
    return RunState(
        int(checkpoint["step"]),
        float(checkpoint["train_seconds"]),
        float(checkpoint["cpu_seconds"]),
    )


def _atomic_save(value: object, path: Path) -> None:
    partial = path.with_suffix(path.suffix + ".partial")
    torch.save(value, partial)
    os.replace(partial, path)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--arch", required=True, choices=sorted(DEFAULT_CONFIGS))
    parser.add_argument("--files", required=True, type=Path, help="list of training audio files")
    parser.add_argument("--out", required=True, type=Path, help="checkpoint directory")
    parser.add_argument("--resume", action="store_true", help="continue from --out's checkpoint")
    parser.add_argument("--minutes", type=float, default=20.0, help="training time, all runs")
    parser.add_argument("--steps", type=int, default=None, help="stop at this many steps in all")
    parser.add_argument("--weights-dir", type=Path, default=WEIGHTS_DIR)
    parser.add_argument("--held-out", type=int, default=30, help="prompts for sanity figures")
    args = parser.parse_args(argv)
    start = resource.getrusage(resource.RUSAGE_SELF)
    report = train(
        DEFAULT_CONFIGS[args.arch],
        args.files,
        args.out,
        resume=args.resume,
        minutes=args.minutes,
        max_steps=args.steps,
        weights_dir=args.weights_dir,
        held_out=args.held_out,
    )
    end = resource.getrusage(resource.RUSAGE_SELF)
    used = end.ru_utime + end.ru_stime - start.ru_utime - start.ru_stime
    log.info("done", report=report, process_cpu_s=round(used))
    return report


if __name__ == "__main__":
    main()
