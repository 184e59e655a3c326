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
must carry the very same configuration.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

from dfd.core.typed_config import ConfigError, build_dataclass


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Applied to training windows only, each draw from the run's seeded generator."""

    noise_probability: float = 0.3
    snr_db_min: float = 10.0
    snr_db_max: float = 40.0
    gain_db_max: float = 6.0  # uniform in [-max, +max]
    codec_probability: float = 0.2  # G.711 mu-law or A-law round trip at 8 kHz

    def __post_init__(self) -> None:
        for name in ("noise_probability", "codec_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"augment.{name} must lie in [0, 1]")
        if self.snr_db_min > self.snr_db_max:
            raise ConfigError("augment.snr_db_min must not exceed augment.snr_db_max")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    family: str
    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    grad_clip: float = 5.0
    patience: int = 5  # epochs without a better dev EER before stopping
    seed: int = 0
    device: str = "auto"
    window_s: float = 2.0
    hop_s: float = 0.5
    steps_per_epoch: int | None = None  # None: one pass over the training utterances
    dev_max_trials: int | None = None  # None: score the whole dev protocol every epoch
    model: dict[str, Any] = dataclasses.field(default_factory=dict)
    loss: dict[str, Any] = dataclasses.field(default_factory=dict)
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        positive = ("epochs", "batch_size", "learning_rate", "window_s", "hop_s")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise ConfigError("batch_size must be at least 2 (batches hold both classes)")
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
