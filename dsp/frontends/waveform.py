"""The identity front end, for detectors whose front end is part of the model (a learnable
SincConv whose cut-offs are trained with the rest): the batcher hands them the windows as they are.
"""

from __future__ import annotations

import torch

from dfd.dsp.frontends.base import Frontend


class Waveform(Frontend):
    """``(batch, samples)`` -> ``(batch, samples)``, unchanged."""

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        if waveforms.dim() != 2:
            raise ValueError(f"expected (batch, samples), got {tuple(waveforms.shape)}")
        return waveforms
