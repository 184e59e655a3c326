"""One validated configuration per training experiment, read from TOML.

```toml
family = "mfcc-cnn"
epochs = 20
batch_size = 32
learning_rate = 1e-3

[model]          # overrides of the family's default config
dropout = 0.3

[loss]           # options of the family's loss (e.g. gamma, alpha for focal)

[augment]
noise_probability = 0.3
```

The resolved configuration (defaults filled in) is written into the run folder, and a resumed run
must carry the very same configuration (settings added since the run started at their defaults).
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any, Literal

from dfd.core.typed_config import ConfigError, build_dataclass
from dfd.trainers.rawboost import RawBoostAlgorithm

OPTIMIZERS = ("adam", "adamw", "sgd")
Validation = Literal["dev", "split"]
# dfd.trainers.corpus.conditions.PRESETS, without importing the corpus extras to read a config
ConditionPreset = Literal["default", "phone_full"]


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Applied to training windows only, each draw from the run's seeded generator."""

    noise_probability: float = 0.3
    snr_db_min: float = 10.0
    snr_db_max: float = 40.0
    gain_db_max: float = 6.0  # uniform in [-max, +max]
    codec_probability: float = 0.2  # G.711 mu-law or A-law round trip at 8 kHz
    time_stretch_probability: float = 0.0  # tempo times a rate, pitch kept (phase vocoder)
    stretch_min: float = 0.9  # rate uniform in [min, max]; above 1 is faster
    stretch_max: float = 1.1
    pitch_shift_probability: float = 0.0  # pitch shifted, tempo kept
    pitch_shift_semitones_max: float = 2.0  # uniform in [-max, +max] semitones
    # RawBoost (dfd.trainers.rawboost): with this probability a window gets the listed
    # distortions in series, before gain, codec and noise. The default pair is the paper's best
    # on logical access (its "algorithm 5").
    rawboost_probability: float = 0.0
    rawboost: tuple[RawBoostAlgorithm, ...] = ("convolutive", "impulsive")
    # Corpus v2's condition chains online (dfd.trainers.online_conditions): with this probability
    # a window also goes through a room, noise, device and phone line drawn from the preset.
    conditions_probability: float = 0.0
    conditions: ConditionPreset = "phone_full"

    def __post_init__(self) -> None:
        probabilities = (
            "noise_probability",
            "codec_probability",
            "time_stretch_probability",
            "pitch_shift_probability",
            "rawboost_probability",
            "conditions_probability",
        )
        for name in probabilities:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"augment.{name} must lie in [0, 1]")
        if self.snr_db_min > self.snr_db_max:
            raise ConfigError("augment.snr_db_min must not exceed augment.snr_db_max")
        if not 0.5 <= self.stretch_min <= self.stretch_max <= 2.0:
            raise ConfigError(
                "augment: need 0.5 <= stretch_min <= stretch_max <= 2.0, got "
                f"{self.stretch_min}, {self.stretch_max}"
            )
        if not 0.0 <= self.pitch_shift_semitones_max <= 12.0:
            raise ConfigError("augment.pitch_shift_semitones_max must lie in [0, 12]")
        if self.rawboost_probability > 0 and not self.rawboost:
            raise ConfigError("augment.rawboost lists no distortion but rawboost_probability > 0")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    family: str
    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 1e-3
    optimizer: str = "adamw"  # adam, adamw or sgd (momentum 0.9)
    weight_decay: float = 1e-4
    grad_clip: float = 5.0
    patience: int = 5  # epochs without a better validation EER before stopping
    # What early stopping watches: "dev", the dev protocol; "split", a stratified, seeded
    # validation_fraction of the training protocol, held out from training. Calibration and the
    # bundle's metrics always use the dev protocol.
    validation: Validation = "dev"
    validation_fraction: float = 0.2
    seed: int = 0
    device: str = "auto"
    window_s: float = 2.0
    hop_s: float = 0.5
    steps_per_epoch: int | None = None  # None: one pass over the training utterances
    dev_max_trials: int | None = None  # None: score every dev (or held-out) trial
    # Windows per forward pass when scoring the validation and dev sets. AASIST holds about
    # 0.15 GB per 2 s window on the CPU, so its recipes lower this.
    score_batch_size: int = 64
    # Start from these weights instead of a random initialisation: a weights-only state dict
    # that fits the family's model exactly (an official AASIST checkpoint for aasist / aasist-l,
    # or a run's best.pt). Its sha256 goes into the bundle's card.
    init_weights: str | None = None
    # Keep the element-wise mean of the weights of the best ``average_checkpoints`` epochs (by
    # validation EER; batch-norm statistics averaged too) instead of the best epoch alone. Every
    # epoch's weights are kept in ``epoch-NNN.pt`` for it.
    average_checkpoints: int = 1
    # Sharpness-aware minimisation (dfd.trainers.sharpness): the radius of the neighbourhood
    # whose worst loss is minimised; 0 turns it off. sam_adaptive: ASAM, the radius scaled by
    # each weight's size (use a larger rho, e.g. 0.5). Each step costs two passes.
    sam_rho: float = 0.0
    sam_adaptive: bool = False
    # Paired batches (dfd.trainers.vocoded_pairs): this share of each batch's bona fide windows
    # comes with the same window of the utterance's vocoded copy, same augmentation, as one of
    # the batch's spoof windows; the corpus manifest says which spoof is whose copy. 0: off.
    vocoded_pairs: float = 0.0
    model: dict[str, Any] = dataclasses.field(default_factory=dict)
    loss: dict[str, Any] = dataclasses.field(default_factory=dict)
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        positive = (
            "epochs", "batch_size", "learning_rate", "window_s", "hop_s", "score_batch_size"
        )  # fmt: skip
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}"
            )
        if not 0.0 < self.validation_fraction < 1.0:
            raise ConfigError(
                f"validation_fraction must lie in (0, 1), got {self.validation_fraction}"
            )
        if self.batch_size < 2:
            raise ConfigError("batch_size must be at least 2 (batches hold both classes)")
        if not 0.0 <= self.sam_rho < 10.0:
            raise ConfigError(f"sam_rho must lie in [0, 10), got {self.sam_rho}")
        if not 0.0 <= self.vocoded_pairs <= 1.0:
            raise ConfigError(f"vocoded_pairs must lie in [0, 1], got {self.vocoded_pairs}")
        if self.average_checkpoints < 1:
            raise ConfigError(
                f"average_checkpoints must be at least 1, got {self.average_checkpoints}"
            )
        for name in ("steps_per_epoch", "dev_max_trials"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be at least 1 when given")
        for name in ("model", "loss"):
            if not isinstance(getattr(self, name), dict):
                raise ConfigError(f"[{name}] must be a table")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_train_config(path: Path | None, **overrides: Any) -> TrainConfig:
    """Read ``path`` (TOML) and apply command-line ``overrides`` (``None`` values are ignored)."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{path}: not valid TOML ({error})") from error
    data.update({key: value for key, value in overrides.items() if value is not None})
    if "family" not in data:
        raise ConfigError("the training config needs a family (or pass --model)")
    return build_dataclass(TrainConfig, data, where=str(path or "training config"))
