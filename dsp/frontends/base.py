"""The interface every front end implements."""

from __future__ import annotations

import abc

import torch
from torch import nn

from dfd.dsp.frontends.spec import FrontendSpec


class Frontend(nn.Module, abc.ABC):
    """Maps a batch of waveforms ``(batch, samples)`` to a batch of features.

    Every item of the batch is processed independently: a window's features never depend on the
    other windows it is batched with.
    """

    def __init__(self, spec: FrontendSpec) -> None:
        super().__init__()
        self.spec = spec

    @abc.abstractmethod
    def forward(self, waveforms: torch.Tensor) -> torch.Tensor: ...

    def output_shape(self, num_samples: int) -> tuple[int, ...]:
        """Shape of one item's features for a window of ``num_samples`` samples (the spec's)."""
        return self.spec.output_shape(num_samples)
