"""``GCNHead``: PYSKL's classification head for GCN features (the ST-GCN++ baseline)."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from skeletonagent.registry import MODELS

from .base import PooledLinearHead
from .simple_head import top_k_accuracy

__all__ = ['GCNHead']


@MODELS.register_module()
class GCNHead(PooledLinearHead):
    """Average over joints and frames, then over persons, dropout, linear classifier
    (PYSKL ``GCNHead``). State dict: ``fc_cls.weight`` (num_classes×in_channels), ``fc_cls.bias``.

    Args:
        num_classes, in_channels: classifier size.
        loss_cls: classification loss config (default ``CrossEntropyLoss``).
        dropout: dropout ratio before the classifier (PYSKL default 0).
        init_std: std of the classifier's normal initialisation.
        multi_class, label_smooth_eps: PYSKL's ``BaseHead`` arguments. Multi-label
            classification is not supported; PYSKL applies ``label_smooth_eps`` only to
            multi-label targets, so with single labels it has no effect (here either).
    """

    def __init__(self, num_classes: int, in_channels: int, loss_cls: dict | None = None,
                 dropout: float = 0., init_std: float = 0.01, multi_class: bool = False,
                 label_smooth_eps: float = 0., **kwargs: Any) -> None:
        super().__init__()
        kwargs.pop('mode', None)  # PYSKL's SimpleHead passes mode='GCN'
        if kwargs:
            raise TypeError(f'GCNHead: unexpected keyword arguments {sorted(kwargs)}')
        if multi_class:
            raise ValueError('GCNHead: multi_class is not supported')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.in_c = in_channels
        self.multi_class = multi_class
        self.label_smooth_eps = label_smooth_eps
        self.dropout_ratio = dropout
        self.init_std = init_std
        self.loss_cls = MODELS.build(loss_cls if loss_cls is not None else dict(type='CrossEntropyLoss'))
        self.dropout = nn.Dropout(p=dropout) if dropout != 0 else None
        self.fc_cls = nn.Linear(in_channels, num_classes)

    def loss(self, cls_score: torch.Tensor, label: torch.Tensor, **kwargs: Any) -> dict[str, torch.Tensor]:
        """``loss_cls`` and top-1/top-5 accuracy (PYSKL ``BaseHead.loss``); ``label`` is N (long).
        Extra keyword arguments go to the loss."""
        label = label.reshape(-1)
        top1, top5 = top_k_accuracy(cls_score.detach(), label, (1, 5))
        loss = self.loss_cls(cls_score, label, **kwargs)
        losses = dict(loss) if isinstance(loss, dict) else dict(loss_cls=loss)
        losses['top1_acc'] = top1
        losses['top5_acc'] = top5
        return losses
