"""``SimpleHead``: pooled features → class logits, and the SkeletonAgent training losses."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from skeletonagent.registry import MODELS

from ..losses import AlignmentLoss, soft_cross_entropy
from .base import PooledLinearHead

__all__ = ['SimpleHead', 'SimpleHead_Semi', 'top_k_accuracy']


def top_k_accuracy(scores: torch.Tensor, labels: torch.Tensor, topk: tuple[int, ...] = (1, 5)) -> list[torch.Tensor]:
    """Fraction of samples whose label is among the ``k`` highest scores, for every ``k``
    (``k`` is capped at the number of classes)."""
    labels = labels.reshape(-1, 1)
    max_k = min(max(topk), scores.shape[1])
    ranked = scores.topk(max_k, dim=1).indices
    hits = ranked == labels
    return [hits[:, :min(k, max_k)].any(1).float().mean() for k in topk]


@MODELS.register_module()
class SimpleHead(PooledLinearHead):
    """Linear classifier on globally pooled GCN features, plus the SkeletonAgent loss.

    The total training loss (official ``BaseHead.loss``) is
    ``CE(clean) + softCE(mixed) + weight_1·CE(local logits) + weight_2·KL-alignment``;
    :meth:`loss` returns the four terms already weighted, so their sum is the official loss.

    Args:
        joint_cfg: skeleton layout name (the recognizer takes the mixup body parts from it).
        num_classes, in_channels: classifier size.
        work_dir, interval_epoch: kept for the agent (the official head ran the LLM dialogue
            from here); the head itself does not use them.
        weight_1: weight of the joint-constraint (local) cross entropy.
        weight_2: weight of the skeleton–text alignment loss.
        loss_cls: config of the classification loss (also used for the local logits).
        dropout: dropout ratio before the classifier.
        init_std: std of the classifier's normal initialisation.
        mode: 'GCN' pools N×M×C×T×V features over M, T and V.
    """

    #: Whether the head belongs to a model trained from fixed texts (see SimpleHead_Semi).
    fixed_texts: bool = False

    def __init__(self, joint_cfg: str, num_classes: int, in_channels: int, work_dir: str | None = None,
                 interval_epoch: int = 5, weight_1: float = 0.2, weight_2: float = 0.5,
                 loss_cls: dict | None = None, dropout: float = 0., init_std: float = 0.01,
                 mode: str = 'GCN', **kwargs: Any) -> None:
        super().__init__()
        if kwargs.get('multi_class', False):
            raise ValueError('SimpleHead: multi_class is not supported by the SkeletonAgent losses')
        kwargs.pop('multi_class', None)
        kwargs.pop('label_smooth_eps', None)
        if kwargs:
            raise TypeError(f'SimpleHead: unexpected keyword arguments {sorted(kwargs)}')
        if mode != 'GCN':
            raise ValueError(f"SimpleHead: only mode='GCN' is supported, got {mode!r}")
        loss_cls = dict(type='CrossEntropyLoss', loss_weight=1.0) if loss_cls is None else loss_cls
        self.joint_cfg = joint_cfg
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.in_c = in_channels
        self.work_dir = work_dir
        self.interval_epoch = interval_epoch
        self.weight_1 = weight_1
        self.weight_2 = weight_2
        self.dropout_ratio = dropout
        self.init_std = init_std
        self.mode = mode
        self.cls_loss = MODELS.build(loss_cls)
        self.con_loss = MODELS.build(loss_cls)
        self.align_loss = AlignmentLoss()
        self.dropout = nn.Dropout(p=dropout) if dropout != 0 else None
        self.fc_cls = nn.Linear(in_channels, num_classes)

    def loss(self, cls_score: torch.Tensor, label: torch.Tensor, mix_score: torch.Tensor | None = None,
             mix_label: torch.Tensor | None = None, local_logits: torch.Tensor | None = None,
             global_embedding: torch.Tensor | None = None, text_embedding: torch.Tensor | None = None,
             logit_scale: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The weighted loss terms and top-1/top-5 accuracy of the clean half.

        Args:
            cls_score: N×Class logits of the clean samples; label: N (long).
            mix_score, mix_label: N×Class logits and soft labels of the mixed samples.
            local_logits: N×Class joint-constraint logits of the clean samples.
            global_embedding, text_embedding: N×D skeleton and text embeddings.
            logit_scale: the backbone's ``logit_scale`` parameter (1×1, used without ``exp``).

        Returns:
            dict(loss_cls, loss_mix, loss_constraint, loss_align, top1_acc, top5_acc); a term
            whose inputs are not given is absent.
        """
        label = label.reshape(-1)
        losses: dict[str, torch.Tensor] = {}
        top1, top5 = top_k_accuracy(cls_score.detach(), label, (1, 5))
        losses['loss_cls'] = self.cls_loss(cls_score, label)
        if mix_score is not None:
            losses['loss_mix'] = soft_cross_entropy(mix_score, mix_label)
        if local_logits is not None:
            losses['loss_constraint'] = self.weight_1 * self.con_loss(local_logits, label)
        if global_embedding is not None:
            if text_embedding is None or logit_scale is None:
                raise ValueError('SimpleHead.loss: the alignment loss needs text embeddings and logit_scale')
            scale = logit_scale[:, 0].mean() if torch.is_tensor(logit_scale) and logit_scale.dim() == 2 \
                else logit_scale
            losses['loss_align'] = self.weight_2 * self.align_loss(
                global_embedding, text_embedding.to(global_embedding.dtype), scale, label)
        losses['top1_acc'] = top1
        losses['top5_acc'] = top5
        return losses


@MODELS.register_module()
@MODELS.register_module(name='BaseHead_Semi')
class SimpleHead_Semi(SimpleHead):  # noqa: N801 - the official name
    """The official "semi" head (``SimpleHead_Semi``; ``BaseHead_Semi`` names the same): the
    same head and losses, for a model that trains from fixed texts with no agent rounds (see
    :class:`~skeletonagent.models.recognizers.RecognizerGCN_Semi`)."""

    fixed_texts = True
