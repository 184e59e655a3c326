"""mfcc-cnn: a small two-layer CNN over 20 MFCCs, with a two-way output.

Front end: ``MfccSpec()`` (20 coefficients from 40 log-mel bands, 512-point FFT, hop 160),
``(batch, 20, 201)`` for a 2 s window. The coefficients are normalised per coefficient (batch
norm: running mean and variance learned in training; c0 is on a much larger scale than the
rest), then two 3 x 3 convolutions (16 and 32 channels, each with batch norm, ReLU and 2 x 2 max
pooling), flattened, a dense layer of 128 with dropout, and two output logits. The flattened size
depends on the input's shape, so the model is built for ``(n_mfcc, frames)`` and refuses others.

Output: ``(batch, 2)`` class logits, index 0 = bona fide, index 1 = spoof (``output_convention
"class_logits"``); train with ``CrossEntropyLoss`` on labels 1 = spoof.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from torch import nn

from dfd.core.typed_config import ConfigError
from dfd.detectors.common import WINDOW_SAMPLES, Detector, describe
from dfd.detectors.contract import OutputConvention
from dfd.dsp.frontends import FrontendSpec, MfccSpec

BONAFIDE_INDEX = 0
SPOOF_INDEX = 1
DEFAULT_FRONTEND = MfccSpec()


@dataclasses.dataclass(frozen=True)
class MfccCnnConfig:
    frontend: MfccSpec = DEFAULT_FRONTEND
    window_samples: int = WINDOW_SAMPLES
    channels: tuple[int, int] = (16, 32)
    hidden: int = 128
    dropout: float = 0.5

    def __post_init__(self) -> None:
        if self.window_samples < 4 * self.frontend.hop_length:
            raise ConfigError("mfcc-cnn: window_samples is too short for two 2 x 2 poolings")
        if min(self.channels) < 1 or self.hidden < 1:
            raise ConfigError("mfcc-cnn: channels and hidden must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"mfcc-cnn: dropout must be in [0, 1), got {self.dropout}")

    @property
    def input_shape(self) -> tuple[int, int]:
        return (self.frontend.n_mfcc, self.frontend.frames(self.window_samples))


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


class MfccCnn(Detector):
    """``(batch, n_mfcc, frames)`` MFCCs -> ``(batch, 2)`` logits (index 1 = spoof)."""

    family: ClassVar[str] = "mfcc-cnn"
    output_convention: ClassVar[OutputConvention] = "class_logits"

    def __init__(self, config: MfccCnnConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or MfccCnnConfig()
        rows, frames = config.input_shape
        first, second = config.channels
        self.input_norm = nn.BatchNorm1d(rows)
        self.convs = nn.Sequential(conv_block(1, first), conv_block(first, second))
        flat = second * (rows // 4) * (frames // 4)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, config.hidden),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, 2),
        )

    @property
    def frontend_spec(self) -> FrontendSpec:
        return self.config.frontend

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if (
            not torch.onnx.is_in_onnx_export()
            and tuple(features.shape[1:]) != self.config.input_shape
        ):
            raise ValueError(
                f"mfcc-cnn expects (batch, {self.config.input_shape[0]}, "
                f"{self.config.input_shape[1]}) features, got {tuple(features.shape)}"
            )
        image = self.input_norm(features).unsqueeze(1)
        logits: torch.Tensor = self.head(self.convs(image))
        return logits


def mfcc_cnn(config: MfccCnnConfig | None = None) -> MfccCnn:
    return MfccCnn(config)


if __name__ == "__main__":  # pragma: no cover
    print(describe(mfcc_cnn()))  # noqa: T201
