"""The DSP batcher: computes each distinct front end once per batch of windows.

Several detectors may share a front end (two log-mel models with the same spec); the batcher
builds each ``FrontendSpec`` into a module once, moves it to the device once, and returns one
feature tensor per distinct spec for the whole batch. The device is CUDA when one is visible,
else the CPU.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from dfd.dsp.frontends import Frontend, FrontendSpec


def resolve_device(preference: str = "auto") -> torch.device:
    """``auto`` picks CUDA when one is visible; ``cpu`` and ``cuda[:N]`` are taken as asked."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {preference!r} was requested but no CUDA device is visible")
    return device


class FrontendBank:
    """Owns one built module per distinct spec, all on one device."""

    def __init__(self, device: str | torch.device = "auto") -> None:
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self._modules: dict[FrontendSpec, Frontend] = {}

    def module(self, spec: FrontendSpec) -> Frontend:
        module = self._modules.get(spec)
        if module is None:
            module = spec.build().to(self.device).eval()
            self._modules[spec] = module
        return module

    def compute(
        self,
        windows: np.ndarray | torch.Tensor | Sequence[np.ndarray],
        specs: Iterable[FrontendSpec],
    ) -> dict[FrontendSpec, torch.Tensor]:
        """Features of ``windows`` (``(batch, samples)``) for every distinct spec, on the device."""
        batch = self.to_batch(windows)
        with torch.inference_mode():
            return {spec: self.module(spec)(batch) for spec in dict.fromkeys(specs)}

    def to_batch(self, windows: np.ndarray | torch.Tensor | Sequence[np.ndarray]) -> torch.Tensor:
        if isinstance(windows, torch.Tensor):
            batch = windows
        elif isinstance(windows, np.ndarray):
            batch = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))
        else:
            batch = torch.from_numpy(np.stack(windows).astype(np.float32, copy=False))
        if batch.dim() != 2:
            raise ValueError(
                f"expected a (batch, samples) array of windows, got {tuple(batch.shape)}"
            )
        return batch.to(self.device, dtype=torch.float32, non_blocking=True)
