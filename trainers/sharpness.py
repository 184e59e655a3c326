"""Sharpness-aware minimisation (SAM, Foret et al. 2021; adaptive ASAM, Kwon et al. 2021).

One SAM step: the gradient at the weights ``w`` gives the direction in which the loss rises
fastest; the weights are moved there by ``rho`` (``e = rho * g / ||g||``; for ASAM each weight's
step is scaled by ``|w|``, ``e = rho * |w|**2 * g / ||w * g||``), the gradient is taken again at
``w + e``, and the optimiser applies that second gradient at ``w``. Minimising the worst loss in
a neighbourhood prefers flat minima, which tend to transfer better to data unlike the training
set; it costs a second forward and backward pass per step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def sam_gradients(
    model: nn.Module, loss_at: Callable[[], torch.Tensor], rho: float, adaptive: bool = False
) -> torch.Tensor:
    """Leave in ``model``'s ``.grad`` the gradient of ``loss_at()`` at the perturbed weights;
    return the loss at the unperturbed ones (for the record). ``loss_at`` computes the loss of the
    same batch each time it is called."""
    if rho <= 0:
        raise ValueError(f"rho must be positive, got {rho}")
    parameters = [p for p in model.parameters() if p.requires_grad]
    for parameter in parameters:
        parameter.grad = None
    loss = loss_at()
    loss.backward()  # type: ignore[no-untyped-call]
    with torch.no_grad():
        scaled = [
            (p.abs() * p.grad if adaptive else p.grad) if p.grad is not None else None
            for p in parameters
        ]
        norm = torch.norm(torch.stack([g.norm(2) for g in scaled if g is not None]), 2)
        steps: list[torch.Tensor | None] = []
        for parameter, gradient in zip(parameters, scaled, strict=True):
            if gradient is None:
                steps.append(None)
                continue
            step = gradient * (rho / (norm + 1e-12))
            if adaptive:
                step = step * parameter.abs()
            parameter.add_(step)
            steps.append(step)
    for parameter in parameters:
        parameter.grad = None
    loss_at().backward()  # type: ignore[no-untyped-call]
    with torch.no_grad():
        for parameter, step in zip(parameters, steps, strict=True):
            if step is not None:
                parameter.sub_(step)
    return loss.detach()
