"""Feature front ends: ``nn.Module``s that map a batch of waveforms to a batch of features."""

from dfd.dsp.frontends.base import Frontend
from dfd.dsp.frontends.sinc import SincConv, SincConvSpec
from dfd.dsp.frontends.spec import (
    FrontendSpec,
    FrontendSpecError,
    frontend_kinds,
    frontend_spec_class,
    frontend_spec_from_dict,
)
from dfd.dsp.frontends.spectral import Lfcc, LfccSpec, LogMel, LogMelSpec, Mfcc, MfccSpec
from dfd.dsp.frontends.waveform import Waveform, WaveformSpec

__all__ = [
    "Frontend",
    "FrontendSpec",
    "FrontendSpecError",
    "Lfcc",
    "LfccSpec",
    "LogMel",
    "LogMelSpec",
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
