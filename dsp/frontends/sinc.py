"""SincConv: a bank of windowed-sinc band-pass filters applied to the raw waveform.

Each filter is parameterised by its low cut-off and its band width (Ravanelli and Bengio,
"Speaker Recognition from Raw Waveform with SincNet", 2018), initialised on the mel scale:

    h[n] = w[n] * (2 f_high / sr * sinc(2 f_high n / sr) - 2 f_low / sr * sinc(2 f_low n / sr))

with ``w`` a symmetric Hamming window and ``n`` running from -(K-1)/2 to (K-1)/2. With
``learnable=False`` the filters are computed once and kept in a buffer (AASIST's fixed mel-spaced
front end, whose 70 filters span 0 Hz to the Nyquist frequency); with ``learnable=True`` the
cut-offs are parameters and the filters are rebuilt from them on every forward pass, as SincNet
does.

``normalisation="passband"`` keeps the ideal band-pass scaling above (unit gain in the pass band,
AASIST's choice); ``"peak"`` divides each filter by its centre tap, ``2 (f_high - f_low) / sr``
(SincNet's choice).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import nn

from dfd.dsp.frontends.base import Frontend
from dfd.dsp.frontends.kinds import SincConvSpec


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_spaced_band_edges(num_filters: int, f_min: float, f_max: float) -> np.ndarray:
    """``num_filters + 1`` edge frequencies in Hz, evenly spaced on the (HTK) mel scale."""
    return mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), num_filters + 1))


def sinc_filters(
    low_hz: torch.Tensor,
    high_hz: torch.Tensor,
    taps: torch.Tensor,
    window: torch.Tensor,
    sample_rate: int,
    normalisation: str,
) -> torch.Tensor:
    """Windowed-sinc band-pass impulse responses, shape ``(filters, kernel_size)``."""
    low = low_hz.unsqueeze(1) / sample_rate
    high = high_hz.unsqueeze(1) / sample_rate
    ideal = 2 * high * torch.sinc(2 * high * taps) - 2 * low * torch.sinc(2 * low * taps)
    filters = ideal * window
    if normalisation == "peak":
        filters = filters / (2 * (high - low))
    return filters


class SincConv(Frontend):
    """``(batch, samples)`` -> ``(batch, out_channels, frames)``."""

    spec: SincConvSpec
    taps: torch.Tensor
    window: torch.Tensor
    fixed_low_hz: torch.Tensor
    fixed_high_hz: torch.Tensor
    fixed_filters: torch.Tensor

    def __init__(self, spec: SincConvSpec) -> None:
        super().__init__(spec)
        half = (spec.kernel_size - 1) / 2
        self.register_buffer(
            "taps", torch.arange(-half, half + 1, dtype=torch.float64).to(torch.float32)
        )
        self.register_buffer("window", torch.hamming_window(spec.kernel_size, periodic=False))
        edges = mel_spaced_band_edges(spec.out_channels, spec.f_min, spec.upper_hz)
        if spec.learnable:
            low_offset = edges[:-1] - spec.min_low_hz
            band_offset = np.diff(edges) - spec.min_band_hz
            self.low_hz_ = nn.Parameter(torch.tensor(low_offset, dtype=torch.float32))
            self.band_hz_ = nn.Parameter(torch.tensor(band_offset, dtype=torch.float32))
        else:
            # Computed once in float64 so the fixed bank matches a float64 reference closely.
            filters = sinc_filters(
                torch.from_numpy(edges[:-1]),
                torch.from_numpy(edges[1:]),
                torch.arange(-half, half + 1, dtype=torch.float64),
                torch.hamming_window(spec.kernel_size, periodic=False, dtype=torch.float64),
                spec.sample_rate,
                spec.normalisation,
            )
            self.register_buffer("fixed_low_hz", torch.tensor(edges[:-1], dtype=torch.float32))
            self.register_buffer("fixed_high_hz", torch.tensor(edges[1:], dtype=torch.float32))
            self.register_buffer("fixed_filters", filters.to(torch.float32))

    def band_edges_hz(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Current (low, high) cut-offs of every filter in Hz."""
        if not self.spec.learnable:
            return self.fixed_low_hz, self.fixed_high_hz
        spec = self.spec
        low = spec.min_low_hz + self.low_hz_.abs()
        if spec.f_max is not None:  # a band-limited bank (e.g. 0-4 kHz for phone audio) stays so
            low = torch.clamp(low, max=spec.f_max - spec.min_band_hz)
        high = torch.clamp(
            low + spec.min_band_hz + self.band_hz_.abs(), spec.min_low_hz, spec.upper_hz
        )
        return low, high

    def filters(self) -> torch.Tensor:
        if not self.spec.learnable:
            return self.fixed_filters
        low, high = self.band_edges_hz()
        return sinc_filters(
            low, high, self.taps, self.window, self.spec.sample_rate, self.spec.normalisation
        )

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        if waveforms.dim() != 2:
            raise ValueError(f"expected (batch, samples), got {tuple(waveforms.shape)}")
        kernels = self.filters().unsqueeze(1)
        return nnf.conv1d(
            waveforms.unsqueeze(1), kernels, stride=self.spec.stride, padding=self.spec.padding
        )


if __name__ == "__main__":  # pragma: no cover
    module = SincConvSpec().build()
    out = module(torch.randn(2, 32_000))
    parameters = sum(p.numel() for p in module.parameters())
    print(f"sinc: {tuple(out.shape)}, {parameters} parameters")  # noqa: T201
