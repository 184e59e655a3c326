"""A Vocos-style vocoder: ConvNeXt blocks at the mel frame rate predict each STFT frame's log
magnitude and phase, and an inverse STFT makes the waveform (Siuzdenko, 2023).

Nothing runs at the sample rate except the inverse STFT, so it is the cheapest of the three to
train and to run: every layer sees 62.5 frames a second instead of 16,000 samples.

Run ``python -m dfd.trainers.corpus.neural_vocoders.vocos`` to print its shapes and size.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
import torch
from torch import nn

from dfd.trainers.corpus.neural_vocoders.frontend import HOP, MEL_BANDS, N_FFT

MAX_LOG_MAGNITUDE = 6.0  # e^6 = 400: above any real STFT magnitude of audio in [-1, 1] (<= 512)


@dataclass(frozen=True)
class VocosConfig:
    """Width and depth of the ConvNeXt backbone."""

    channels: int = 128
    hidden: int = 256
    blocks: int = 6
    kernel: int = 7

    def __post_init__(self) -> None:
        if min(self.channels, self.hidden, self.blocks) < 1:
            raise ValueError(f"channels, hidden and blocks must be positive: {self}")
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd and positive, got {self.kernel}")


class ConvNeXtBlock(nn.Module):
    """Depthwise conv, LayerNorm, pointwise MLP with GELU, layer scale, residual."""

    def __init__(self, channels: int, hidden: int, kernel: int, layer_scale: float) -> None:
        super().__init__()
        self.depthwise = nn.Conv1d(channels, channels, kernel, padding=kernel // 2, groups=channels)
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        self.expand = nn.Linear(channels, hidden)
        self.contract = nn.Linear(hidden, channels)
        self.scale = nn.Parameter(torch.full((channels,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.depthwise(x).transpose(1, 2)
        y = self.contract(nn.functional.gelu(self.expand(self.norm(y))))
        out: torch.Tensor = x + (self.scale * y).transpose(1, 2)
        return out


class Vocos(nn.Module):
    """``(batch, MEL_BANDS, frames)`` log mel to ``(batch, frames * HOP)`` waveform.

    The STFT frames it predicts are centred on samples ``t * HOP`` while mel frame ``t`` is centred
    half a hop later; the backbone learns that fixed shift, and ``torch.istft`` then yields exactly
    ``frames * HOP`` samples with no edge frames to trim.
    """

    window: torch.Tensor

    def __init__(self, config: VocosConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Conv1d(
            MEL_BANDS, config.channels, config.kernel, padding=config.kernel // 2
        )
        self.norm = nn.LayerNorm(config.channels, eps=1e-6)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(config.channels, config.hidden, config.kernel, 1.0 / config.blocks)
            for _ in range(config.blocks)
        )
        self.final_norm = nn.LayerNorm(config.channels, eps=1e-6)
        self.head = nn.Linear(config.channels, 2 * (N_FFT // 2 + 1))
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)

    def forward(
        self,
        log_mel: torch.Tensor,
        f0: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The waveform; ``f0`` and ``generator`` are unused (the model is deterministic)."""
        del f0, generator
        x = self.norm(self.embed(log_mel).transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        log_magnitude, phase = self.head(self.final_norm(x.transpose(1, 2))).chunk(2, dim=-1)
        magnitude = torch.exp(torch.clamp(log_magnitude, max=MAX_LOG_MAGNITUDE))
        # Vocos's phase trick: cos and sin of an unbounded angle give a unit phasor everywhere.
        spectrum = torch.polar(magnitude, phase).transpose(1, 2)
        frames = log_mel.shape[-1]
        waveform: torch.Tensor = torch.istft(
            spectrum, N_FFT, hop_length=HOP, window=self.window, center=True, length=frames * HOP
        )
        return waveform


if __name__ == "__main__":
    model = Vocos(VocosConfig())
    out = model(torch.zeros(1, MEL_BANDS, 32))
    parameters = sum(p.numel() for p in model.parameters())
    structlog.get_logger("dfd.vocoders").info(
        "vocos", mel=(1, MEL_BANDS, 32), waveform=tuple(out.shape), parameters=parameters
    )
