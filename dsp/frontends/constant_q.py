"""The constant-Q transform, computed octave by octave on a signal halved in rate each octave down.

Bin ``k`` of a frame is the inner product of the signal around the frame's centre with a temporal
kernel: a periodic Hann window of ``N = ceil(Q * rate / f_k)`` samples at its octave's rate times a
complex exponential at ``f_k``, divided by ``N`` (Brown 1991). Computed directly at 16 kHz the
lowest kernels are thousands of samples long. An octave lower, every frequency is halved and so is
the sample rate needed, so the top octave's kernels serve every octave: octave ``o`` (0 = the top)
is the top octave's kernels applied to the signal low-passed and decimated by ``2 ** o`` (each step
torchaudio's windowed-sinc resampler, 2:1). A frame centred on sample ``t * hop`` of the input is
centred on sample ``round(t * hop / 2 ** o)`` of the decimated signal: at most half a decimated
sample off, well inside the kernel of a bin that low. Cost: one short matrix product per octave (the
kernels are at most ``ceil(Q * 16000 / f)`` samples for the top octave's lowest ``f``).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torchaudio.functional as taf

from dfd.dsp.frontends.base import Frontend
from dfd.dsp.frontends.kinds import ConstantQSpec

RESAMPLER_TAPS = 16  # lowpass_filter_width of each 2:1 step: a sharper band edge than the default


def octave_kernels(spec: ConstantQSpec) -> np.ndarray:
    """``(length, 2 * bins_per_octave)`` float64: the real and imaginary parts of the top octave's
    kernels at the full sample rate, each centred in ``length`` (odd) samples."""
    top = spec.centre_hz[-spec.bins_per_octave :]
    lengths = [math.ceil(spec.quality * spec.sample_rate / hz) for hz in top]
    span = max(lengths) | 1  # odd, so that a frame has a centre sample
    kernels = np.zeros((span, len(top)), dtype=np.complex128)
    for column, (hz, length) in enumerate(zip(top, lengths, strict=True)):
        n = np.arange(length)
        window = 0.5 - 0.5 * np.cos(2 * np.pi * n / length)
        start = (span - length) // 2
        phase = 2 * np.pi * hz * (n - length // 2) / spec.sample_rate
        kernels[start : start + length, column] = window * np.exp(1j * phase) / length
    return np.concatenate([kernels.real, kernels.imag], axis=1)


class ConstantQ(Frontend):
    """``(batch, samples)`` -> ``(batch, n_bins, frames)``: natural log of constant-Q power."""

    spec: ConstantQSpec
    kernels: torch.Tensor

    def __init__(self, spec: ConstantQSpec) -> None:
        super().__init__(spec)
        kernels = torch.from_numpy(octave_kernels(spec)).float()
        self.register_buffer("kernels", kernels, persistent=False)  # fixed: not in state dicts

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        spec = self.spec
        span, per_octave = self.kernels.shape[0], self.kernels.shape[1] // 2  # may be < an octave
        frames = waveforms.shape[-1] // spec.hop_length + 1
        signal, octaves = waveforms, []
        for octave in range(spec.octaves):
            if octave:
                signal = taf.resample(signal, 2, 1, lowpass_filter_width=RESAMPLER_TAPS)
            padded = torch.nn.functional.pad(
                signal.unsqueeze(1), (span // 2, span // 2), mode="reflect"
            ).squeeze(1)
            centres = torch.round(
                torch.arange(frames, device=signal.device) * spec.hop_length / 2**octave
            ).long()
            starts = centres.clamp(max=signal.shape[-1] - 1)
            index = starts[:, None] + torch.arange(span, device=signal.device)[None, :]
            windows = padded[:, index]  # (batch, frames, span)
            parts = windows @ self.kernels  # (batch, frames, 2 * per_octave)
            power = parts[..., :per_octave].square() + parts[..., per_octave:].square()
            octaves.append(power)
        # octaves run top down; bins run bottom up, and the lowest octave may be partial
        power = torch.cat(octaves[::-1], dim=-1)[..., -spec.n_bins :]
        return torch.log(power.transpose(1, 2) + spec.log_offset)
