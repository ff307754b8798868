"""Classification losses: cross entropy (hard or soft labels) and the mixup soft-label CE."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from skeletonagent.registry import MODELS

__all__ = ['BaseWeightedLoss', 'CrossEntropyLoss', 'SoftCrossEntropyLoss', 'soft_cross_entropy']


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over samples of ``-Σ_k target[k]·log_softmax(logits)[k]`` (N×K logits and targets)."""
    if logits.shape != target.shape or logits.dim() != 2:
        raise ValueError(f'soft_cross_entropy: logits {tuple(logits.shape)} and target '
                         f'{tuple(target.shape)} must be the same N×K shape')
    return -(F.log_softmax(logits, dim=1) * target).sum(1).mean()


class BaseWeightedLoss(nn.Module):
    """A loss whose value is multiplied by ``loss_weight`` (PYSKL's ``BaseWeightedLoss``)."""

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    def _forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self._forward(*args, **kwargs) * self.loss_weight


@MODELS.register_module()
class CrossEntropyLoss(BaseWeightedLoss):
    """Cross entropy with hard labels (N, long) or soft labels (N×K, same shape as the scores).

    Args:
        loss_weight: factor on the loss.
        class_weight: optional per-class weights (as PYSKL: weighted mean for hard labels,
            ``Σ loss / Σ weight·label`` for soft labels).
    """

    def __init__(self, loss_weight: float = 1.0, class_weight: Sequence[float] | None = None) -> None:
        super().__init__(loss_weight)
        self.class_weight = None if class_weight is None else torch.tensor(class_weight, dtype=torch.float32)

    def _forward(self, cls_score: torch.Tensor, label: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        weight = None if self.class_weight is None else self.class_weight.to(cls_score.device)
        if cls_score.shape == label.shape:
            if cls_score.dim() != 2:
                raise ValueError(f'CrossEntropyLoss: soft labels must be N×K, got {tuple(label.shape)}')
            if kwargs:
                raise ValueError(f'CrossEntropyLoss: no extra arguments are supported with soft labels, '
                                 f'got {sorted(kwargs)}')
            lsm = F.log_softmax(cls_score, 1)
            if weight is None:
                return -(label * lsm).sum(1).mean()
            return -(label * lsm * weight[None]).sum() / (weight[None] * label).sum()
        if weight is not None:
            if 'weight' in kwargs:
                raise ValueError("CrossEntropyLoss: 'weight' given both as class_weight and as an argument")
            kwargs['weight'] = weight
        return F.cross_entropy(cls_score, label, **kwargs)


@MODELS.register_module()
class SoftCrossEntropyLoss(BaseWeightedLoss):
    """Soft-label cross entropy of the mixed half of a batch (official ``mix_chunk``'s ``cls_mix``)."""

    def _forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return soft_cross_entropy(logits, target)
