"""Read model weights from a file a user hands us, unpickling nothing but tensors, and check
that they fit a model before loading them (official AASIST checkpoints, ``init_weights`` of a
training run)."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn


def read_state_dict(checkpoint: Path) -> dict[str, torch.Tensor]:
    """A plain ``{name: tensor}`` state dict, unpickling nothing but tensors."""
    if not checkpoint.is_file():
        raise FileNotFoundError(f"no such checkpoint: {checkpoint}")
    try:
        loaded = torch.load(checkpoint, weights_only=True, map_location="cpu")
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        raise ValueError(
            f"{checkpoint}: not a weights-only PyTorch state dict ({error})"
        ) from error
    if not isinstance(loaded, Mapping):
        raise ValueError(f"{checkpoint}: expected a state dict, found a {type(loaded).__name__}")
    not_tensors = [str(key) for key, value in loaded.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise ValueError(
            f"{checkpoint}: expected a plain state dict of tensors; these entries are not "
            f"tensors: {', '.join(not_tensors[:5])} (a training checkpoint wrapping the weights?)"
        )
    return {str(key): value for key, value in loaded.items()}


def check_state_dict(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    source: Path | str = "state dict",
    model_name: str = "the model",
) -> None:
    """Raise ``ValueError`` naming every missing, unexpected or mis-shaped entry."""
    expected = model.state_dict()
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    mis_shaped = [
        f"{key} (checkpoint {tuple(state_dict[key].shape)}, model {tuple(tensor.shape)})"
        for key, tensor in expected.items()
        if key in state_dict and state_dict[key].shape != tensor.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {', '.join(unexpected)}")
    if mis_shaped:
        problems.append(f"shape mismatch: {', '.join(mis_shaped)}")
    if problems:
        raise ValueError(f"{source} does not fit {model_name}: " + "; ".join(problems))


def load_checked_state_dict(
    model: nn.Module, checkpoint: Path, model_name: str = "the model"
) -> None:
    """Read ``checkpoint`` (tensors only), check it fits ``model`` exactly, and load it."""
    state_dict = read_state_dict(checkpoint)
    check_state_dict(model, state_dict, source=checkpoint, model_name=model_name)
    model.load_state_dict(state_dict, strict=True)
