"""Sharpness-aware minimisation: the gradient is taken at the worst nearby weights, and the
weights are left where they were."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dfd.trainers.sharpness import sam_gradients


class Quartic(nn.Module):
    """loss(w) = sum(w**4): its gradient 4 w**3 differs between w and w + e."""

    def __init__(self, weights: list[float]) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(weights, dtype=torch.float64))

    def loss(self) -> torch.Tensor:
        return (self.w**4).sum()


@pytest.mark.parametrize("adaptive", [False, True])
def test_the_gradient_is_taken_at_the_perturbed_weights(adaptive: bool) -> None:
    model = Quartic([1.0, -2.0, 0.5])
    before = model.w.detach().clone()
    loss = sam_gradients(model, model.loss, rho=0.1, adaptive=adaptive)

    gradient = 4 * before**3
    scaled = before.abs() * gradient if adaptive else gradient
    step = 0.1 * scaled / scaled.norm()
    if adaptive:
        step = step * before.abs()
    assert model.w.grad is not None
    torch.testing.assert_close(model.w.grad, 4 * (before + step) ** 3)
    torch.testing.assert_close(model.w.detach(), before)  # the weights are put back
    assert float(loss) == pytest.approx(float((before**4).sum()))


def test_the_step_has_length_rho() -> None:
    model = Quartic([3.0, 4.0])
    seen = []

    def loss_at() -> torch.Tensor:
        seen.append(model.w.detach().clone())
        return model.loss()

    sam_gradients(model, loss_at, rho=0.05)
    assert float((seen[1] - seen[0]).norm()) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="rho"):
        sam_gradients(model, loss_at, rho=0.0)
