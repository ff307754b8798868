"""Formatting: FormatGCNInput (persons, clips), Rename, Collect and ToTensor."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from mmcv.transforms import BaseTransform

from skeletonagent.registry import TRANSFORMS

from ._utils import require, require_skeleton

__all__ = ['FormatGCNInput', 'Rename', 'Collect', 'ToTensor', 'to_tensor']


def to_tensor(data: Any) -> torch.Tensor:
    """Tensor from an array (shared memory), a tensor, a sequence, an int or a float."""
    if isinstance(data, torch.Tensor):
        return data
    if isinstance(data, np.ndarray):
        return torch.from_numpy(data)
    if isinstance(data, Sequence) and not isinstance(data, str):
        return torch.tensor(data)
    if isinstance(data, (int, np.integer)):
        return torch.LongTensor([int(data)])
    if isinstance(data, (float, np.floating)):
        return torch.FloatTensor([float(data)])
    raise TypeError(f'type {type(data).__name__} cannot be converted to tensor')


@TRANSFORMS.register_module()
class FormatGCNInput(BaseTransform):
    """Shape ``keypoint`` M×(nc·T)×V×C into nc×``num_person``×T×V×C (contiguous).

    ``keypoint_score`` is appended as a channel if present; extra persons are dropped;
    missing persons are zeros (``mode='zero'``) or, for a single person, copies of it
    (``mode='loop'``, as mmaction2 does; PYSKL checks the person count after padding, so
    its 'loop' pads zeros).
    """

    def __init__(self, num_person: int = 2, mode: str = 'zero') -> None:
        if mode not in ('zero', 'loop'):
            raise ValueError(f"FormatGCNInput mode must be 'zero' or 'loop', got {mode!r}")
        self.num_person = num_person
        self.mode = mode

    def transform(self, results: dict) -> dict:
        keypoint = require_skeleton(results)
        if 'keypoint_score' in results:
            keypoint = np.concatenate((keypoint, results['keypoint_score'][..., None]), axis=-1)
        M, T, V, C = keypoint.shape
        num_clips = int(results.get('num_clips', 1))
        if T % num_clips:
            raise ValueError(f"field 'keypoint' has {T} frames, not a multiple of "
                             f'num_clips={num_clips}')
        clip_len = T // num_clips
        kept = min(M, self.num_person)
        clips = keypoint[:kept].reshape(kept, num_clips, clip_len, V, C).transpose(1, 0, 2, 3, 4)
        out = np.empty((num_clips, self.num_person, clip_len, V, C), dtype=keypoint.dtype)
        out[:, :kept] = clips
        if kept < self.num_person:
            out[:, kept:] = clips[:, :1] if (self.mode == 'loop' and kept == 1) else 0
        results['keypoint'] = out
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(num_person={self.num_person}, mode={self.mode})'


@TRANSFORMS.register_module()
class Rename(BaseTransform):
    """Rename fields: ``mapping`` old name → new name (absent old names are skipped)."""

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self.mapping = dict(mapping)

    def transform(self, results: dict) -> dict:
        for old, new in self.mapping.items():
            if old in results:
                if new in results:
                    raise KeyError(f'cannot rename {old!r} to {new!r}: {new!r} exists')
                results[new] = results.pop(old)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(mapping={self.mapping})'


@TRANSFORMS.register_module()
class Collect(BaseTransform):
    """Keep only ``keys`` (and ``meta_keys`` gathered as a dict under ``meta_name``).

    mmcv 2 has no DataContainer, so the meta dict is stored as a plain dict. ``nested``
    wraps every value in a list (PYSKL compatibility).
    """

    def __init__(self, keys: Sequence[str],
                 meta_keys: Sequence[str] = ('filename', 'label', 'original_shape', 'img_shape',
                                             'pad_shape', 'flip_direction', 'img_norm_cfg'),
                 meta_name: str = 'img_metas', nested: bool = False) -> None:
        self.keys = list(keys)
        self.meta_keys = list(meta_keys)
        self.meta_name = meta_name
        self.nested = nested

    def transform(self, results: dict) -> dict:
        data = {key: require(results, key) for key in self.keys}
        if self.meta_keys:
            data[self.meta_name] = {key: require(results, key) for key in self.meta_keys}
        if self.nested:
            data = {key: [value] for key, value in data.items()}
        return data

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(keys={self.keys}, meta_keys={self.meta_keys}, '
                f'nested={self.nested})')


@TRANSFORMS.register_module()
class ToTensor(BaseTransform):
    """Convert ``keys`` to tensors (arrays share memory: no copy)."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = list(keys)

    def transform(self, results: dict) -> dict:
        for key in self.keys:
            results[key] = to_tensor(require(results, key))
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(keys={self.keys})'
