"""A small HiFi-GAN generator: transposed convolutions upsample the mel frames to the sample rate,
each followed by a multi-receptive-field fusion of dilated residual blocks (Kong et al., 2020).

Sized for CPU training in minutes (128 channels at the frame rate, halved at each of three
upsamplings by 8, 8 and 4, two kernel sizes instead of three), about 0.6 M parameters.

Run ``python -m dfd.trainers.corpus.neural_vocoders.hifigan`` to print its shapes and size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import structlog
import torch
from torch import nn

from dfd.trainers.corpus.neural_vocoders.frontend import HOP, MEL_BANDS

LEAKY_SLOPE = 0.1


@dataclass(frozen=True)
class HiFiGANConfig:
    """Upsampling factors (their product must be the hop), the first stage's width and the kernel
    sizes and dilations of the multi-receptive-field blocks."""

    channels: int = 128
    upsample_rates: tuple[int, ...] = (8, 8, 4)
    resblock_kernels: tuple[int, ...] = (3, 7)
    resblock_dilations: tuple[int, ...] = (1, 3, 5)

    def __post_init__(self) -> None:
        object.__setattr__(self, "upsample_rates", tuple(self.upsample_rates))
        object.__setattr__(self, "resblock_kernels", tuple(self.resblock_kernels))
        object.__setattr__(self, "resblock_dilations", tuple(self.resblock_dilations))
        if math.prod(self.upsample_rates) != HOP:
            raise ValueError(f"upsample_rates {self.upsample_rates} must multiply to {HOP}")
        if self.channels >> len(self.upsample_rates) < 1:
            raise ValueError(f"{self.channels} channels cannot be halved {self.upsample_rates}")
        if not self.resblock_kernels or any(k % 2 == 0 for k in self.resblock_kernels):
            raise ValueError(f"resblock kernels must be odd, got {self.resblock_kernels}")


class ResBlock(nn.Module):
    """HiFi-GAN's ResBlock1: per dilation, a dilated and an undilated conv with a residual."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.dilated = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, dilation=d, padding=d * (kernel - 1) // 2)
            for d in dilations
        )
        self.plain = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, padding=(kernel - 1) // 2) for _ in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for dilated, plain in zip(self.dilated, self.plain, strict=True):
            y = dilated(nn.functional.leaky_relu(x, LEAKY_SLOPE))
            x = x + plain(nn.functional.leaky_relu(y, LEAKY_SLOPE))
        return x


class HiFiGAN(nn.Module):
    """``(batch, MEL_BANDS, frames)`` log mel to ``(batch, frames * HOP)`` waveform in (-1, 1)."""

    def __init__(self, config: HiFiGANConfig) -> None:
        super().__init__()
        self.config = config
        self.pre = nn.Conv1d(MEL_BANDS, config.channels, 7, padding=3)
        self.upsamples = nn.ModuleList()
        self.fusions: list[nn.ModuleList] = nn.ModuleList()  # type: ignore[assignment]
        channels = config.channels
        for rate in config.upsample_rates:
            # kernel 2 * rate, padding rate / 2: output exactly `rate` times the input
            self.upsamples.append(
                nn.ConvTranspose1d(channels, channels // 2, 2 * rate, rate, padding=rate // 2)
            )
            channels //= 2
            self.fusions.append(
                nn.ModuleList(
                    ResBlock(channels, kernel, config.resblock_dilations)
                    for kernel in config.resblock_kernels
                )
            )
        self.post = nn.Conv1d(channels, 1, 7, padding=3)

    def forward(
        self,
        log_mel: torch.Tensor,
        f0: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The waveform; ``f0`` and ``generator`` are unused (the model is deterministic)."""
        del f0, generator
        x = self.pre(log_mel)
        for upsample, fusion in zip(self.upsamples, self.fusions, strict=True):
            x = upsample(nn.functional.leaky_relu(x, LEAKY_SLOPE))
            x = torch.stack([block(x) for block in fusion]).mean(dim=0)
        waveform = torch.tanh(self.post(nn.functional.leaky_relu(x)))
        return waveform.squeeze(1)


if __name__ == "__main__":
    model = HiFiGAN(HiFiGANConfig())
    out = model(torch.zeros(1, MEL_BANDS, 32))
    parameters = sum(p.numel() for p in model.parameters())
    structlog.get_logger("dfd.vocoders").info(
        "hifigan", mel=(1, MEL_BANDS, 32), waveform=tuple(out.shape), parameters=parameters
    )
