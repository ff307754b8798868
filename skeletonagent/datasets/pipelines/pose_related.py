"""Pose transforms: normalisation, rotation, flips, part drop and the Kinetics 17→20 joints.

Joint topology (centres, left/right, body parts, derived joints) comes from
:mod:`skeletonagent.skeleton`. Random draws use the same generators, in the same order, as
PYSKL and the official SkeletonAgent code (NumPy's global RNG, or Python's ``random`` where
they use it), so one seed gives one output. No transform writes into its input arrays.
"""
from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
from mmcv.transforms import BaseTransform

from skeletonagent.registry import TRANSFORMS
from skeletonagent.skeleton import Layout, get_layout

from ._utils import ZERO_ATOL, check_layout, layout_for, merge_score, require, require_skeleton

__all__ = ['PreNormalize3D', 'PreNormalize2D', 'RandomRot', 'Spatial_Flip', 'Part_Drop', 'Flip',
           'Kinetics_Transform']


def _float_dtype(array: np.ndarray) -> np.dtype:
    """The array's dtype if it is float32/float64, else float32."""
    return array.dtype if array.dtype in (np.float32, np.float64) else np.dtype(np.float32)


def _angle_between(v1: np.ndarray, v2: np.ndarray) -> float:
    """Angle in radians between two vectors (0 when either is (nearly) zero)."""
    if np.abs(v1).sum() < 1e-6 or np.abs(v2).sum() < 1e-6:
        return 0.0
    v1 = v1 / np.linalg.norm(v1)
    v2 = v2 / np.linalg.norm(v2)
    return float(np.arccos(np.clip(np.dot(v1, v2), -1.0, 1.0)))


def _rotation_matrix(axis: np.ndarray, theta: float) -> np.ndarray:
    """Rotation by ``theta`` radians about ``axis`` (Euler–Rodrigues; identity if degenerate)."""
    if np.abs(axis).sum() < 1e-6 or abs(theta) < 1e-6:
        return np.eye(3)
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.sqrt(np.dot(axis, axis))
    a = np.cos(theta / 2.0)
    b, c, d = -axis * np.sin(theta / 2.0)
    aa, bb, cc, dd = a * a, b * b, c * c, d * d
    bc, ad, ac, ab, bd, cd = b * c, a * d, a * c, a * b, b * d, c * d
    return np.array([[aa + bb - cc - dd, 2 * (bc + ad), 2 * (bd - ac)],
                     [2 * (bc - ad), aa + cc - bb - dd, 2 * (cd + ab)],
                     [2 * (bd + ac), 2 * (cd - ab), aa + dd - bb - cc]])


