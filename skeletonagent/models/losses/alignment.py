"""Skeleton–text alignment: scaled cosine logits and the bidirectional KL loss (official ``KLLoss``)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from skeletonagent.registry import MODELS

__all__ = ['KLLoss', 'AlignmentLoss', 'create_logits', 'same_label_matrix']


def create_logits(x1: torch.Tensor, x2: torch.Tensor,
                  logit_scale: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine similarities of the rows of ``x1`` (N×D) and ``x2`` (M×D), times ``logit_scale``.

    The scale is used as given (the official code multiplies by the raw parameter, with no
    ``exp``). Returns ``(logits N×M, logits M×N)``.
    """
    x1 = x1 / x1.norm(dim=-1, keepdim=True)
    x2 = x2 / x2.norm(dim=-1, keepdim=True)
    return logit_scale * x1 @ x2.t(), logit_scale * x2 @ x1.t()


def same_label_matrix(labels: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """N×N matrix, 1 where samples ``i`` and ``k`` share a label (official ``get_label_gt``)."""
    labels = labels.reshape(-1)
    return (labels[:, None] == labels[None, :]).to(dtype)


@MODELS.register_module()
class KLLoss(nn.Module):
    """``KL(softmax(10·target) ‖ softmax(prediction))`` summed, divided by the number of columns."""

    def __init__(self, target_scale: float = 10.0) -> None:
        super().__init__()
        self.target_scale = target_scale

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_prob = F.log_softmax(prediction, 1)
        target_prob = F.softmax(target * self.target_scale, 1)
        return F.kl_div(log_prob, target_prob, reduction='sum') / prediction.shape[1]


@MODELS.register_module()
class AlignmentLoss(nn.Module):
    """Bidirectional skeleton↔text KL alignment: the mean of :class:`KLLoss` over both logit
    directions, the target being the same-label matrix of the batch."""

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        self.kl = KLLoss()

    def forward(self, skeleton_embedding: torch.Tensor, text_embedding: torch.Tensor,
                logit_scale: torch.Tensor | float, labels: torch.Tensor) -> torch.Tensor:
        if skeleton_embedding.shape != text_embedding.shape:
            raise ValueError(f'AlignmentLoss: skeleton embedding {tuple(skeleton_embedding.shape)} and '
                             f'text embedding {tuple(text_embedding.shape)} must have the same N×D shape')
        per_skeleton, per_text = create_logits(skeleton_embedding, text_embedding, logit_scale)
        target = same_label_matrix(labels, skeleton_embedding.dtype)
        loss = (self.kl(per_skeleton, target) + self.kl(per_text, target)) / 2
        return loss * self.loss_weight
