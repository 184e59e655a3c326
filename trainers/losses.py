"""Training losses of the detector families, by name.

Binary cross-entropy on a spoof logit and two-way cross-entropy are torch's own
(``nn.BCEWithLogitsLoss``, ``nn.CrossEntropyLoss``); this module adds the focal loss for binary
logits and the contrastive loss for siamese pairs. ``build_loss`` makes any of them from its name,
the ``loss`` of a ``dfd.detectors.registry.DetectorFamily``.

Label convention everywhere: 1 = spoof, 0 = bona fide (for ``ContrastiveLoss``: 1 = the pair is of
the same class).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as nnf
from torch import nn

from dfd.detectors.contract import LOSS_NAMES

Reduction = Literal["mean", "sum", "none"]


def _reduce(losses: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    return losses


class FocalLoss(nn.Module):
    """Focal loss on binary logits (Lin et al., "Focal Loss for Dense Object Detection", 2017).

    ``FL = -w_y * alpha_t * (1 - p_t) ** gamma * log(p_t)`` with ``p_t = sigmoid(x)`` for label 1
    and ``1 - sigmoid(x)`` for label 0, ``alpha_t = alpha`` for label 1 and ``1 - alpha`` for
    label 0 (no factor when ``alpha`` is None) and ``w_y = class_weights[y]`` (index 0 = bona
    fide, 1 = spoof; no factor when None). Both ``log(p_t)`` and ``log(1 - p_t)`` come from
    ``logsigmoid``, so large logits of either sign stay finite. With ``gamma=0`` and
    ``alpha=None`` it is binary cross-entropy with logits. Soft labels in [0, 1] interpolate
    linearly between the two cases.
    """

    class_weights: torch.Tensor | None

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: float | None = None,
        class_weights: Sequence[float] | torch.Tensor | None = None,
        reduction: Reduction = "mean",
    ) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"focal loss: gamma must be >= 0, got {gamma}")
        if alpha is not None and not 0.0 <= alpha <= 1.0:
            raise ValueError(f"focal loss: alpha must be in [0, 1], got {alpha}")
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"focal loss: unknown reduction {reduction!r}")
        self.gamma = gamma
        self.alpha = alpha
        self.reduction: Reduction = reduction
        weights = None
        if class_weights is not None:
            weights = torch.as_tensor(class_weights, dtype=torch.float32)
            if weights.shape != (2,) or bool((weights < 0).any()):
                raise ValueError("focal loss: class_weights must be two non-negative numbers")
        self.register_buffer("class_weights", weights)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if logits.shape != labels.shape:
            raise ValueError(
                f"focal loss: logits {tuple(logits.shape)} and labels {tuple(labels.shape)} differ"
            )
        target = labels.to(logits.dtype)
        log_p = nnf.logsigmoid(logits)  # log P(spoof)
        log_q = nnf.logsigmoid(-logits)  # log P(bona fide)
        log_pt = target * log_p + (1 - target) * log_q
        losses = -log_pt
        if self.gamma != 0:
            log_one_minus_pt = target * log_q + (1 - target) * log_p
            losses = losses * torch.exp(self.gamma * log_one_minus_pt)
        if self.alpha is not None:
            losses = losses * (self.alpha * target + (1 - self.alpha) * (1 - target))
        if self.class_weights is not None:
            bonafide, spoof = self.class_weights.to(logits.dtype)
            losses = losses * (spoof * target + bonafide * (1 - target))
        return _reduce(losses, self.reduction)


class ContrastiveLoss(nn.Module):
    """Contrastive loss on embedding pairs (Hadsell, Chopra and LeCun, CVPR 2006).

    For a pair at Euclidean distance ``d`` with label ``y`` (1 = similar, same class; 0 =
    dissimilar): ``y * d**2 + (1 - y) * max(0, margin - d)**2``, averaged over pairs (Hadsell et
    al. also halve both terms; this loss does not). The similar term uses the squared distance
    directly; the distance in the dissimilar term is floored at ``sqrt(eps)`` so that its
    gradient is finite when the two embeddings coincide.
    """

    def __init__(self, margin: float = 2.0, eps: float = 1e-12, reduction: Reduction = "mean"):
        super().__init__()
        if margin <= 0:
            raise ValueError(f"contrastive loss: margin must be positive, got {margin}")
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"contrastive loss: unknown reduction {reduction!r}")
        self.margin = margin
        self.eps = eps
        self.reduction: Reduction = reduction

    def forward(
        self, first: torch.Tensor, second: torch.Tensor, similar: torch.Tensor
    ) -> torch.Tensor:
        """``first`` and ``second``: ``(pairs, dim)`` embeddings; ``similar``: ``(pairs,)``."""
        if first.shape != second.shape or first.dim() != 2:
            raise ValueError(
                f"contrastive loss: expected two (pairs, dim) embeddings of one shape, got "
                f"{tuple(first.shape)} and {tuple(second.shape)}"
            )
        if similar.shape != first.shape[:1]:
            raise ValueError(
                f"contrastive loss: expected ({first.shape[0]},) labels, got {tuple(similar.shape)}"
            )
        target = similar.to(first.dtype)
        squared = (first - second).pow(2).sum(dim=1)
        distance = squared.clamp_min(self.eps).sqrt()
        dissimilar = torch.clamp(self.margin - distance, min=0.0).pow(2)
        return _reduce(target * squared + (1 - target) * dissimilar, self.reduction)


def build_loss(name: str, **options: Any) -> nn.Module:
    """A loss by name: ``bce`` and ``cross_entropy`` are torch's ``BCEWithLogitsLoss`` and
    ``CrossEntropyLoss``; ``focal`` and ``contrastive`` are defined here. ``options`` go to
    the constructor."""
    if name == "bce":
        return nn.BCEWithLogitsLoss(**options)
    if name == "cross_entropy":
        return nn.CrossEntropyLoss(**options)
    if name == "focal":
        return FocalLoss(**options)
    if name == "contrastive":
        return ContrastiveLoss(**options)
    raise ValueError(f"unknown loss {name!r} (known: {', '.join(LOSS_NAMES)})")
