"""siamese-mel: a residual CNN embedding of a 128 x 128 log-mel patch, scored against prototypes.

Front end: ``LOGMEL_128``, ``LogMelSpec(n_fft=1024, win_length=512, hop_length=250, n_mels=128)``
(shared with effnet-mel), ``(batch, 128, 129)`` for a 2 s window. The model crops the frame axis
to its first ``frames`` (128) frames, dropping the last one (centred on the window's final
sample, half of it reflect padding); a shorter input is padded by repeating its last frame. To
compare front ends, ``[model] frontend`` may name another spectrogram by kind (``lfcc``,
``logspec``, ``cqt``: their 10 ms hops make 201 frames a window, so set ``frames = 200``). The
patch is normalised per mel bin (batch norm), then a stem convolution, three stages of residual
blocks (32, 64, 128 channels, each stage halving both axes), a squeeze-and-excitation block,
global average pooling and a linear layer (no bias) give a 256-d embedding (not normalised: the
contrastive loss's margin is a Euclidean distance).

Training is siamese: ``embed`` both windows of a pair and apply
``dfd.trainers.losses.ContrastiveLoss`` (label 1 = same class). After training, the mean embedding
of the bona fide and of the spoof training windows are stored with ``set_prototypes`` (registered
buffers, so they travel in the state dict and the ONNX file); until then they are NaN and every
score is NaN.

Output of ``forward``: ``(batch,)`` score = distance to the bona fide prototype minus distance to
the spoof prototype, higher = more likely spoof (``output_convention "spoof_score"``; a score, not
a logit: calibration maps it to P(spoof)).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
import torch.nn.functional as nnf
from torch import nn

from dfd.core.typed_config import ConfigError
from dfd.detectors.common import LOGMEL_128, Detector, SpectrogramSpec, describe, frontend_rows
from dfd.detectors.contract import OutputConvention
from dfd.dsp.frontends import FrontendSpec


@dataclasses.dataclass(frozen=True)
class SiameseMelConfig:
    frontend: SpectrogramSpec = LOGMEL_128  # or LFCCs, a log spectrogram, constant-Q, by kind
    frames: int = 128  # of the front end's hop: 2 s of LOGMEL_128; 200 for 10 ms hops
    stem_channels: int = 32
    stage_channels: tuple[int, int, int] = (32, 64, 128)
    blocks_per_stage: int = 1
    se_reduction: int = 8
    embedding_dim: int = 256

    def __post_init__(self) -> None:
        if self.frames < 8:
            raise ConfigError(f"siamese-mel: frames must be at least 8, got {self.frames}")
        sizes = (self.stem_channels, *self.stage_channels, self.blocks_per_stage)
        if min(sizes) < 1 or self.embedding_dim < 1:
            raise ConfigError("siamese-mel: channel, block and embedding sizes must be positive")
        if not 1 <= self.se_reduction <= self.stage_channels[-1]:
            raise ConfigError("siamese-mel: se_reduction must be in [1, last stage channels]")


class SqueezeExcitation(nn.Module):
    """Hu et al. 2018: rescale each channel by a gate computed from all channels' means.

    ``gate = sigmoid(W2 relu(W1 mean_hw(x) + b1) + b2)``, output ``x * gate`` per channel.
    """

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.squeeze = nn.Linear(channels, hidden)
        self.excite = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        means = x.mean(dim=(2, 3))
        gate = torch.sigmoid(self.excite(torch.relu(self.squeeze(means))))
        return x * gate[:, :, None, None]


class ResidualBlock(nn.Module):
    """Two 3 x 3 convolutions with batch norm; a 1 x 1 projection when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + self.shortcut(x))


class SiameseMel(Detector):
    """``(batch, rows, frames)`` log-mel (or another spectrogram) -> ``(batch,)`` prototype score;
    ``embed`` -> 256-d."""

    family: ClassVar[str] = "siamese-mel"
    output_convention: ClassVar[OutputConvention] = "spoof_score"
    output_name: ClassVar[str] = "score"

    bonafide_prototype: torch.Tensor
    spoof_prototype: torch.Tensor

    def __init__(self, config: SiameseMelConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or SiameseMelConfig()
        self.input_norm = nn.BatchNorm1d(frontend_rows(config.frontend))
        self.stem = nn.Sequential(
            nn.Conv2d(1, config.stem_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(config.stem_channels),
            nn.ReLU(),
        )
        blocks: list[nn.Module] = []
        channels = config.stem_channels
        for out_channels in config.stage_channels:
            for index in range(config.blocks_per_stage):
                blocks.append(ResidualBlock(channels, out_channels, stride=2 if index == 0 else 1))
                channels = out_channels
        self.stages = nn.Sequential(*blocks)
        self.se = SqueezeExcitation(channels, config.se_reduction)
        # No bias: every use of the embedding (pair distances, distances to prototypes) is
        # invariant to a shift, so a bias would get no gradient.
        self.embedding = nn.Linear(channels, config.embedding_dim, bias=False)
        nan = torch.full((config.embedding_dim,), float("nan"))
        self.register_buffer("bonafide_prototype", nan.clone())
        self.register_buffer("spoof_prototype", nan.clone())

    @property
    def frontend_spec(self) -> FrontendSpec:
        return self.config.frontend

    def patch(self, features: torch.Tensor) -> torch.Tensor:
        """Crop (or pad by repeating the last frame) the frame axis to ``config.frames``.

        An exported ONNX graph keeps the branch its example took (crop, for 2 s windows)."""
        frames = self.config.frames
        if not torch.onnx.is_in_onnx_export() and features.shape[-1] < frames:
            return nnf.pad(features, (0, frames - features.shape[-1]), mode="replicate")
        return features[..., :frames]

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """``(batch, rows, frames)`` -> ``(batch, embedding_dim)``."""
        image = self.input_norm(self.patch(features)).unsqueeze(1)
        pooled = self.se(self.stages(self.stem(image))).mean(dim=(2, 3))
        embedding: torch.Tensor = self.embedding(pooled)
        return embedding

    def set_prototypes(self, bonafide: torch.Tensor, spoof: torch.Tensor) -> None:
        """Store the class prototypes (typically mean training embeddings), each ``(dim,)``."""
        expected = (self.config.embedding_dim,)
        for name, value in (("bonafide", bonafide), ("spoof", spoof)):
            if tuple(value.shape) != expected:
                raise ValueError(f"{name} prototype must have shape {expected}, got {value.shape}")
            if not torch.isfinite(value).all():
                raise ValueError(f"{name} prototype has non-finite values")
        with torch.no_grad():
            self.bonafide_prototype.copy_(bonafide)
            self.spoof_prototype.copy_(spoof)

    def has_prototypes(self) -> bool:
        prototypes = torch.stack([self.bonafide_prototype, self.spoof_prototype])
        return bool(torch.isfinite(prototypes).all())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        embedding = self.embed(features)
        to_bonafide = torch.linalg.vector_norm(embedding - self.bonafide_prototype, dim=1)
        to_spoof = torch.linalg.vector_norm(embedding - self.spoof_prototype, dim=1)
        score: torch.Tensor = to_bonafide - to_spoof
        return score


def siamese_mel(config: SiameseMelConfig | None = None) -> SiameseMel:
    return SiameseMel(config)


if __name__ == "__main__":  # pragma: no cover
    demo = siamese_mel()
    dim = demo.config.embedding_dim
    demo.set_prototypes(torch.zeros(dim), torch.ones(dim))  # placeholders: untrained model
    print(describe(demo))  # noqa: T201
