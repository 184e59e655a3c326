"""AASIST and AASIST-L: spectro-temporal graph attention on a fixed sinc front end.

Jung et al., "AASIST: Audio Anti-Spoofing using Integrated Spectro-Temporal Graph Attention
Networks", ICASSP 2022. This file follows the authors' code (clovaai/aasist, ``models/AASIST.py``)
operation for operation, with the same module and parameter names, so that the official
checkpoints load with ``strict=True`` (see ``dfd.detectors.aasist_import``) and give the official
scores.

The one structural change: the fixed sinc filter bank (the official ``CONV``, which holds no
weights) is not part of the module. ``AasistModel.forward`` takes its output, ``(batch, 70,
frames)``, which the DSP batcher computes once per distinct ``FrontendSpec``;
``AasistModel.frontend_spec`` is that spec, and ``forward_waveform`` runs both stages.

Pipeline, for ``samples`` input samples at 16 kHz:

    sinc bank (70 band-pass filters, 129 taps)      (B, 70, samples - 128)
    |x|, max-pool 3 x 3, BatchNorm2d, SELU          (B, 1, 23, frames // 3)
    6 residual blocks, each max-pooling time by 3   (B, C, 23, T)
    spectral graph: max |e| over time + pos_S       23 nodes -> GAT -> top-k pool
    temporal graph: max |e| over frequency          T nodes  -> GAT -> top-k pool
    two heterogeneous-graph branches (HS-GAL, each with its own master node), element-wise max
    readout [max |T|, mean T, max |S|, mean S, master] -> dropout -> Linear(5 * d, 2)

Output index 0 is spoof, index 1 bona fide; the official score is the bona fide logit.

Length: nothing is tied to 64,600 samples. The number of temporal nodes ``T`` follows the input
length (29 for 64,600 samples, 14 for 32,000), and so do the sizes the graph pools keep
(``max(int(nodes * ratio), 1)``), so a trained model sees a different graph at a different window
length. Inputs shorter than ``min_samples()`` (2,315 samples) leave no temporal node and are
refused.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, cast

import torch
import torch.nn.functional as nnf
from torch import nn

from dfd.core.typed_config import ConfigError
from dfd.detectors.common import SAMPLE_RATE, WINDOW_SAMPLES
from dfd.detectors.export import OPSET, export_onnx
from dfd.dsp.frontends import SincConv, SincConvSpec

SPOOF_INDEX = 0
BONAFIDE_INDEX = 1
SPECTRAL_POOL = 3  # the max-pool (3, 3) after the sinc bank
TIME_POOL_PER_BLOCK = 3  # each residual block's MaxPool2d((1, 3))
NUM_RESIDUAL_BLOCKS = 6

ResidualFilters = tuple[int, int]


def min_samples(first_conv: int = 128) -> int:
    """The shortest input that leaves one temporal node after the encoder."""
    kernel_size = first_conv + 1 if first_conv % 2 == 0 else first_conv
    return min_frames() + kernel_size - 1


def min_frames() -> int:
    """The fewest sinc frames that leave one temporal node after the encoder."""
    return int(SPECTRAL_POOL * TIME_POOL_PER_BLOCK**NUM_RESIDUAL_BLOCKS)


@dataclasses.dataclass(frozen=True)
class AasistConfig:
    """The official ``model_config`` of an AASIST ``.conf`` file, validated.

    ``filts`` is ``(sinc channels, block 1 (in, out), block 2, block 3, blocks 4 to 6)``;
    ``pool_ratios`` are the kept fractions of the spectral, temporal and (third value) the four
    heterogeneous-graph pools, the fourth being unused as in the official code;
    ``temperatures`` divide the attention logits of the spectral GAT, the temporal GAT and (third
    value) the four HS-GAL layers, the fourth again unused.
    """

    architecture: str = "AASIST"
    nb_samp: int = 64_600
    first_conv: int = 128
    filts: tuple[int, ResidualFilters, ResidualFilters, ResidualFilters, ResidualFilters] = (
        70,
        (1, 32),
        (32, 32),
        (32, 64),
        (64, 64),
    )
    gat_dims: tuple[int, int] = (64, 32)
    pool_ratios: tuple[float, float, float, float] = (0.5, 0.7, 0.5, 0.5)
    temperatures: tuple[float, float, float, float] = (2.0, 2.0, 100.0, 100.0)

    def __post_init__(self) -> None:
        if self.architecture != "AASIST":
            raise ConfigError(f"aasist: architecture must be 'AASIST', got {self.architecture!r}")
        if self.nb_samp < min_samples(self.first_conv):
            raise ConfigError(
                f"aasist: nb_samp={self.nb_samp} is shorter than the "
                f"{min_samples(self.first_conv)} samples the encoder needs"
            )
        channels, *blocks = self.filts
        if channels // SPECTRAL_POOL < 1:
            raise ConfigError(f"aasist: filts[0] (sinc channels) is too small: {channels}")
        if blocks[0][0] != 1:
            raise ConfigError(f"aasist: the first residual block takes 1 channel, got {blocks[0]}")
        for previous, block in itertools.pairwise(blocks):
            if block[0] != previous[1]:
                raise ConfigError(
                    f"aasist: residual blocks do not chain: {previous} is followed by {block}"
                )
        if blocks[-1][0] != blocks[-1][1]:
            raise ConfigError(
                f"aasist: filts[4] is used by three blocks in a row, so it needs equal input and "
                f"output channels, got {blocks[-1]}"
            )
        if any(size < 1 for block in blocks for size in block) or min(self.gat_dims) < 1:
            raise ConfigError("aasist: channel counts and gat_dims must be positive")
        if not all(0.0 < ratio <= 1.0 for ratio in self.pool_ratios):
            raise ConfigError(f"aasist: pool_ratios must lie in (0, 1], got {self.pool_ratios}")
        if not all(temperature > 0.0 for temperature in self.temperatures):
            raise ConfigError(f"aasist: temperatures must be positive, got {self.temperatures}")

    @property
    def sinc_channels(self) -> int:
        return self.filts[0]

    @property
    def frontend(self) -> SincConvSpec:
        """The fixed sinc bank of the official ``CONV``: mel-spaced over 0 Hz to Nyquist."""
        return SincConvSpec(
            sample_rate=SAMPLE_RATE,
            out_channels=self.sinc_channels,
            kernel_size=self.sinc_kernel_size,
            normalisation="passband",
            learnable=False,
        )

    @property
    def sinc_kernel_size(self) -> int:
        """``first_conv`` made odd, as the official ``CONV`` does (128 -> 129 taps)."""
        return self.first_conv + 1 if self.first_conv % 2 == 0 else self.first_conv

    @property
    def encoder_channels(self) -> int:
        return self.filts[-1][-1]

    @classmethod
    def from_official(cls, conf_json: Mapping[str, Any]) -> AasistConfig:
        """From an official ``.conf`` file's JSON (or its ``model_config`` table alone)."""
        model_config = conf_json.get("model_config", conf_json)
        if not isinstance(model_config, Mapping):
            raise ConfigError(f"aasist: model_config must be a table, got {model_config!r}")
        fields = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(model_config) - set(fields))
        missing = [name for name in fields if name not in model_config]
        if unknown or missing:
            raise ConfigError(
                f"aasist: model_config has unknown key(s) {unknown} and lacks {missing}; "
                f"expected exactly {fields}"
            )
        filts = model_config["filts"]
        if not isinstance(filts, list | tuple) or len(filts) != 5:
            raise ConfigError(f"aasist: filts must hold 5 entries, got {filts!r}")
        return cls(
            architecture=_typed(model_config["architecture"], str, "architecture"),
            nb_samp=_typed(model_config["nb_samp"], int, "nb_samp"),
            first_conv=_typed(model_config["first_conv"], int, "first_conv"),
            filts=(
                _typed(filts[0], int, "filts[0]"),
                _int_pair(filts[1], "filts[1]"),
                _int_pair(filts[2], "filts[2]"),
                _int_pair(filts[3], "filts[3]"),
                _int_pair(filts[4], "filts[4]"),
            ),
            gat_dims=_int_pair(model_config["gat_dims"], "gat_dims"),
            pool_ratios=_float_quad(model_config["pool_ratios"], "pool_ratios"),
            temperatures=_float_quad(model_config["temperatures"], "temperatures"),
        )

    def to_official(self) -> dict[str, Any]:
        """The official ``model_config`` table (lists, as in the ``.conf`` JSON)."""
        plain: dict[str, Any] = json.loads(json.dumps(dataclasses.asdict(self)))
        return plain


