"""A neural source-filter vocoder (Wang, Takaki and Yamagishi, 2019): a sine excitation built from
F0, plus noise, shaped by dilated convolutions conditioned on the mel spectrogram.

The source is the harmonic-plus-noise one of hn-NSF: in voiced samples, sines at F0 and its
harmonics (each from a random initial phase, those above Nyquist dropped) with a little noise; in
unvoiced ones, noise alone; a learnt linear mix and a tanh merge them into one excitation. The
periodicity therefore comes from the F0 track, not from the network, which only has to learn the
spectral envelope: that is why a small filter learns fast. Noise and phases are drawn from the
generator passed in, so the output is a pure function of the seed.

Run ``python -m dfd.trainers.corpus.neural_vocoders.nsf`` to print its shapes and size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import structlog
import torch
from torch import nn

from dfd.trainers.corpus.neural_vocoders.frontend import HOP, MEL_BANDS, SAMPLE_RATE

LEAKY_SLOPE = 0.1
SINE_AMPLITUDE = 0.1  # hn-NSF's values
VOICED_NOISE_STD = 0.003
UNVOICED_NOISE_STD = SINE_AMPLITUDE / 3


@dataclass(frozen=True)
class NSFConfig:
    """Harmonics of the source, and width, layers per block and block count of the filter."""

    harmonics: int = 8
    channels: int = 32
    condition_channels: int = 64
    layers_per_block: int = 6
    blocks: int = 2
    kernel: int = 3

    def __post_init__(self) -> None:
        sizes = (self.harmonics, self.channels, self.condition_channels)
        if min(*sizes, self.layers_per_block, self.blocks) < 1:
            raise ValueError(f"every size must be positive: {self}")
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd and positive, got {self.kernel}")


class HarmonicSource(nn.Module):
    """Frame-rate F0 ``(batch, frames)`` to a ``(batch, 1, frames * HOP)`` excitation."""

    harmonic_numbers: torch.Tensor

    def __init__(self, harmonics: int) -> None:
        super().__init__()
        self.register_buffer(
            "harmonic_numbers",
            torch.arange(1, harmonics + 1, dtype=torch.float32),
            persistent=False,
        )
        self.merge = nn.Linear(harmonics, 1)

    def forward(self, f0: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        batch, frames = f0.shape
        samples = frames * HOP
        # F0 interpolated linearly between frame centres; voicing held over each frame's block
        contour = nn.functional.interpolate(f0.unsqueeze(1), size=samples, mode="linear")
        voiced = (f0 > 0).repeat_interleave(HOP, dim=1).unsqueeze(1).to(f0.dtype)
        frequencies = contour.transpose(1, 2) * self.harmonic_numbers  # (batch, samples, harm)
        initial = (
            2 * math.pi * torch.rand(batch, 1, self.harmonic_numbers.shape[0], generator=generator)
        )
        # wrap the phase increments before summing, so float32 keeps its precision over minutes
        phase = torch.cumsum(torch.remainder(frequencies / SAMPLE_RATE, 1.0), dim=1)
        sines = SINE_AMPLITUDE * torch.sin(2 * math.pi * phase + initial)
        sines = sines * (frequencies < SAMPLE_RATE / 2).to(sines.dtype)
        excitation = self.merge(sines).transpose(1, 2) * voiced
        noise = torch.randn(batch, 1, samples, generator=generator)
        noise_std = voiced * VOICED_NOISE_STD + (1 - voiced) * UNVOICED_NOISE_STD
        return torch.tanh(excitation + noise * noise_std)


class NSF(nn.Module):
    """``(batch, MEL_BANDS, frames)`` log mel and ``(batch, frames)`` F0 in Hz (0 unvoiced) to a
    ``(batch, frames * HOP)`` waveform."""

    def __init__(self, config: NSFConfig) -> None:
        super().__init__()
        self.config = config
        layers = config.blocks * config.layers_per_block
        self.source = HarmonicSource(config.harmonics)
        self.condition = nn.Sequential(
            nn.Conv1d(MEL_BANDS, config.condition_channels, 3, padding=1),
            nn.LeakyReLU(LEAKY_SLOPE),
            nn.Conv1d(config.condition_channels, layers * config.channels, 1),
        )
        self.inputs = nn.ModuleList(nn.Conv1d(1, config.channels, 1) for _ in range(config.blocks))
        self.dilated = nn.ModuleList()
        self.mixes = nn.ModuleList()
        for _ in range(config.blocks):
            for layer in range(config.layers_per_block):
                dilation = 2**layer
                padding = dilation * (config.kernel - 1) // 2
                self.dilated.append(
                    nn.Conv1d(
                        config.channels,
                        config.channels,
                        config.kernel,
                        dilation=dilation,
                        padding=padding,
                    )
                )
                self.mixes.append(nn.Conv1d(config.channels, config.channels, 1))
        self.output = nn.Conv1d(config.channels, 1, 1)

    def forward(
        self,
        log_mel: torch.Tensor,
        f0: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        if f0 is None:
            raise ValueError("the NSF vocoder needs an F0 track")
        samples = log_mel.shape[-1] * HOP
        excitation = self.source(f0, generator)
        # each layer's condition is upsampled only when used: all at once would take
        # layers * channels floats per sample (1.5 GB for a minute of audio)
        per_layer = self.condition(log_mel).chunk(len(self.dilated), dim=1)
        x = torch.zeros(())
        layer = 0
        for block_input in self.inputs:
            x = x + block_input(excitation)
            for _ in range(self.config.layers_per_block):
                y = self.dilated[layer](
                    nn.functional.leaky_relu(x, LEAKY_SLOPE)
                ) + nn.functional.interpolate(per_layer[layer], size=samples, mode="linear")
                x = x + self.mixes[layer](nn.functional.leaky_relu(y, LEAKY_SLOPE))
                layer += 1
        waveform: torch.Tensor = self.output(nn.functional.leaky_relu(x, LEAKY_SLOPE))
        return waveform.squeeze(1)


if __name__ == "__main__":
    model = NSF(NSFConfig())
    out = model(torch.zeros(1, MEL_BANDS, 32), torch.full((1, 32), 120.0))
    parameters = sum(p.numel() for p in model.parameters())
    structlog.get_logger("dfd.vocoders").info(
        "nsf", mel=(1, MEL_BANDS, 32), waveform=tuple(out.shape), parameters=parameters
    )
