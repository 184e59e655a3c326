"""The registry of neural vocoder architectures: name to config class and model factory."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Protocol

import torch

from dfd.trainers.corpus.neural_vocoders.hifigan import HiFiGAN, HiFiGANConfig
from dfd.trainers.corpus.neural_vocoders.nsf import NSF, NSFConfig
from dfd.trainers.corpus.neural_vocoders.vocos import Vocos, VocosConfig


class NeuralVocoder(Protocol):
    """What every architecture's module does: ``(batch, MEL_BANDS, frames)`` log mel and
    ``(batch, frames)`` F0 in Hz (0 when unvoiced) to ``(batch, frames * HOP)`` samples; noise, if
    any, is drawn from ``generator`` (torch's global generator when None)."""

    def __call__(
        self,
        log_mel: torch.Tensor,
        f0: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor: ...


@dataclass(frozen=True)
class Architecture:
    name: str
    config_type: type[Any]
    module_type: type[torch.nn.Module]
    uses_f0: bool

    def config(self, values: dict[str, Any] | None = None) -> Any:
        """The architecture's config from ``values`` (defaults for missing keys); unknown keys
        raise ``ValueError`` so a stale or mistyped config cannot be silently ignored."""
        values = dict(values or {})
        known = {field.name for field in fields(self.config_type)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown {self.name} config keys: {unknown}")
        return self.config_type(**values)

    def build(self, config: Any) -> torch.nn.Module:
        if not isinstance(config, self.config_type):
            raise TypeError(f"{self.name} needs a {self.config_type.__name__}, got {config!r}")
        return self.module_type(config)


ARCHITECTURES: dict[str, Architecture] = {
    "hifigan": Architecture("hifigan", HiFiGANConfig, HiFiGAN, uses_f0=False),
    "vocos": Architecture("vocos", VocosConfig, Vocos, uses_f0=False),
    "nsf": Architecture("nsf", NSFConfig, NSF, uses_f0=True),
}


def get_architecture(name: str) -> Architecture:
    """The architecture registered as ``name``; unknown names raise ``ValueError``."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; known: {sorted(ARCHITECTURES)}") from None


def parameter_count(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())