def _typed(value: Any, expected: type, where: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, expected):
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"aasist: {where} must be {expected.__name__}, got {value!r}")
    return value


def _int_pair(value: Any, where: str) -> tuple[int, int]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ConfigError(f"aasist: {where} must be a pair of integers, got {value!r}")
    return (_typed(value[0], int, where), _typed(value[1], int, where))


def _float_quad(value: Any, where: str) -> tuple[float, float, float, float]:
    if not isinstance(value, list | tuple) or len(value) != 4:
        raise ConfigError(f"aasist: {where} must hold 4 numbers, got {value!r}")
    first, second, third, fourth = (_typed(item, float, where) for item in value)
    return (first, second, third, fourth)


AASIST = AasistConfig()
AASIST_L = AasistConfig(
    filts=(70, (1, 32), (32, 32), (32, 24), (24, 24)),
    gat_dims=(24, 32),
    pool_ratios=(0.4, 0.5, 0.7, 0.5),
    temperatures=(2.0, 2.0, 100.0, 100.0),
)
PRESETS: dict[str, AasistConfig] = {"AASIST": AASIST, "AASIST-L": AASIST_L}


def aasist_preset(name: str) -> AasistConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown AASIST preset {name!r} (known: {', '.join(sorted(PRESETS))})"
        ) from None


