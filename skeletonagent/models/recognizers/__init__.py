"""Recognizers and the skeleton mixup."""
from .mixup import MixInfo, skeleton_part_mix, split_mixed_batch
from .recognizer_gcn import RecognizerGCN, RecognizerGCN_Semi, average_clip

__all__ = ['RecognizerGCN', 'RecognizerGCN_Semi', 'average_clip', 'MixInfo', 'skeleton_part_mix', 'split_mixed_batch']
