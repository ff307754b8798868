"""Skeleton features: bones, k-bones, motion, and their merge (GenSkeFeat: j b k jm bm km)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from mmcv.transforms import BaseTransform

from skeletonagent.registry import TRANSFORMS
from skeletonagent.skeleton import get_layout

from ._utils import check_layout, merge_score, require, require_skeleton

__all__ = ['JointToBone', 'JointToKB', 'ToMotion', 'MergeSkeFeat', 'GenSkeFeat', 'FEATURES']

#: The features GenSkeFeat knows: joint, bone, k-bone and their motions.
FEATURES = ('j', 'b', 'k', 'jm', 'bm', 'km')


def _pair_arrays(pairs: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """(first joints, second joints) of pairs sorted by first joint."""
    pairs_array = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return pairs_array[:, 0], pairs_array[:, 1]


def _pair_difference(keypoint: np.ndarray, first: np.ndarray, second: np.ndarray,
                     average_score: bool) -> np.ndarray:
    """``out[..., v1, :] = kp[..., v1, :] - kp[..., v2, :]`` for every pair, float32.

    Joints that are no pair's first element stay 0. With ``average_score`` (2D + score
    layouts), channel 2 holds the mean score of the two joints instead.
    """
    M, T, V, C = keypoint.shape
    if C not in (2, 3):
        raise ValueError(f"field 'keypoint' must have C in (2, 3), got shape {keypoint.shape}")
    if len(first) == V and np.array_equal(first, np.arange(V)):
        out = np.subtract(keypoint, keypoint[:, :, second], dtype=np.float32)
    else:
        out = np.zeros((M, T, V, C), dtype=np.float32)
        out[:, :, first] = keypoint[:, :, first] - keypoint[:, :, second]
    if C == 3 and average_score:
        out[..., first, 2] = (keypoint[..., first, 2] + keypoint[..., second, 2]) / 2
    return out


class _PairFeature(BaseTransform):
    """Shared code of JointToBone and JointToKB (pairs taken from the layout)."""

    pairs_attr = 'bone_pairs'

    def __init__(self, dataset: str = 'nturgb+d', target: str = 'keypoint') -> None:
        self.dataset = dataset
        self.target = target
        self.layout = get_layout(dataset)
        self.input_joints = self.layout.num_joints
        pairs = sorted(getattr(self.layout, self.pairs_attr))
        self.pairs = tuple(pairs)
        self._first, self._second = _pair_arrays(pairs)

    def transform(self, results: dict) -> dict:
        keypoint = require_skeleton(results)
        check_layout(self.layout, keypoint)
        results[self.target] = _pair_difference(keypoint, self._first, self._second,
                                                self.layout.score_channel_pairs)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(dataset={self.dataset!r}, target={self.target!r})'


@TRANSFORMS.register_module()
class JointToBone(_PairFeature):
    """Bones: ``bone[v1] = j[v1] - j[v2]`` for the layout's ``bone_pairs`` (float32)."""

    pairs_attr = 'bone_pairs'


@TRANSFORMS.register_module()
class JointToKB(_PairFeature):
    """K-bones: ``kb[v1] = j[v1] - j[v2]`` for the layout's ``kbone_pairs`` (float32)."""

    pairs_attr = 'kbone_pairs'


def _motion(data: np.ndarray, average_score: bool) -> np.ndarray:
    """Frame differences ``data[:, t+1] - data[:, t]``; the last frame is 0."""
    M, T, V, C = data.shape
    if C not in (2, 3):
        raise ValueError(f'motion needs C in (2, 3), got shape {data.shape}')
    motion = np.empty_like(data)
    np.subtract(data[:, 1:], data[:, :-1], out=motion[:, :T - 1])
    motion[:, T - 1:] = 0
    if C == 3 and average_score:
        motion[:, :T - 1, :, 2] = (data[:, :T - 1, :, 2] + data[:, 1:, :, 2]) / 2
    return motion


@TRANSFORMS.register_module()
class ToMotion(BaseTransform):
    """Motion of ``source``: frame-to-frame differences, zero at the last frame."""

    def __init__(self, dataset: str = 'nturgb+d', source: str = 'keypoint',
                 target: str = 'motion') -> None:
        self.dataset = dataset
        self.source = source
        self.target = target
        self.layout = get_layout(dataset)

    def transform(self, results: dict) -> dict:
        data = require_skeleton(results, self.source)
        results[self.target] = _motion(data, self.layout.score_channel_pairs)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(dataset={self.dataset!r}, source={self.source!r}, '
                f'target={self.target!r})')


@TRANSFORMS.register_module()
class MergeSkeFeat(BaseTransform):
    """Pop the features ``feat_list`` and concatenate them along ``axis`` into ``target``."""

    def __init__(self, feat_list: Sequence[str] = ('keypoint',), target: str = 'keypoint',
                 axis: int = -1) -> None:
        self.feat_list = list(feat_list)
        self.target = target
        self.axis = axis

    def transform(self, results: dict) -> dict:
        feats = [require(results, name) for name in self.feat_list]
        for name in self.feat_list:
            del results[name]
        # One feature needs no concatenation (which would copy it).
        results[self.target] = feats[0] if len(feats) == 1 else np.concatenate(feats, self.axis)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(feat_list={self.feat_list}, target={self.target!r}, '
                f'axis={self.axis})')


@TRANSFORMS.register_module()
class GenSkeFeat(BaseTransform):
    """Compute the features ``feats`` (any of j, b, k, jm, bm, km) into ``keypoint``.

    ``keypoint_score`` is first appended to 2D keypoints as a channel. The features are
    concatenated along ``axis`` in the order given. Unlike PYSKL, the intermediate
    features that were not asked for (e.g. 'b' for feats=['bm']) are not left behind.
    """

    def __init__(self, dataset: str = 'nturgb+d', feats: Sequence[str] = ('j',),
                 axis: int = -1) -> None:
        unknown = [f for f in feats if f not in FEATURES]
        if unknown or not feats:
            raise ValueError(f'GenSkeFeat feats must be a non-empty list of {FEATURES}, '
                             f'got {list(feats)}')
        self.dataset = dataset
        self.feats = list(feats)
        self.axis = axis
        self.layout = get_layout(dataset)
        self.input_joints = self.layout.num_joints
        self._bone = _pair_arrays(sorted(self.layout.bone_pairs))
        self._kbone = _pair_arrays(sorted(self.layout.kbone_pairs))

    def transform(self, results: dict) -> dict:
        merge_score(results, type(self).__name__, self.dataset)
        joints = require_skeleton(results)
        check_layout(self.layout, joints)
        average = self.layout.score_channel_pairs
        computed: dict[str, np.ndarray] = {'j': joints}
        for feat in self.feats:
            base = feat[0]
            if base not in computed:
                pairs = self._bone if base == 'b' else self._kbone
                computed[base] = _pair_difference(joints, *pairs, average)
            if feat.endswith('m') and feat not in computed:
                computed[feat] = _motion(computed[base], average)
        feats = [computed[f] for f in self.feats]
        results['keypoint'] = feats[0] if len(feats) == 1 else np.concatenate(feats, self.axis)
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(dataset={self.dataset!r}, feats={self.feats}, '
                f'axis={self.axis})')
