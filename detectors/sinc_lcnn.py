"""sinc-lcnn: a learnable SincConv filter bank followed by a Light CNN.

The raw waveform ``(batch, samples)`` goes through a bank of learnable band-pass filters
(SincNet's parameterisation: each filter's low cut-off and band width are model parameters, so
the SincConv is part of this model and trained with it, not computed by the DSP batcher; the
model's declared front end is the raw waveform, ``WaveformSpec``). Each filter's output is
rectified, max-pooled over ``pool`` outputs and log-compressed, which gives a learned
time-frequency image, ``(filters, frames)``: with the defaults, 70 filters of 251 taps at stride
8 and pooling by 20, one frame every 160 samples (10 ms), 198 frames for a 2 s window. The stride
keeps the filter bank at about a quarter of the cost of a stride-1 bank; sub-sampling the band-pass
outputs aliases their carriers but not the envelope that the max-pool keeps.

The image is normalised per filter (batch norm), then a Light CNN (LCNN-9 of Lavrentyeva et al.,
"STC antispoofing systems for the ASVspoof2019 challenge", 2019) reads it: convolutions whose
channels are halved by Max-Feature-Map activations (MFM: split the channels in two halves and
keep the elementwise maximum), batch norm and max pooling, then global average pooling, a dense
MFM layer with dropout and one output logit.

Output: ``(batch,)`` spoof logit, higher = more likely spoof (``output_convention
"spoof_logit"``); train with ``BCEWithLogitsLoss`` (or ``FocalLoss``) on labels 1 = spoof.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
import torch.nn.functional as nnf
from torch import nn

from dfd.core.typed_config import ConfigError
from dfd.detectors.common import Detector, describe
from dfd.detectors.contract import OutputConvention
from dfd.dsp.frontends import FrontendSpec, SincConvSpec, WaveformSpec

DEFAULT_SINC = SincConvSpec(
    out_channels=70,
    kernel_size=251,
    stride=8,
    f_min=30.0,
    min_low_hz=50.0,
    min_band_hz=50.0,
    learnable=True,
    normalisation="peak",
)


@dataclasses.dataclass(frozen=True)
class SincLcnnConfig:
    sinc: SincConvSpec = DEFAULT_SINC
    pool: int = 20  # filter outputs max-pooled into one frame; stride * pool = frame hop
    log_offset: float = 1e-6
    hidden: int = 160  # width of the dense layer before its MFM (which halves it)
    dropout: float = 0.5
    # Channels of every Light CNN layer times this (rounded): 1.0 is LCNN-9 as published; the
    # cost of the body grows about with its square.
    width: float = 1.0

    def __post_init__(self) -> None:
        if self.pool < 1:
            raise ConfigError(f"sinc-lcnn: pool must be at least 1, got {self.pool}")
        if self.log_offset <= 0:
            raise ConfigError("sinc-lcnn: log_offset must be positive")
        if self.hidden < 2 or self.hidden % 2:
            raise ConfigError(f"sinc-lcnn: hidden must be even and >= 2, got {self.hidden}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"sinc-lcnn: dropout must be in [0, 1), got {self.dropout}")
        if not 0.25 <= self.width <= 2.0:
            raise ConfigError(f"sinc-lcnn: width must lie in [0.25, 2], got {self.width}")


class MaxFeatureMap(nn.Module):
    """Splits dimension ``dim`` (of ``size`` elements) into two halves and keeps their
    elementwise maximum.

    The size is fixed when the layer is built, so an exported graph slices at constant
    offsets: reading it from the input's shape puts Shape, Gather and Div nodes into the graph,
    and in an 8-bit graph the Shape forces the whole convolution output to be dequantised to
    float just to read its size (about 8 % of the default model's time)."""

    def __init__(self, size: int, dim: int = 1) -> None:
        super().__init__()
        if size < 2 or size % 2:
            raise ValueError(f"MFM needs an even size of at least 2, got {size}")
        self.size, self.dim, self.split_at = size, dim, size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Shape checks are Python-side validation; while tracing for ONNX they would be recorded
        # as (constant) comparisons with a warning, so they are skipped there.
        if not torch.onnx.is_in_onnx_export() and x.shape[self.dim] != self.size:
            raise ValueError(
                f"MFM built for {self.size} along dim {self.dim}, got {x.shape[self.dim]}"
            )
        half = self.split_at
        return torch.maximum(x.narrow(self.dim, 0, half), x.narrow(self.dim, half, half))


class MfmConv2d(nn.Sequential):
    """A convolution producing ``2 * out_channels`` maps, halved by MFM to ``out_channels``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, 2 * out_channels, kernel_size, padding=kernel_size // 2),
            MaxFeatureMap(2 * out_channels, dim=1),
        )


class LightCnn(nn.Module):
    """LCNN-9 body: ``(batch, 1, height, width)`` -> ``(batch, out_channels)`` after global
    pooling; ``width`` scales every layer's channels (1.0: 32 out, as published)."""

    CHANNELS = (32, 32, 48, 48, 64, 64, 32, 32, 32)

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        c = [max(2, round(channels * width)) for channels in self.CHANNELS]
        self.out_channels = c[8]
        self.body = nn.Sequential(
            MfmConv2d(1, c[0], 5),
            nn.MaxPool2d(2),
            MfmConv2d(c[0], c[1], 1),
            nn.BatchNorm2d(c[1]),
            MfmConv2d(c[1], c[2], 3),
            nn.MaxPool2d(2),
            nn.BatchNorm2d(c[2]),
            MfmConv2d(c[2], c[3], 1),
            nn.BatchNorm2d(c[3]),
            MfmConv2d(c[3], c[4], 3),
            nn.MaxPool2d(2),
            MfmConv2d(c[4], c[5], 1),
            nn.BatchNorm2d(c[5]),
            MfmConv2d(c[5], c[6], 3),
            nn.BatchNorm2d(c[6]),
            MfmConv2d(c[6], c[7], 1),
            nn.BatchNorm2d(c[7]),
            MfmConv2d(c[7], c[8], 3),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = self.body(x)
        return result


class SincLcnn(Detector):
    """``(batch, samples)`` raw waveform -> ``(batch,)`` spoof logit."""

    family: ClassVar[str] = "sinc-lcnn"
    output_convention: ClassVar[OutputConvention] = "spoof_logit"

    def __init__(self, config: SincLcnnConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or SincLcnnConfig()
        self.sinc = config.sinc.build()
        self.input_norm = nn.BatchNorm1d(config.sinc.out_channels)
        self.lcnn = LightCnn(config.width)
        self.head = nn.Sequential(
            nn.Dropout(config.dropout),
            nn.Linear(self.lcnn.out_channels, config.hidden),
            MaxFeatureMap(config.hidden, dim=1),
            nn.BatchNorm1d(config.hidden // 2),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden // 2, 1),
        )

    @property
    def frontend_spec(self) -> FrontendSpec:
        return WaveformSpec()

    def filterbank_image(self, waveforms: torch.Tensor) -> torch.Tensor:
        """``(batch, samples)`` -> ``(batch, filters, frames)`` log of pooled |band-pass|."""
        bands = self.sinc(waveforms).abs()
        pooled = nnf.max_pool1d(bands, self.config.pool)
        return torch.log(pooled + self.config.log_offset)

    def frames(self, num_samples: int) -> int:
        return self.sinc.output_shape(num_samples)[-1] // self.config.pool

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        image = self.input_norm(self.filterbank_image(waveforms))
        logits: torch.Tensor = self.head(self.lcnn(image.unsqueeze(1)))
        return logits.squeeze(1)


def sinc_lcnn(config: SincLcnnConfig | None = None) -> SincLcnn:
    return SincLcnn(config)


if __name__ == "__main__":  # pragma: no cover
    print(describe(sinc_lcnn()))  # noqa: T201
