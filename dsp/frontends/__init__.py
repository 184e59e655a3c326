"""Feature front ends: ``nn.Module``s that map a batch of waveforms to a batch of features.

The specs (``FrontendSpec`` and its kinds) need no torch; the modules that compute features are
imported on first use, so that reading a model card does not load torch (see ``kinds``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dfd.dsp.frontends.kinds import (
    ConstantQSpec,
    LfccSpec,
    LogMelSpec,
    LogSpectrogramSpec,
    MfccSpec,
    SincConvSpec,
    WaveformSpec,
)
from dfd.dsp.frontends.spec import (
    FrontendSpec,
    FrontendSpecError,
    frontend_kinds,
    frontend_spec_class,
    frontend_spec_from_dict,
)

if TYPE_CHECKING:
    from dfd.dsp.frontends.base import Frontend
    from dfd.dsp.frontends.constant_q import ConstantQ
    from dfd.dsp.frontends.sinc import SincConv
    from dfd.dsp.frontends.spectral import Lfcc, LogMel, LogSpectrogram, Mfcc
    from dfd.dsp.frontends.waveform import Waveform

_MODULES = {  # torch modules, imported when first asked for
    "Frontend": "dfd.dsp.frontends.base",
    "ConstantQ": "dfd.dsp.frontends.constant_q",
    "SincConv": "dfd.dsp.frontends.sinc",
    "Lfcc": "dfd.dsp.frontends.spectral",
    "LogMel": "dfd.dsp.frontends.spectral",
    "LogSpectrogram": "dfd.dsp.frontends.spectral",
    "Mfcc": "dfd.dsp.frontends.spectral",
    "Waveform": "dfd.dsp.frontends.waveform",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "ConstantQ",
    "ConstantQSpec",
    "Frontend",
    "FrontendSpec",
    "FrontendSpecError",
    "Lfcc",
    "LfccSpec",
    "LogMel",
    "LogMelSpec",
    "LogSpectrogram",
    "LogSpectrogramSpec",
    "Mfcc",
    "MfccSpec",
    "SincConv",
    "SincConvSpec",
    "Waveform",
    "WaveformSpec",
    "frontend_kinds",
    "frontend_spec_class",
    "frontend_spec_from_dict",
]