def _xavier_normal_parameter(*size: int) -> nn.Parameter:
    parameter = nn.Parameter(torch.empty(*size))
    nn.init.xavier_normal_(parameter)
    return parameter


def _batch_norm_over_nodes(bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm1d over the feature axis of ``(batch, nodes, dim)``, every node a sample."""
    size = x.size()
    return cast(torch.Tensor, bn(x.view(-1, size[-1]))).view(size)


def _pairwise_mul_nodes(x: torch.Tensor) -> torch.Tensor:
    """``(batch, nodes, dim)`` -> ``(batch, nodes, nodes, dim)``: x_i * x_j."""
    nodes = x.size(1)
    expanded = x.unsqueeze(2).expand(-1, -1, nodes, -1)
    return expanded * expanded.transpose(1, 2)


class GraphAttentionLayer(nn.Module):
    """Graph attention over a fully connected graph (GAT-S and GAT-T)."""

    def __init__(self, in_dim: int, out_dim: int, temperature: float = 1.0) -> None:
        super().__init__()
        self.att_proj = nn.Linear(in_dim, out_dim)
        self.att_weight = _xavier_normal_parameter(out_dim, 1)
        self.proj_with_att = nn.Linear(in_dim, out_dim)
        self.proj_without_att = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)
        self.input_drop = nn.Dropout(p=0.2)
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, nodes, in_dim)`` -> ``(batch, nodes, out_dim)``."""
        x = self.input_drop(x)
        att_map = torch.tanh(self.att_proj(_pairwise_mul_nodes(x)))
        att_map = torch.matmul(att_map, self.att_weight) / self.temperature
        att_map = nnf.softmax(att_map, dim=-2)
        x = self.proj_with_att(torch.matmul(att_map.squeeze(-1), x)) + self.proj_without_att(x)
        return nnf.selu(_batch_norm_over_nodes(self.bn, x))


class HtrgGraphAttentionLayer(nn.Module):
    """Heterogeneous stacking graph attention (HS-GAL) over two node types and a master node."""

    def __init__(self, in_dim: int, out_dim: int, temperature: float = 1.0) -> None:
        super().__init__()
        self.proj_type1 = nn.Linear(in_dim, in_dim)
        self.proj_type2 = nn.Linear(in_dim, in_dim)
        self.att_proj = nn.Linear(in_dim, out_dim)
        self.att_projM = nn.Linear(in_dim, out_dim)
        self.att_weight11 = _xavier_normal_parameter(out_dim, 1)
        self.att_weight22 = _xavier_normal_parameter(out_dim, 1)
        self.att_weight12 = _xavier_normal_parameter(out_dim, 1)
        self.att_weightM = _xavier_normal_parameter(out_dim, 1)
        self.proj_with_att = nn.Linear(in_dim, out_dim)
        self.proj_without_att = nn.Linear(in_dim, out_dim)
        self.proj_with_attM = nn.Linear(in_dim, out_dim)
        self.proj_without_attM = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)
        self.input_drop = nn.Dropout(p=0.2)
        self.temperature = temperature

    def forward(
        self, x1: torch.Tensor, x2: torch.Tensor, master: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(batch, n1, in_dim)``, ``(batch, n2, in_dim)``, ``(1 or batch, 1, in_dim)`` ->
        the same three with ``out_dim`` features."""
        num_type1 = x1.size(1)
        num_type2 = x2.size(1)
        x = torch.cat([self.proj_type1(x1), self.proj_type2(x2)], dim=1)
        if master is None:
            master = torch.mean(x, dim=1, keepdim=True)
        x = self.input_drop(x)
        att_map = self._derive_att_map(x, num_type1)
        master = self._update_master(x, master)
        x = self.proj_with_att(torch.matmul(att_map.squeeze(-1), x)) + self.proj_without_att(x)
        x = nnf.selu(_batch_norm_over_nodes(self.bn, x))
        return x.narrow(1, 0, num_type1), x.narrow(1, num_type1, num_type2), master

    def _derive_att_map(self, x: torch.Tensor, num_type1: int) -> torch.Tensor:
        att_map = torch.tanh(self.att_proj(_pairwise_mul_nodes(x)))
        # Type 1 to type 1 edges use att_weight11, type 2 to type 2 att_weight22, and both cross
        # blocks att_weight12. The official code writes the four blocks into a zero board in
        # place; concatenating the same four products gives the same values and exports to ONNX.
        head, tail = att_map[:, :num_type1], att_map[:, num_type1:]
        board = torch.cat(
            [
                torch.cat(
                    [
                        torch.matmul(head[:, :, :num_type1], self.att_weight11),
                        torch.matmul(head[:, :, num_type1:], self.att_weight12),
                    ],
                    dim=2,
                ),
                torch.cat(
                    [
                        torch.matmul(tail[:, :, :num_type1], self.att_weight12),
                        torch.matmul(tail[:, :, num_type1:], self.att_weight22),
                    ],
                    dim=2,
                ),
            ],
            dim=1,
        )
        return nnf.softmax(board / self.temperature, dim=-2)

    def _update_master(self, x: torch.Tensor, master: torch.Tensor) -> torch.Tensor:
        att_map = torch.tanh(self.att_projM(x * master))
        att_map = torch.matmul(att_map, self.att_weightM) / self.temperature
        att_map = nnf.softmax(att_map, dim=-2)
        aggregated = torch.matmul(att_map.squeeze(-1).unsqueeze(1), x)
        return cast(torch.Tensor, self.proj_with_attM(aggregated) + self.proj_without_attM(master))


class GraphPool(nn.Module):
    """Keeps the ``max(int(nodes * ratio), 1)`` best-scored nodes, scaled by their score."""

    def __init__(self, ratio: float, in_dim: int, dropout: float) -> None:
        super().__init__()
        self.ratio = ratio
        self.proj = nn.Linear(in_dim, 1)
        self.drop: nn.Module = nn.Dropout(p=dropout) if dropout > 0 else nn.Identity()

    def kept_nodes(self, nodes: int) -> int:
        return max(int(nodes * self.ratio), 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """``(batch, nodes, dim)`` -> ``(batch, kept, dim)``, best score first."""
        scores = torch.sigmoid(self.proj(self.drop(h)))
        _, nodes, features = h.size()
        _, index = torch.topk(scores, self.kept_nodes(nodes), dim=1)
        return torch.gather(h * scores, 1, index.expand(-1, -1, features))


class ResidualBlock(nn.Module):
    """The official ``Residual_block``: two (2, 3) convolutions, a skip, max-pool time by 3.

    The official forward computes ``bn1`` and SELU on the input, then discards the result and
    feeds the raw input to ``conv1`` (``out = self.conv1(x)``). The trained weights expect that,
    so ``bn1`` is kept (it is in every checkpoint) and not applied; the outputs are the same.
    """

    def __init__(self, filters: ResidualFilters, first: bool = False) -> None:
        super().__init__()
        in_channels, out_channels = filters
        self.first = first
        if not first:
            self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=(2, 3), padding=(1, 1))
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=(2, 3), padding=(0, 1))
        self.downsample = in_channels != out_channels
        if self.downsample:
            self.conv_downsample = nn.Conv2d(
                in_channels, out_channels, kernel_size=(1, 3), padding=(0, 1)
            )
        self.mp = nn.MaxPool2d((1, TIME_POOL_PER_BLOCK))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, in, freq, time)`` -> ``(batch, out, freq, time // 3)``."""
        out = self.conv2(nnf.selu(self.bn2(self.conv1(x))))
        identity = self.conv_downsample(x) if self.downsample else x
        return cast(torch.Tensor, self.mp(out + identity))


class AasistModel(nn.Module):
    """AASIST back end: sinc features ``(batch, 70, frames)`` -> logits ``(batch, 2)``.

    Index 0 is spoof and index 1 bona fide, the official order (``SPOOF_INDEX``,
    ``BONAFIDE_INDEX``); the bona fide logit is the official score. The state dict has exactly
    the official keys.
    """

    family: ClassVar[str] = "aasist"
    output_name: ClassVar[str] = "logits"

    def __init__(self, config: AasistConfig = AASIST) -> None:
        super().__init__()
        self.config = config
        _, *blocks = config.filts
        channels = config.encoder_channels
        gat_dim, hs_gal_dim = config.gat_dims
        spectral_nodes = config.sinc_channels // SPECTRAL_POOL  # 23 for 70 filters
        pool_s, pool_t, pool_hs, _ = config.pool_ratios
        temperature_s, temperature_t, temperature_hs, _ = config.temperatures

        # Created in the official order, so that one seed gives the official initial weights.
        self.first_bn = nn.BatchNorm2d(1)
        self.drop = nn.Dropout(0.5)
        self.drop_way = nn.Dropout(0.2)
        self.encoder = nn.Sequential(
            nn.Sequential(ResidualBlock(blocks[0], first=True)),
            nn.Sequential(ResidualBlock(blocks[1])),
            nn.Sequential(ResidualBlock(blocks[2])),
            nn.Sequential(ResidualBlock(blocks[3])),
            nn.Sequential(ResidualBlock(blocks[3])),
            nn.Sequential(ResidualBlock(blocks[3])),
        )
        self.pos_S = nn.Parameter(torch.randn(1, spectral_nodes, channels))
        self.master1 = nn.Parameter(torch.randn(1, 1, gat_dim))
        self.master2 = nn.Parameter(torch.randn(1, 1, gat_dim))
        self.GAT_layer_S = GraphAttentionLayer(channels, gat_dim, temperature_s)
        self.GAT_layer_T = GraphAttentionLayer(channels, gat_dim, temperature_t)
        self.HtrgGAT_layer_ST11 = HtrgGraphAttentionLayer(gat_dim, hs_gal_dim, temperature_hs)
        self.HtrgGAT_layer_ST12 = HtrgGraphAttentionLayer(hs_gal_dim, hs_gal_dim, temperature_hs)
        self.HtrgGAT_layer_ST21 = HtrgGraphAttentionLayer(gat_dim, hs_gal_dim, temperature_hs)
        self.HtrgGAT_layer_ST22 = HtrgGraphAttentionLayer(hs_gal_dim, hs_gal_dim, temperature_hs)
        self.pool_S = GraphPool(pool_s, gat_dim, 0.3)
        self.pool_T = GraphPool(pool_t, gat_dim, 0.3)
        self.pool_hS1 = GraphPool(pool_hs, hs_gal_dim, 0.3)
        self.pool_hT1 = GraphPool(pool_hs, hs_gal_dim, 0.3)
        self.pool_hS2 = GraphPool(pool_hs, hs_gal_dim, 0.3)
        self.pool_hT2 = GraphPool(pool_hs, hs_gal_dim, 0.3)
        self.out_layer = nn.Linear(5 * hs_gal_dim, 2)
        # Not a submodule: the sinc bank holds no weights and its buffers are not in the
        # official state dict. Built on first use by forward_waveform.
        self._frontends: dict[torch.device, SincConv] = {}

    @property
    def frontend_spec(self) -> SincConvSpec:
        return self.config.frontend

    def forward(self, features: torch.Tensor, freq_aug: bool = False) -> torch.Tensor:
        """Sinc features ``(batch, 70, frames)`` -> logits ``(batch, 2)``.

        ``freq_aug`` is the official ``Freq_aug`` training augmentation: a random band of up to
        19 adjacent sinc channels is zeroed for the whole batch (the official code zeroes those
        filters, which zeroes the same channels). Off by default; only training asks for it.
        """
        if features.dim() != 3 or features.size(1) != self.config.sinc_channels:
            raise ValueError(
                f"expected sinc features (batch, {self.config.sinc_channels}, frames), "
                f"got {tuple(features.shape)}"
            )
        if features.size(2) < min_frames():
            raise ValueError(
                f"AASIST needs at least {min_frames()} sinc frames "
                f"({min_samples(self.config.first_conv)} samples), got {features.size(2)}"
            )
        if freq_aug:
            features = mask_frequency_band(features)

        x = features.unsqueeze(1)
        x = nnf.max_pool2d(torch.abs(x), (SPECTRAL_POOL, SPECTRAL_POOL))
        x = nnf.selu(self.first_bn(x))
        e = self.encoder(x)  # (batch, channels, spectral nodes, temporal nodes)

        e_s, _ = torch.max(torch.abs(e), dim=3)
        out_s = self.pool_S(self.GAT_layer_S(e_s.transpose(1, 2) + self.pos_S))
        e_t, _ = torch.max(torch.abs(e), dim=2)
        out_t = self.pool_T(self.GAT_layer_T(e_t.transpose(1, 2)))

        # Two parallel HS-GAL branches; module names stay the official ones (checkpoint keys).
        out_t1, out_s1, master1 = _hs_gal_branch(
            self.HtrgGAT_layer_ST11, self.HtrgGAT_layer_ST12, self.pool_hS1, self.pool_hT1,
            out_t, out_s, self.master1,
        )  # fmt: skip
        out_t2, out_s2, master2 = _hs_gal_branch(
            self.HtrgGAT_layer_ST21, self.HtrgGAT_layer_ST22, self.pool_hS2, self.pool_hT2,
            out_t, out_s, self.master2,
        )  # fmt: skip

        out_t = torch.max(self.drop_way(out_t1), self.drop_way(out_t2))
        out_s = torch.max(self.drop_way(out_s1), self.drop_way(out_s2))
        master = torch.max(self.drop_way(master1), self.drop_way(master2))

        t_max, _ = torch.max(torch.abs(out_t), dim=1)
        t_avg = torch.mean(out_t, dim=1)
        s_max, _ = torch.max(torch.abs(out_s), dim=1)
        s_avg = torch.mean(out_s, dim=1)
        last_hidden = torch.cat([t_max, t_avg, s_max, s_avg, master.squeeze(1)], dim=1)
        return cast(torch.Tensor, self.out_layer(self.drop(last_hidden)))

    def forward_waveform(self, waveform: torch.Tensor, freq_aug: bool = False) -> torch.Tensor:
        """Waveforms ``(batch, samples)`` at 16 kHz -> logits ``(batch, 2)``, as the official
        ``Model.forward`` (no normalisation of the samples)."""
        return self.forward(self._frontend_on(waveform.device)(waveform), freq_aug=freq_aug)

    def build_frontend(self) -> SincConv:
        return self.frontend_spec.build()

    def parameter_count(self) -> int:
        return sum(parameter.numel() for parameter in self.parameters())

    def _frontend_on(self, device: torch.device) -> SincConv:
        module = self._frontends.get(device)
        if module is None:
            module = self.build_frontend().to(device)
            self._frontends[device] = module
        return module


def mask_frequency_band(features: torch.Tensor, max_width: int = 20) -> torch.Tensor:
    """The official ``Freq_aug``: zero ``int(uniform(0, max_width))`` adjacent channels of
    ``(batch, channels, frames)``, the same band for the whole batch."""
    channels = features.size(1)
    width = int(torch.randint(0, max_width, ()).item())
    start = int(torch.randint(0, channels - width + 1, ()).item())  # random.randint: inclusive
    masked = features.clone()
    masked[:, start : start + width] = 0.0
    return masked


def build_aasist(config: AasistConfig | str = "AASIST") -> AasistModel:
    """A freshly initialised model from a config or a preset name (``AASIST``, ``AASIST-L``)."""
    return AasistModel(aasist_preset(config) if isinstance(config, str) else config)


def example_features(
    config: AasistConfig, num_samples: int | None = None, batch: int = 2
) -> torch.Tensor:
    """Random sinc features of the right shape for ``num_samples`` (default ``nb_samp``)."""
    samples = config.nb_samp if num_samples is None else num_samples
    frames = samples - config.sinc_kernel_size + 1
    return torch.randn(batch, config.sinc_channels, frames)


def export_aasist_onnx(
    model: AasistModel, path: Path, num_samples: int | None = None, opset: int = OPSET
) -> Path:
    """ONNX file of the back end: ``features`` (batch, 70, frames) -> ``logits`` (batch, 2).

    The batch axis is dynamic; the time axis is fixed to the frames of ``num_samples`` (default
    ``nb_samp``), because the graph pools keep ``max(int(nodes * ratio), 1)`` nodes, a count the
    exporter can only record as a constant. Export one file per window length.
    """
    config = model.config
    samples = config.nb_samp if num_samples is None else num_samples
    metadata = {
        "model": "AASIST",
        "model_config": json.dumps(config.to_official(), sort_keys=True),
        "frontend": model.frontend_spec.to_json(),
        "num_samples": str(samples),
        "sample_rate": str(SAMPLE_RATE),
        "labels": json.dumps({"spoof": SPOOF_INDEX, "bonafide": BONAFIDE_INDEX}),
        "score": f"logits[:, {BONAFIDE_INDEX}] (bona fide logit)",
    }
    with warnings.catch_warnings():
        # Python ints taken from tensor sizes (the kept-node counts, the input checks) become
        # constants of the graph; with the time axis fixed that is exactly right.
        warnings.filterwarnings(
            "ignore",
            category=torch.jit.TracerWarning,  # type: ignore[attr-defined]  # not re-exported in stubs
        )
        return export_onnx(
            model,
            example_features(config, samples, batch=2),
            path,
            output_name="logits",
            opset=opset,
            metadata=metadata,
        )


if __name__ == "__main__":  # pragma: no cover
    torch.manual_seed(0)
    for name, preset in PRESETS.items():
        model = AasistModel(preset).eval()
        for samples in (WINDOW_SAMPLES, preset.nb_samp):
            with torch.inference_mode():
                logits = model.forward_waveform(torch.randn(2, samples))
            print(  # noqa: T201
                f"{name}: waveform (2, {samples}) -> logits {tuple(logits.shape)}, "
                f"{model.parameter_count():,} parameters"
            )


def _hs_gal_branch(
    first: nn.Module,
    second: nn.Module,
    pool_s: nn.Module,
    pool_t: nn.Module,
    out_t: torch.Tensor,
    out_s: torch.Tensor,
    master: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One branch of the official model: HS-GAL, graph pooling, then a second HS-GAL added on."""
    out_t, out_s, master = first(out_t, out_s, master=master)
    out_s = pool_s(out_s)
    out_t = pool_t(out_t)
    out_t_aug, out_s_aug, master_aug = second(out_t, out_s, master=master)
    return out_t + out_t_aug, out_s + out_s_aug, master + master_aug
