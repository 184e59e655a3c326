"""Train one detector family on a protocol: the loop behind ``dfd train``.

Every utterance is decoded once and kept in memory. Each step draws a class-balanced batch of
utterances, cuts one random window from each (repeating utterances shorter than a window), applies
the seeded augmentation (``dfd.trainers.augment``), computes the family's front end on the
training device and takes one optimiser step on the family's loss. After each epoch the
validation set is scored utterance by utterance (mean of the window outputs over the whole
utterance, the windows the daemon would see), a checkpoint is written, and the best validation
EER is kept; training stops early when it has not improved for ``patience`` epochs. The
validation set is the dev protocol, or with ``validation = "split"`` a stratified part of the
training protocol held out from training (``dfd.trainers.split``, listed in ``split.json``).
Either way the finished run is scored on the dev protocol, which calibrates the bundle; a
siamese run also gets its pair threshold sweep on dev (``siamese_sweep.json``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog
import torch
from torch import nn

from dfd.core.typed_config import ConfigError, coerce_value
from dfd.detectors.contract import spoof_direction
from dfd.detectors.registry import DetectorFamily, family
from dfd.detectors.state_dicts import load_checked_state_dict
from dfd.dsp.audio_io import load_audio
from dfd.dsp.batcher import resolve_device
from dfd.dsp.extract import remove_mean, scoring_windows
from dfd.dsp.framer import WindowGeometry
from dfd.trainers.augment import augmented_window, random_window
from dfd.trainers.config import TrainConfig
from dfd.trainers.datasets import Trial, read_dataset
from dfd.trainers.losses import build_loss
from dfd.trainers.metrics import spoofness_eer
from dfd.trainers.online_conditions import condition_windows
from dfd.trainers.sharpness import sam_gradients
from dfd.trainers.siamese_sweep import best_figures, pair_threshold_sweep
from dfd.trainers.split import stratified_split
from dfd.trainers.vocoded_pairs import check_pairs, paired_windows, vocoded_copies

log = structlog.get_logger("dfd.train")

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
RESOLVED_CONFIG = "config.json"
HISTORY = "history.json"
SPLIT = "split.json"
SIAMESE_SWEEP = "siamese_sweep.json"
# Random streams besides the epochs' (spawn key (epoch,), epoch >= 1).
SPLIT_STREAM = (0, 1)
SWEEP_STREAM = (0, 2)
ProgressCallback = Callable[[int, int], None]


@dataclass
class LabelledAudio:
    """Decoded utterances of one protocol, first channel, at the pipeline sample rate."""

    trials: list[Trial]
    audio: list[np.ndarray]
    is_spoof: np.ndarray

    @classmethod
    def load(
        cls, protocols: Path | Sequence[Path], sample_rate: int, limit: int | None = None
    ) -> LabelledAudio:
        """The trials of one protocol, or of several in turn (e.g. a corpus's clean training
        protocol and its phone-condition copy)."""
        paths = [protocols] if isinstance(protocols, Path) else list(protocols)
        trials = [trial for path in paths for trial in read_dataset(path)]
        trials = [trials[i] for i in _limited(len(trials), limit)]
        audio = [load_audio(t.path, sample_rate=sample_rate).samples[0] for t in trials]
        return cls._checked(trials, audio, " + ".join(str(path) for path in paths))

    def subset(self, indices: np.ndarray, limit: int | None = None) -> LabelledAudio:
        """The utterances at ``indices`` (at most ``limit`` of them, a fixed random choice)."""
        chosen = [int(indices[i]) for i in _limited(len(indices), limit)]
        return self._checked(
            [self.trials[i] for i in chosen], [self.audio[i] for i in chosen], "a subset"
        )

    @classmethod
    def _checked(cls, trials: list[Trial], audio: list[np.ndarray], where: str) -> LabelledAudio:
        is_spoof = np.array([t.label == "spoof" for t in trials])
        if is_spoof.all() or not is_spoof.any():
            raise ConfigError(f"{where}: training and scoring need both classes")
        return cls(trials, audio, is_spoof)


def _limited(count: int, limit: int | None) -> list[int]:
    if limit is None:
        return list(range(count))
    return sorted(int(i) for i in np.random.default_rng(0).permutation(count)[:limit])


@dataclass
class EpochResult:
    epoch: int
    train_loss: float
    dev_eer: float  # on the validation set: the dev protocol, or the held-out split
    learning_rate: float


@dataclass
class TrainingRun:
    """What a finished run leaves: the best model, its family and config, dev scores."""

    family: DetectorFamily[Any]
    model_config: Any
    model: nn.Module
    dev_raw: np.ndarray  # spoof-direction raw output per dev-protocol utterance
    dev: LabelledAudio  # the dev protocol (never the held-out split): calibration data
    history: list[EpochResult]
    pair_sweep: dict[str, Any] | None = None  # siamese families: the pair threshold sweep


def train(
    config: TrainConfig,
    train_protocol: Path | Sequence[Path],
    dev_protocol: Path,
    run_dir: Path,
    resume: bool = False,
    progress: ProgressCallback | None = None,
) -> TrainingRun:
    entry = family(config.family)
    model_config = resolve_model_config(entry, config.model)
    _prepare_run_dir(run_dir, config, resume)
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    geometry = WindowGeometry(16_000, config.window_s, config.hop_s)

    train_set = LabelledAudio.load(train_protocol, geometry.sample_rate)
    dev_set = LabelledAudio.load(dev_protocol, geometry.sample_rate, config.dev_max_trials)
    validation_set = dev_set
    if config.validation == "split":
        train_set, validation_set = _split(train_set, config, run_dir)
    copies: dict[int, list[int]] = {}
    if config.vocoded_pairs > 0:
        copies = vocoded_copies(train_set.trials)
        check_pairs(copies, config.vocoded_pairs, "the training protocols")
        log.info("vocoded pairs", utterances=len(copies), share=config.vocoded_pairs)
    log.info(
        "data loaded",
        train=len(train_set.trials),
        validation=f"{len(validation_set.trials)} ({config.validation})",
        dev=len(dev_set.trials),
        device=str(device),
    )

    model = entry.build(model_config)
    resuming = resume and (run_dir / CHECKPOINT).is_file()
    if config.init_weights is not None and not resuming:  # a resumed run has its own weights
        try:
            load_checked_state_dict(model, Path(config.init_weights), model_name=config.family)
        except (OSError, ValueError) as error:
            raise ConfigError(f"init_weights: {error}") from error
        log.info("initial weights loaded", path=config.init_weights)
    model = model.to(device)
    frontend = entry.build_frontend(model_config).to(device)
    loss_function = build_loss(entry.loss, **config.loss).to(device)
    optimiser = build_optimiser(config, model)
    steps_per_epoch = config.steps_per_epoch or math.ceil(len(train_set.trials) / config.batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimiser, T_max=config.epochs * steps_per_epoch
    )
    history: list[EpochResult] = []
    start_epoch, best_eer, stale = 1, math.inf, 0
    if resuming:
        state = torch.load(run_dir / CHECKPOINT, weights_only=True, map_location=device)
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        scheduler.load_state_dict(state["scheduler"])
        history = [EpochResult(**row) for row in json.loads((run_dir / HISTORY).read_text())]
        start_epoch, best_eer, stale = state["epoch"] + 1, state["best_eer"], state["stale"]
        log.info("resumed", epoch=state["epoch"], best_dev_eer=best_eer)

    for epoch in range(start_epoch, config.epochs + 1):
        # Seeded per epoch, so a resumed run draws what the uninterrupted run would have.
        rng = _stream(config.seed, epoch)
        torch.manual_seed(config.seed * 1000 + epoch)
        model.train()
        losses = []
        for step in range(steps_per_epoch):
            windows, is_spoof = _training_batch(train_set, config, geometry, rng, copies)
            batch, labels = torch.from_numpy(windows).to(device), torch.from_numpy(is_spoof)

            def batch_loss(
                batch: torch.Tensor = batch, labels: torch.Tensor = labels
            ) -> torch.Tensor:
                return _loss(entry, model, loss_function, frontend(batch), labels.to(device))

            if config.sam_rho > 0:  # the gradient at the worst nearby weights
                loss = sam_gradients(model, batch_loss, config.sam_rho, config.sam_adaptive)
            else:
                loss = batch_loss()
                optimiser.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimiser.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            if progress is not None:
                progress((epoch - 1) * steps_per_epoch + step + 1, config.epochs * steps_per_epoch)
        if entry.output == "spoof_score":
            _set_prototypes(model, frontend, train_set, geometry, device, rng)
        raw = score_utterances(
            entry, model, frontend, validation_set.audio, geometry, device, config.score_batch_size
        )
        spoof = validation_set.is_spoof
        dev_eer = spoofness_eer(raw, spoof)
        learning_rate = float(scheduler.get_last_lr()[0])
        result = EpochResult(epoch, float(np.mean(losses)), dev_eer, learning_rate)
        history.append(result)
        improved = dev_eer < best_eer
        best_eer, stale = (dev_eer, 0) if improved else (best_eer, stale + 1)
        if improved:
            torch.save(model.state_dict(), run_dir / BEST)
        torch.save(model.state_dict(), run_dir / epoch_weights(epoch))
        torch.save(
            {
                "model": model.state_dict(),
                "optimiser": optimiser.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch,
                "best_eer": best_eer,
                "stale": stale,
            },
            run_dir / CHECKPOINT,
        )
        (run_dir / HISTORY).write_text(
            json.dumps([dataclasses.asdict(h) for h in history], indent=1)
        )
        log.info("epoch", **dataclasses.asdict(result), best_dev_eer=best_eer)
        if stale >= config.patience:
            log.info("early stop", epoch=epoch, patience=config.patience)
            break

    model.load_state_dict(torch.load(run_dir / BEST, weights_only=True, map_location=device))
    if config.average_checkpoints > 1:
        _average_best_epochs(
            model, history, config.average_checkpoints, run_dir, device,
            lambda: score_utterances(
                entry, model, frontend, validation_set.audio, geometry, device,
                config.score_batch_size,
            ),
            validation_set.is_spoof,
        )  # fmt: skip
    dev_raw = score_utterances(
        entry, model, frontend, dev_set.audio, geometry, device, config.score_batch_size
    )
    pair_sweep = None
    if entry.output == "spoof_score":  # siamese: how well do distances tell the classes apart
        pair_sweep = pair_threshold_sweep(
            model, frontend, dev_set.audio, dev_set.is_spoof, geometry, device,
            _stream(config.seed, *SWEEP_STREAM),
        )  # fmt: skip
        (run_dir / SIAMESE_SWEEP).write_text(json.dumps(pair_sweep, indent=1))
        log.info("pair threshold sweep", **best_figures(pair_sweep))
    model = model.cpu().eval()
    return TrainingRun(entry, model_config, model, dev_raw, dev_set, history, pair_sweep)


def epoch_weights(epoch: int) -> str:
    """The file holding the model's weights after ``epoch``."""
    return f"epoch-{epoch:03d}.pt"


