"""effnet-mel: a log-mel spectrogram read as a one-channel image by EfficientNet-B0.

Front end: ``LOGMEL_128``, ``LogMelSpec(n_fft=1024, win_length=512, hop_length=250, n_mels=128)``,
``(batch, 128, 129)`` for a 2 s window, the same spec as siamese-mel so the DSP batcher computes it
once for both; to compare front ends, ``[model] frontend`` may name another spectrogram by kind
(``lfcc``, ``logspec``, ``cqt``; the network takes any height and width). The features are
normalised per mel bin (batch norm: running mean and variance learned in training), then go
through torchvision's EfficientNet-B0 (``weights=None``: trained from scratch) whose first
convolution takes one input channel instead of three, global average pooling, and a head
1280 -> 256 (SiLU) -> dropout -> 1.

Output: ``(batch,)`` spoof logit, higher = more likely spoof (``output_convention
"spoof_logit"``); train with ``BCEWithLogitsLoss`` (or ``FocalLoss``) on labels 1 = spoof.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, cast

import torch
from torch import nn

from dfd.core.typed_config import ConfigError
from dfd.detectors.common import LOGMEL_128, Detector, SpectrogramSpec, describe, frontend_rows
from dfd.detectors.contract import OutputConvention
from dfd.dsp.frontends import FrontendSpec

EFFICIENTNET_B0_CHANNELS = 1280  # width of EfficientNet-B0's last feature map


@dataclasses.dataclass(frozen=True)
class EffnetMelConfig:
    frontend: SpectrogramSpec = LOGMEL_128  # or LFCCs, a log spectrogram, constant-Q, by kind
    head_hidden: int = 256
    dropout: float = 0.3
    stochastic_depth: float = 0.2  # EfficientNet's per-block drop probability in training

    def __post_init__(self) -> None:
        if self.head_hidden < 1:
            raise ConfigError(f"effnet-mel: head_hidden must be positive, got {self.head_hidden}")
        for name in ("dropout", "stochastic_depth"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"effnet-mel: {name} must be in [0, 1)")


class EffnetMel(Detector):
    """``(batch, rows, frames)`` log-mel (or another spectrogram) -> ``(batch,)`` spoof logit."""

    family: ClassVar[str] = "effnet-mel"
    output_convention: ClassVar[OutputConvention] = "spoof_logit"

    def __init__(self, config: EffnetMelConfig | None = None) -> None:
        # Imported here: torchvision takes over a second to import, and the registry (which the
        # daemon may read for contracts) imports this module.
        from torchvision.models import efficientnet_b0

        super().__init__()
        self.config = config = config or EffnetMelConfig()
        self.input_norm = nn.BatchNorm1d(frontend_rows(config.frontend))
        backbone = efficientnet_b0(weights=None, stochastic_depth_prob=config.stochastic_depth)
        stem = backbone.features[0]
        rgb_conv: nn.Conv2d = stem[0]
        mono_conv = nn.Conv2d(
            1,
            rgb_conv.out_channels,
            kernel_size=cast(tuple[int, int], rgb_conv.kernel_size),
            stride=cast(tuple[int, int], rgb_conv.stride),
            padding=cast(tuple[int, int], rgb_conv.padding),
            bias=False,
        )
        nn.init.kaiming_normal_(mono_conv.weight, mode="fan_out")  # torchvision's own init
        stem[0] = mono_conv
        self.features: nn.Module = backbone.features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(EFFICIENTNET_B0_CHANNELS, config.head_hidden),
            nn.SiLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.head_hidden, 1),
        )

    @property
    def frontend_spec(self) -> FrontendSpec:
        return self.config.frontend

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        image = self.input_norm(features).unsqueeze(1)
        logits: torch.Tensor = self.head(self.pool(self.features(image)))
        return logits.squeeze(1)


def effnet_mel(config: EffnetMelConfig | None = None) -> EffnetMel:
    return EffnetMel(config)


if __name__ == "__main__":  # pragma: no cover
    print(describe(effnet_mel()))  # noqa: T201
