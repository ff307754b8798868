"""Losses: cross entropy (hard/soft), mixup soft CE, skeleton–text KL alignment."""
from .alignment import AlignmentLoss, KLLoss, create_logits, same_label_matrix
from .cross_entropy import BaseWeightedLoss, CrossEntropyLoss, SoftCrossEntropyLoss, soft_cross_entropy

__all__ = ['AlignmentLoss', 'KLLoss', 'create_logits', 'same_label_matrix', 'BaseWeightedLoss',
           'CrossEntropyLoss', 'SoftCrossEntropyLoss', 'soft_cross_entropy']