def average_state_dicts(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of floating-point entries; integer entries (batch-norm batch counts)
    take their largest value."""
    averaged = {}
    for key, first in states[0].items():
        stacked = torch.stack([state[key] for state in states])
        averaged[key] = stacked.mean(dim=0) if first.is_floating_point() else stacked.max(dim=0)[0]
    return averaged


def _average_best_epochs(
    model: nn.Module,
    history: Sequence[EpochResult],
    count: int,
    run_dir: Path,
    device: torch.device,
    score: Callable[[], np.ndarray],
    is_spoof: np.ndarray,
) -> None:
    """Load the mean of the best ``count`` epochs' weights into ``model``; log its validation
    EER beside the best single epoch's."""
    ranked = sorted(history, key=lambda result: result.dev_eer)
    chosen = [r.epoch for r in ranked if (run_dir / epoch_weights(r.epoch)).is_file()][:count]
    if len(chosen) < 2:
        log.warning("checkpoint averaging skipped: fewer than two epochs' weights", kept=chosen)
        return
    states = [
        torch.load(run_dir / epoch_weights(epoch), weights_only=True, map_location=device)
        for epoch in chosen
    ]
    model.load_state_dict(average_state_dicts(states))
    raw = score()
    averaged_eer = spoofness_eer(raw, is_spoof)
    log.info(
        "checkpoints averaged", epochs=sorted(chosen), validation_eer=averaged_eer,
        best_single_eer=ranked[0].dev_eer,
    )  # fmt: skip


def build_optimiser(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The experiment's optimiser: Adam and SGD take L2 weight decay, AdamW decoupled decay."""
    parameters, rate, decay = model.parameters(), config.learning_rate, config.weight_decay
    if config.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=rate, weight_decay=decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=rate, momentum=0.9, weight_decay=decay)
    return torch.optim.AdamW(parameters, lr=rate, weight_decay=decay)


def resolve_model_config(entry: DetectorFamily[Any], overrides: dict[str, Any]) -> Any:
    """The family's default config with ``overrides`` applied, each checked against its type."""
    default = entry.default_config
    fields = {f.name: f for f in dataclasses.fields(default)}
    hints = typing.get_type_hints(type(default))
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ConfigError(
            f"[model]: unknown key(s) {', '.join(unknown)} for {entry.name} "
            f"(known: {', '.join(sorted(fields))})"
        )
    values = {k: coerce_value(v, hints[k], f"model.{k}") for k, v in overrides.items()}
    return dataclasses.replace(default, **values)


def raw_output(entry: DetectorFamily[Any], output: torch.Tensor) -> torch.Tensor:
    """The spoof-direction raw score of a model output: higher = more likely synthetic."""
    return spoof_direction(output, entry.spoof_index)


def score_utterances(
    entry: DetectorFamily[Any],
    model: nn.Module,
    frontend: nn.Module,
    utterances: Sequence[np.ndarray],
    geometry: WindowGeometry,
    device: torch.device,
    batch_size: int = 64,
) -> np.ndarray:
    """Mean raw output over every window of each utterance (the daemon's windows)."""
    model.eval()
    owners, windows = [], []
    for index, audio in enumerate(utterances):
        for window in scoring_windows(audio, geometry):
            owners.append(index)
            windows.append(window.samples)
    raw = np.empty(len(windows), dtype=np.float64)
    with torch.inference_mode():
        for start in range(0, len(windows), batch_size):
            batch = torch.from_numpy(remove_mean(np.stack(windows[start : start + batch_size])))
            batch = batch.to(device)
            output = raw_output(entry, model(frontend(batch)))
            raw[start : start + len(batch)] = output.double().cpu().numpy()
    sums = np.bincount(owners, weights=raw, minlength=len(utterances))
    return sums / np.bincount(owners, minlength=len(utterances))


def _stream(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _split(
    data: LabelledAudio, config: TrainConfig, run_dir: Path
) -> tuple[LabelledAudio, LabelledAudio]:
    """``(training, held out)``: the held-out part (capped at ``dev_max_trials``) is scored for
    early stopping and never trained on; its utterance ids go to ``split.json``."""
    rng = _stream(config.seed, *SPLIT_STREAM)
    kept, held_out = stratified_split(data.trials, config.validation_fraction, rng)
    record = {
        "validation_fraction": config.validation_fraction,
        "held_out": [data.trials[i].utterance_id for i in held_out],
    }
    (run_dir / SPLIT).write_text(json.dumps(record, indent=1))
    return data.subset(kept), data.subset(held_out, config.dev_max_trials)


def _training_batch(
    data: LabelledAudio,
    config: TrainConfig,
    geometry: WindowGeometry,
    rng: np.random.Generator,
    copies: dict[int, list[int]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Half bona fide, half spoof; a random window of each utterance, augmented. With
    ``vocoded_pairs``, that share of the bona fide windows is drawn from utterances with a
    vocoded copy (``copies``), each with the same window of one of its copies as a spoof."""
    half = config.batch_size // 2
    bonafide_count = config.batch_size - half
    pairs = round(config.vocoded_pairs * bonafide_count) if copies else 0
    windows: list[np.ndarray] = []
    labels: list[bool] = []
    if pairs:
        assert copies is not None
        sources = list(copies)
        for source in rng.choice(len(sources), pairs):
            utterance = sources[int(source)]
            copy = int(rng.choice(copies[utterance]))
            pair = paired_windows(
                data.audio[utterance], data.audio[copy], geometry, config.augment, rng
            )
            windows += pair
            labels += [False, True]
    spoof_indices = np.flatnonzero(data.is_spoof)
    bonafide_indices = np.flatnonzero(~data.is_spoof)
    chosen = np.concatenate(
        [
            rng.choice(bonafide_indices, bonafide_count - pairs),
            rng.choice(spoof_indices, half - pairs),
        ]
    )
    windows += [augmented_window(data.audio[i], geometry, config.augment, rng) for i in chosen]
    labels += [bool(data.is_spoof[i]) for i in chosen]
    if config.augment.conditions_probability > 0:
        bonafide_audio = [data.audio[i] for i in bonafide_indices]
        windows = condition_windows(windows, config.augment, rng, bonafide_audio)
    batch = np.stack(windows).astype(np.float32)
    # the pre-processing every scoring path applies (dfd.dsp.extract.remove_mean)
    return remove_mean(batch), np.array(labels, dtype=np.float32)


def _loss(
    entry: DetectorFamily[Any],
    model: nn.Module,
    loss_function: nn.Module,
    features: torch.Tensor,
    is_spoof: torch.Tensor,
) -> torch.Tensor:
    if entry.output == "spoof_score":  # siamese: contrastive loss on pairs within the batch
        embeddings = model.embed(features)  # type: ignore[operator]
        partner = torch.roll(torch.arange(len(is_spoof), device=is_spoof.device), 1)
        similar = (is_spoof == is_spoof[partner]).float()
        loss: torch.Tensor = loss_function(embeddings, embeddings[partner], similar)
        return loss
    output = model(features)
    if entry.output == "class_logits":
        spoof = entry.spoof_index
        assert spoof is not None
        target = torch.where(is_spoof > 0.5, spoof, 1 - spoof).long()
        loss = loss_function(output, target)
    else:
        loss = loss_function(output, is_spoof)
    return loss


def _set_prototypes(
    model: nn.Module,
    frontend: nn.Module,
    data: LabelledAudio,
    geometry: WindowGeometry,
    device: torch.device,
    rng: np.random.Generator,
    per_class: int = 256,
) -> None:
    """Mean training embedding of each class, the siamese model's reference points."""
    model.eval()
    prototypes = []
    with torch.inference_mode():
        for spoof in (False, True):
            indices = rng.choice(np.flatnonzero(data.is_spoof == spoof), per_class)
            windows = remove_mean(
                np.stack([random_window(data.audio[i], geometry, rng) for i in indices])
            )
            features = frontend(torch.from_numpy(windows.astype(np.float32)).to(device))
            prototypes.append(model.embed(features).mean(dim=0))  # type: ignore[operator]
    model.set_prototypes(prototypes[0], prototypes[1])  # type: ignore[operator]


def _prepare_run_dir(run_dir: Path, config: TrainConfig, resume: bool) -> None:
    resolved = json.dumps(config.to_dict(), indent=1, sort_keys=True)
    saved = run_dir / RESOLVED_CONFIG
    if resume and saved.is_file():
        defaults = json.loads(json.dumps(TrainConfig(family=config.family).to_dict()))
        if not _same_config(json.loads(saved.read_text()), json.loads(resolved), defaults):
            raise ConfigError(f"{run_dir}: --resume needs the configuration the run started with")
        return
    if (run_dir / CHECKPOINT).exists() and not resume:
        raise ConfigError(f"{run_dir} already holds a run; pass --resume or choose another folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    saved.write_text(resolved)


def _same_config(saved: Any, current: Any, default: Any) -> bool:
    """``current`` is ``saved``, but for settings added to dfd since the run started, which are
    accepted at their defaults (they change nothing for a run that never had them)."""
    if not (isinstance(saved, dict) and isinstance(current, dict)):
        return bool(saved == current)
    defaults = default if isinstance(default, dict) else {}
    if not set(saved) <= set(current):
        return False
    return all(
        _same_config(saved[key], value, defaults.get(key))
        if key in saved
        else key in defaults and value == defaults[key]
        for key, value in current.items()
    )
