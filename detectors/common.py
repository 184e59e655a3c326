"""What every detector family shares: the model base class and a tiny self-description helper.

A detector's ``forward`` takes the output batch of the front end it declares (``frontend_spec``);
a model whose front end is part of the model itself (a learnable SincConv) declares ``None`` and
takes the raw waveform batch ``(batch, samples)``.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import torch
from torch import nn

from dfd.detectors.contract import OutputConvention
from dfd.dsp.frontends import (
    ConstantQSpec,
    FrontendSpec,
    LfccSpec,
    LogMelSpec,
    LogSpectrogramSpec,
)

WINDOW_SAMPLES = 32_000  # 2 s at 16 kHz: the daemon's scoring window
SAMPLE_RATE = 16_000

# The log-mel front end of effnet-mel and siamese-mel: one spec, so the DSP batcher computes it
# once for both. 32 ms frames every 15.6 ms, (128, 129) for a window; the 1024-point FFT
# interpolates the spectrum so that no narrow low mel triangle falls between two FFT bins (with a
# 512-point FFT some of the 128 filters are empty).
LOGMEL_128 = LogMelSpec(n_fft=1024, win_length=512, hop_length=250, n_mels=128)

# What the image families (effnet-mel, siamese-mel) may read instead, to compare front ends on one
# model: named by kind in a recipe, e.g. [model] frontend = { kind = "lfcc" }. A table without a
# kind is a log-mel spec, as before.
SpectrogramSpec = LogMelSpec | LfccSpec | LogSpectrogramSpec | ConstantQSpec


def frontend_rows(spec: FrontendSpec) -> int:
    """Rows (bands, bins or coefficients) a front end gives per frame: its features' height."""
    return spec.output_shape(WINDOW_SAMPLES)[0]


class Detector(nn.Module, abc.ABC):
    """Base of the detector families in this package."""

    family: ClassVar[str]
    output_convention: ClassVar[OutputConvention]
    output_name: ClassVar[str] = "logits"  # the ONNX output name

    @property
    @abc.abstractmethod
    def frontend_spec(self) -> FrontendSpec:
        """The front end whose output ``forward`` takes (``WaveformSpec``: the raw waveform)."""

    def build_frontend(self) -> nn.Module:
        """The declared front end as a module."""
        return self.frontend_spec.build()

    def parameter_count(self) -> int:
        return sum(parameter.numel() for parameter in self.parameters())


def describe(model: Detector, batch_size: int = 2, num_samples: int = WINDOW_SAMPLES) -> str:
    """One line: the output shape of a random waveform batch through front end and model."""
    frontend = model.build_frontend().eval()
    model.eval()
    with torch.inference_mode():
        features = frontend(torch.randn(batch_size, num_samples))
        output = model(features)
    return (
        f"{model.family}: features {tuple(features.shape)} -> {model.output_name} "
        f"{tuple(output.shape)}, {model.parameter_count():,} parameters"
    )
