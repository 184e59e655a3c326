"""The detector families by name: model factory, default config, front end, loss and output.

``family(name)`` raises ``ValueError`` naming the known families. A family's ``frontend`` is the
``FrontendSpec`` whose output its model's ``forward`` takes (for its default config);
``WaveformSpec`` means the raw waveform ``(batch, samples)``: the model holds its own
(learnable) front end.

Output conventions (see ``dfd.detectors.common.OutputConvention``): ``spoof_logit`` ``(batch,)``,
``class_logits`` ``(batch, 2)`` with the spoof class at ``spoof_index``, ``spoof_score``
``(batch,)``; in every case higher = more likely spoof once the spoof column is taken.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from torch import nn

from dfd.detectors.aasist import AASIST, AASIST_L, AasistConfig, build_aasist
from dfd.detectors.aasist import SPOOF_INDEX as AASIST_SPOOF_INDEX
from dfd.detectors.contract import LOSS_NAMES, LossName, OutputConvention, graph_metadata
from dfd.detectors.effnet_mel import EffnetMel, EffnetMelConfig
from dfd.detectors.mfcc_cnn import SPOOF_INDEX as MFCC_CNN_SPOOF_INDEX
from dfd.detectors.mfcc_cnn import MfccCnn, MfccCnnConfig
from dfd.detectors.siamese_mel import SiameseMel, SiameseMelConfig
from dfd.detectors.sinc_lcnn import SincLcnn, SincLcnnConfig
from dfd.dsp.frontends import FrontendSpec, WaveformSpec

ConfigT = TypeVar("ConfigT")


@dataclasses.dataclass(frozen=True)
class DetectorFamily(Generic[ConfigT]):
    name: str
    model_class: Callable[[ConfigT], nn.Module]
    default_config: ConfigT
    frontend_of: Callable[[ConfigT], FrontendSpec]
    loss: LossName
    output: OutputConvention
    output_name: str = "logits"  # the ONNX output name
    spoof_index: int | None = None  # the spoof column, for ``class_logits`` only

    def __post_init__(self) -> None:
        if self.loss not in LOSS_NAMES:
            raise ValueError(f"{self.name}: unknown loss {self.loss!r} (known: {LOSS_NAMES})")
        if (self.output == "class_logits") != (self.spoof_index is not None):
            raise ValueError(f"{self.name}: class_logits needs a spoof_index, other outputs none")

    @property
    def config_class(self) -> type[ConfigT]:
        return type(self.default_config)

    @functools.cached_property
    def frontend(self) -> FrontendSpec:
        return self.frontend_of(self.default_config)

    def build(self, config: ConfigT | None = None) -> nn.Module:
        return self.model_class(self.default_config if config is None else config)

    def build_frontend(self, config: ConfigT | None = None) -> nn.Module:
        spec = self.frontend if config is None else self.frontend_of(config)
        return spec.build()

    def metadata(self, config: ConfigT | None = None) -> dict[str, str]:
        """The contract an exported model carries (ONNX ``metadata_props``)."""
        spec = self.frontend if config is None else self.frontend_of(config)
        return graph_metadata(
            self.name, spec.to_json(), self.output, self.output_name, self.spoof_index
        )


def _aasist_frontend(config: AasistConfig) -> FrontendSpec:
    return config.frontend


FAMILIES: dict[str, DetectorFamily[Any]] = {
    entry.name: entry
    for entry in (
        DetectorFamily(
            name="sinc-lcnn",
            model_class=SincLcnn,
            default_config=SincLcnnConfig(),
            frontend_of=lambda config: WaveformSpec(),
            loss="focal",  # the LCNN design: focal loss (gamma, alpha; see [loss] options)
            output="spoof_logit",
        ),
        DetectorFamily(
            name="effnet-mel",
            model_class=EffnetMel,
            default_config=EffnetMelConfig(),
            frontend_of=lambda config: config.frontend,
            loss="bce",
            output="spoof_logit",
        ),
        DetectorFamily(
            name="siamese-mel",
            model_class=SiameseMel,
            default_config=SiameseMelConfig(),
            frontend_of=lambda config: config.frontend,
            loss="contrastive",
            output="spoof_score",
            output_name="score",
        ),
        DetectorFamily(
            name="mfcc-cnn",
            model_class=MfccCnn,
            default_config=MfccCnnConfig(),
            frontend_of=lambda config: config.frontend,
            loss="cross_entropy",
            output="class_logits",
            spoof_index=MFCC_CNN_SPOOF_INDEX,
        ),
        # AASIST's official checkpoints put spoof at index 0 (dfd.detectors.aasist).
        DetectorFamily(
            name="aasist",
            model_class=build_aasist,
            default_config=AASIST,
            frontend_of=_aasist_frontend,
            loss="cross_entropy",
            output="class_logits",
            spoof_index=AASIST_SPOOF_INDEX,
        ),
        DetectorFamily(
            name="aasist-l",
            model_class=build_aasist,
            default_config=AASIST_L,
            frontend_of=_aasist_frontend,
            loss="cross_entropy",
            output="class_logits",
            spoof_index=AASIST_SPOOF_INDEX,
        ),
    )
}


def family_names() -> list[str]:
    return sorted(FAMILIES)


def family(name: str) -> DetectorFamily[Any]:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(
            f"unknown detector family {name!r} (known: {', '.join(family_names())})"
        ) from None
