"""mfcc-cnn: a small two-layer CNN over cepstra (20 MFCCs by default), with a two-way output.

Front end: ``MfccSpec()`` (20 coefficients from 40 log-mel bands, 512-point FFT, hop 160), ``(batch,
20, 201)`` for a 2 s window; or, to compare front ends on one model, an ``LfccSpec`` (linear
filters; with deltas, ``(batch, 60, 201)``), a ``LogSpectrogramSpec`` (the log power of the linear
STFT bins, ``(batch, 257, 201)``) or a ``ConstantQSpec`` (``(batch, 87, 201)``). The rows are
normalised one by one (batch norm: running mean and variance learned in training; c0 is on a much
larger scale than the rest), then two 3 x 3 convolutions (16 and 32 channels, each with batch norm,
ReLU and 2 x 2 max pooling), then a dense layer of 128 with dropout, and two output logits. Between
the convolutions and the dense layer, ``pooling`` chooses:

- ``"flatten"`` (the reference design): the whole feature map, flattened. Its size depends on the
  input's shape, so the model is built for ``(n_mfcc, frames)`` and refuses others. About a
  million weights in the dense layer; with RawBoost-style augmentation it can collapse (every
  hidden unit dead, a constant output) within the first hundred steps.
- ``"time-stats"``: the mean and standard deviation over time of each channel and band (x-vector
  statistics pooling), 2 x 32 x rows / 4 values (320 for MFCCs): 25 times fewer dense weights,
  trains stably under the same augmentation, and takes any number of frames.

Output: ``(batch, 2)`` class logits, index 0 = bona fide, index 1 = spoof (``output_convention
"class_logits"``); train with ``CrossEntropyLoss`` on labels 1 = spoof.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

import torch
from torch import nn

from dfd.core.typed_config import ConfigError
from dfd.detectors.common import WINDOW_SAMPLES, Detector, describe
from dfd.detectors.contract import OutputConvention
from dfd.dsp.frontends import (
    ConstantQSpec,
    FrontendSpec,
    LfccSpec,
    LogSpectrogramSpec,
    MfccSpec,
)

BONAFIDE_INDEX = 0
SPOOF_INDEX = 1
DEFAULT_FRONTEND = MfccSpec()


@dataclasses.dataclass(frozen=True)
class MfccCnnConfig:
    # Cepstra in: MFCCs (the reference design), or LFCCs (linear filters, so the high band keeps
    # its resolution; with deltas, 3 x n_lfcc rows), e.g. [model] frontend = { n_lfcc = 20 };
    # or a spectrogram, named by kind: frontend = { kind = "logspec" } or { kind = "cqt" }.
    frontend: MfccSpec | LfccSpec | LogSpectrogramSpec | ConstantQSpec = DEFAULT_FRONTEND
    window_samples: int = WINDOW_SAMPLES
    channels: tuple[int, int] = (16, 32)
    hidden: int = 128
    dropout: float = 0.5
    pooling: Literal["flatten", "time-stats"] = "flatten"

    def __post_init__(self) -> None:
        if self.window_samples < 4 * self.frontend.hop_length:
            raise ConfigError("mfcc-cnn: window_samples is too short for two 2 x 2 poolings")
        if min(self.channels) < 1 or self.hidden < 1:
            raise ConfigError("mfcc-cnn: channels and hidden must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"mfcc-cnn: dropout must be in [0, 1), got {self.dropout}")

    @property
    def input_shape(self) -> tuple[int, int]:
        rows, frames = self.frontend.output_shape(self.window_samples)
        return (rows, frames)


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
        if config.pooling == "flatten":
            pooled = second * (rows // 4) * (frames // 4)
        else:  # mean and standard deviation over time, per channel and band
            pooled = 2 * second * (rows // 4)
        self.head = nn.Sequential(
            nn.Flatten(),  # kept for "time-stats" too: the weights' names stay those of v1 bundles
            nn.Linear(pooled, config.hidden),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, 2),
        )

    @property
    def frontend_spec(self) -> FrontendSpec:
        return self.config.frontend

    def _fits(self, features: torch.Tensor) -> bool:
        rows, frames = self.config.input_shape
        if self.config.pooling == "flatten":
            return tuple(features.shape[1:]) == (rows, frames)
        return features.shape[1] == rows and features.shape[2] >= 4

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        rows, frames = self.config.input_shape
        if not torch.onnx.is_in_onnx_export() and not self._fits(features):
            wanted = frames if self.config.pooling == "flatten" else "at least 4"
            raise ValueError(
                f"mfcc-cnn expects (batch, {rows}, {wanted}) features, got {tuple(features.shape)}"
            )
        image = self.input_norm(features).unsqueeze(1)
        maps = self.convs(image)  # (batch, channels, rows // 4, frames // 4)
        pooled = maps
        if self.config.pooling == "time-stats":
            bands = maps.flatten(1, 2)  # (batch, channels x rows // 4, frames // 4)
            pooled = torch.cat([bands.mean(dim=2), bands.std(dim=2)], dim=1)
        logits: torch.Tensor = self.head(pooled)
        return logits


def mfcc_cnn(config: MfccCnnConfig | None = None) -> MfccCnn:
    return MfccCnn(config)


if __name__ == "__main__":  # pragma: no cover
    print(describe(mfcc_cnn()))  # noqa: T201