def _apply_linear(skeleton: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``out[..., a] = sum_b matrix[a, b] * skeleton[..., b]`` in the skeleton's float dtype."""
    dtype = _float_dtype(skeleton)
    flat = skeleton.reshape(-1, skeleton.shape[-1]).astype(dtype, copy=False)
    return (flat @ matrix.T.astype(dtype)).reshape(skeleton.shape)


def _nonzero_frames(keypoint: np.ndarray) -> np.ndarray:
    """M×T mask of frames where a person has any coordinate not close to 0.

    Matches PYSKL's ``not np.all(np.isclose(kp[m, t], 0))`` (NaN counts as non-zero).
    """
    M, T = keypoint.shape[:2]
    return ~(np.abs(keypoint.reshape(M, T, -1)) <= ZERO_ATOL).all(-1)


@TRANSFORMS.register_module()
class PreNormalize3D(BaseTransform):
    """Normalise 3D skeletons (NTU RGB+D) as 2s-AGCN / PYSKL do.

    Frames where the main person is absent are dropped (with two persons, the one present
    in more frames becomes person 0); ``align_center`` moves the layout's
    ``norm_center`` joint of the first frame to the origin (missing joints stay 0);
    ``align_spine`` rotates so that ``zaxis`` (bottom→top joint) points along +z, then so
    that ``xaxis`` (right→left shoulder) points along +x. Sets ``total_frames`` and
    ``body_center``.

    Args:
        zaxis: (bottom, top) joints; default: the layout's pelvis and middle of the spine.
        xaxis: (right shoulder, left shoulder) joints; default from the layout.
        align_spine: rotate the skeleton as described.
        align_center: translate the skeleton as described.
        dataset: layout name; by default the first known layout with the input's number of
            joints (NTU RGB+D for 25), whose ``norm_center`` is the official choice.
    """

    def __init__(self, zaxis: Sequence[int] | None = None, xaxis: Sequence[int] | None = None,
                 align_spine: bool = True, align_center: bool = True,
                 dataset: str | None = None) -> None:
        self.zaxis = tuple(zaxis) if zaxis is not None else None
        self.xaxis = tuple(xaxis) if xaxis is not None else None
        self.align_spine = align_spine
        self.align_center = align_center
        self.dataset = dataset
        self.input_joints = get_layout(dataset).num_joints if dataset is not None else None

    def _axes(self, layout: Layout | None) -> tuple[tuple[int, int], tuple[int, int]]:
        zaxis, xaxis = self.zaxis, self.xaxis
        try:
            if zaxis is None:
                zaxis = (layout.index('pelvis'), layout.index('middle of the spine'))
            if xaxis is None:
                xaxis = (layout.index('right shoulder'), layout.index('left shoulder'))
        except (AttributeError, KeyError) as error:
            name = layout.name if layout is not None else 'unknown'
            raise ValueError(f'PreNormalize3D cannot find default spine/shoulder joints in layout '
                             f'{name!r}; give zaxis= and xaxis=') from error
        return zaxis, xaxis

    def transform(self, results: dict) -> dict:
        keypoint = require_skeleton(results)
        M, T, V, C = keypoint.shape
        total_frames = results.get('total_frames', T)
        if T != total_frames:
            raise ValueError(f"field 'total_frames' is {total_frames} but 'keypoint' has {T} "
                             f'frames (shape {keypoint.shape})')
        if keypoint.sum() == 0:
            return results
        if M not in (1, 2):
            raise ValueError(f"PreNormalize3D takes 1 or 2 persons, field 'keypoint' has {M}")
        layout = layout_for(self.dataset, V)
        if layout is not None:
            check_layout(layout, keypoint)

        valid = _nonzero_frames(keypoint)
        swap = M == 2 and valid[0].sum() < valid[1].sum()
        frames = valid[1] if swap else valid[0]
        if not frames.any():
            raise ValueError("field 'keypoint' has no frame with a non-zero main person")
        skeleton = keypoint[::-1] if swap else keypoint
        if not frames.all():
            skeleton = skeleton[:, frames]
        dtype = _float_dtype(skeleton)

        center = None
        if self.align_center:
            center_joint = layout.norm_center if layout is not None else V - 1
            center = skeleton[0, 0, center_joint].astype(dtype)  # a copy
            present = (skeleton != 0).any(-1, keepdims=True)
            skeleton = np.subtract(skeleton, center, dtype=dtype)
            skeleton *= present

        if self.align_spine:
            if C != 3:
                raise ValueError(f"align_spine needs 3D joints, field 'keypoint' has C={C}")
            (bottom, top), (rshoulder, lshoulder) = self._axes(layout)
            first = skeleton[0, 0]
            spine = (first[top] - first[bottom]).astype(np.float64)
            rot_z = _rotation_matrix(np.cross(spine, [0, 0, 1]), _angle_between(spine, [0, 0, 1]))
            shoulders = rot_z @ first[rshoulder].astype(np.float64) \
                - rot_z @ first[lshoulder].astype(np.float64)
            rot_x = _rotation_matrix(np.cross(shoulders, [1, 0, 0]),
                                     _angle_between(shoulders, [1, 0, 0]))
            skeleton = _apply_linear(skeleton, rot_x @ rot_z)

        if skeleton is keypoint:  # nothing changed: still never hand out the input array
            skeleton = keypoint.copy()
        results['keypoint'] = skeleton
        results['total_frames'] = skeleton.shape[1]
        if center is not None:
            results['body_center'] = center
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(zaxis={self.zaxis}, xaxis={self.xaxis}, '
                f'align_spine={self.align_spine}, align_center={self.align_center}, '
                f'dataset={self.dataset!r})')


@TRANSFORMS.register_module()
class PreNormalize2D(BaseTransform):
    """Map 2D pixel coordinates to [-1, 1] around the image centre (PYSKL).

    ``img_shape`` (h, w) comes from the sample or the default. With a third (score)
    channel, joints whose score is at or below ``threshold`` get x = y = 0.
    """

    def __init__(self, img_shape: tuple[int, int] = (1080, 1920), threshold: float = 0.01,
                 mode: str = 'fix') -> None:
        self.img_shape = tuple(img_shape)
        self.threshold = threshold
        self.mode = mode

    def transform(self, results: dict) -> dict:
        keypoint = require_skeleton(results)
        h, w = results.get('img_shape', self.img_shape)
        out = keypoint.astype(_float_dtype(keypoint), copy=True)
        out[..., 0] = (keypoint[..., 0] - w / 2) / (w / 2)
        out[..., 1] = (keypoint[..., 1] - h / 2) / (h / 2)
        if keypoint.shape[-1] == 3:
            low = keypoint[..., 2] <= self.threshold
            out[..., :2][low] = 0
        results['keypoint'] = out
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(img_shape={self.img_shape}, threshold={self.threshold}, '
                f'mode={self.mode!r})')


@TRANSFORMS.register_module()
class RandomRot(BaseTransform):
    """Rotate the skeleton by random angles (3D: about x, y, z; 2D: in the plane).

    3D: ``theta ~ U(-theta, theta)`` per axis, rotation ``Rz @ Ry @ Rx``. 2D: PYSKL draws
    ``np.random.uniform(-theta)``, i.e. an angle in ``[-theta, 1)``; this is kept so the same
    seed gives the same output. All-zero skeletons are returned unchanged (no draw).
    """

    def __init__(self, theta: float = 0.3) -> None:
        self.theta = theta

    @staticmethod
    def _rot3d(theta: np.ndarray) -> np.ndarray:
        cos, sin = np.cos(theta), np.sin(theta)
        rx = np.array([[1, 0, 0], [0, cos[0], sin[0]], [0, -sin[0], cos[0]]])
        ry = np.array([[cos[1], 0, -sin[1]], [0, 1, 0], [sin[1], 0, cos[1]]])
        rz = np.array([[cos[2], sin[2], 0], [-sin[2], cos[2], 0], [0, 0, 1]])
        return rz @ (ry @ rx)

    @staticmethod
    def _rot2d(theta: float) -> np.ndarray:
        cos, sin = np.cos(theta), np.sin(theta)
        return np.array([[cos, -sin], [sin, cos]])

    def transform(self, results: dict) -> dict:
        keypoint = require_skeleton(results, channels=(2, 3))
        if np.all(np.abs(keypoint) <= ZERO_ATOL):
            return results
        if keypoint.shape[-1] == 3:
            rot = self._rot3d(np.random.uniform(-self.theta, self.theta, size=3))
        else:
            rot = self._rot2d(np.random.uniform(-self.theta))
        results['keypoint'] = _apply_linear(keypoint, rot)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(theta={self.theta})'


@TRANSFORMS.register_module()
class Spatial_Flip(BaseTransform):  # noqa: N801 (the official name)
    """With probability ``p`` (Python ``random``), swap left and right joints (no mirroring
    of coordinates), as the official SkeletonAgent does."""

    def __init__(self, dataset: str = 'nturgb+d', p: float = 0.5) -> None:
        self.dataset = dataset
        self.p = p
        self.layout = get_layout(dataset)
        self.input_joints = self.layout.num_joints
        self._order = np.asarray(self.layout.flip_index)

    def transform(self, results: dict) -> dict:
        keypoint = require_skeleton(results)
        check_layout(self.layout, keypoint)
        if random.random() < self.p:
            results['keypoint'] = keypoint[:, :, self._order]
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(dataset={self.dataset!r}, p={self.p})'


@TRANSFORMS.register_module()
class Part_Drop(BaseTransform):  # noqa: N801 (the official name)
    """With probability ``p``, zero one limb chosen uniformly among left arm, left leg,
    right arm and right leg (Python ``random``, official order)."""

    PARTS = ('left_arm', 'left_leg', 'right_arm', 'right_leg')

    def __init__(self, p: float = 0.2, dataset: str = 'nturgb+d') -> None:
        self.p = p
        self.dataset = dataset
        self.layout = get_layout(dataset)
        self.input_joints = self.layout.num_joints
        missing = [part for part in self.PARTS if part not in self.layout.body_parts]
        if missing:
            raise ValueError(f'layout {dataset!r} has no body parts {missing} for Part_Drop')
        self._parts = [np.asarray(self.layout.body_parts[part]) for part in self.PARTS]

    def transform(self, results: dict) -> dict:
        keypoint = require_skeleton(results)
        check_layout(self.layout, keypoint)
        if random.random() < self.p:
            part = random.randint(0, 3)
            dropped = keypoint.copy()
            dropped[:, :, self._parts[part]] = 0
            results['keypoint'] = dropped
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(p={self.p}, dataset={self.dataset!r})'


@TRANSFORMS.register_module()
class Flip(BaseTransform):
    """Horizontal flip of 2D keypoints with probability ``flip_ratio`` (PYSKL's Flip).

    Non-zero x become ``img_width - x`` and left/right joints swap (``left_kp`` /
    ``right_kp``, or the layout's when ``dataset`` is given and they are not). Sets ``flip``
    and ``flip_direction``; ``flip_label_map`` remaps the label of flipped samples.
    """

    _directions = ('horizontal', 'vertical')

    def __init__(self, flip_ratio: float = 0.5, direction: str = 'horizontal',
                 flip_label_map: dict | None = None, left_kp: Sequence[int] | None = None,
                 right_kp: Sequence[int] | None = None, dataset: str | None = None) -> None:
        if direction not in self._directions:
            raise ValueError(f'Direction {direction} is not supported. '
                             f'Currently support ones are {list(self._directions)}')
        self.flip_ratio = flip_ratio
        self.direction = direction
        self.flip_label_map = flip_label_map
        self.input_joints = None
        if dataset is not None and left_kp is None and right_kp is None:
            layout = get_layout(dataset)
            left_kp, right_kp = layout.left, layout.right
            self.input_joints = layout.num_joints
        self.left_kp = None if left_kp is None else tuple(left_kp)
        self.right_kp = None if right_kp is None else tuple(right_kp)
        self.dataset = dataset

    def _order(self, num_joints: int) -> np.ndarray:
        order = np.arange(num_joints)
        if self.left_kp is not None and self.right_kp is not None:
            for left, right in zip(self.left_kp, self.right_kp):
                order[left], order[right] = right, left
        return order

    def transform(self, results: dict) -> dict:
        if 'keypoint' in results and self.direction != 'horizontal':
            raise ValueError('Only horizontal flips are supported for human keypoints')
        flip = np.random.rand() < self.flip_ratio
        results['flip'] = flip
        results['flip_direction'] = self.direction
        img_width = require(results, 'img_shape')[1]
        if self.flip_label_map is not None and flip:
            results['label'] = self.flip_label_map.get(results['label'], results['label'])
        if flip and 'keypoint' in results:
            keypoint = require_skeleton(results)
            order = self._order(keypoint.shape[2])
            flipped = keypoint[:, :, order]  # a new array
            x = flipped[..., 0]
            np.subtract(img_width, x, out=x, where=x != 0)
            results['keypoint'] = flipped
            if 'keypoint_score' in results:
                results['keypoint_score'] = results['keypoint_score'][:, :, order]
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(flip_ratio={self.flip_ratio}, '
                f'direction={self.direction}, flip_label_map={self.flip_label_map})')


@TRANSFORMS.register_module()
class Kinetics_Transform(BaseTransform):  # noqa: N801 (the official name)
    """Append the layout's derived joints (COCO 17 → ``coco_new`` 20: mid-hip, spine,
    neck), after merging ``keypoint_score`` into ``keypoint``. Output float32."""

    def __init__(self, dataset: str = 'coco_new') -> None:
        self.dataset = dataset
        self.layout = get_layout(dataset)
        if not self.layout.derived_joints:
            raise ValueError(f'layout {dataset!r} has no derived joints for Kinetics_Transform')
        self.input_joints = self.layout.num_joints - len(self.layout.derived_joints)

    def transform(self, results: dict) -> dict:
        merge_score(results, type(self).__name__, self.dataset)
        keypoint = require_skeleton(results)
        M, T, V, C = keypoint.shape
        num_derived = len(self.layout.derived_joints)
        if V + num_derived != self.layout.num_joints:
            raise ValueError(f"field 'keypoint' has {V} joints; layout {self.dataset!r} derives "
                             f'{num_derived} joints from {self.layout.num_joints - num_derived}')
        out = np.empty((M, T, self.layout.num_joints, C), dtype=np.float32)
        out[:, :, :V] = keypoint
        for joint, sources in self.layout.derived_joints:
            total = out[:, :, sources[0]].copy()
            for source in sources[1:]:
                total += out[:, :, source]
            out[:, :, joint] = total / len(sources)
        results['keypoint'] = out
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(dataset={self.dataset!r})'
