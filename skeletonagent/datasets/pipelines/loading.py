"""Decoding of pose annotations: DecompressPose (compressed 2D poses) and PoseDecode."""
from __future__ import annotations

import numpy as np
from mmcv.transforms import BaseTransform

from skeletonagent.registry import TRANSFORMS

from ._utils import require

__all__ = ['PoseDecode', 'DecompressPose']


@TRANSFORMS.register_module()
class PoseDecode(BaseTransform):
    """Gather the frames ``frame_inds`` (+ ``offset``) of ``keypoint`` / ``keypoint_score``.

    Without ``frame_inds`` every frame is kept. Outputs are new float32 arrays.
    """

    def transform(self, results: dict) -> dict:
        if 'frame_inds' not in results:
            results['frame_inds'] = np.arange(require(results, 'total_frames'))
        frame_inds = np.asarray(results['frame_inds'])
        if frame_inds.ndim != 1:
            frame_inds = np.squeeze(frame_inds)
            results['frame_inds'] = frame_inds
        frame_inds = frame_inds + results.get('offset', 0)
        for key in ('keypoint_score', 'keypoint'):
            if key in results:
                values = results[key]
                if frame_inds.size and frame_inds.max() >= values.shape[1]:
                    raise IndexError(f'frame index {int(frame_inds.max())} out of range for '
                                     f'field {key!r} with {values.shape[1]} frames')
                results[key] = values[:, frame_inds].astype(np.float32, copy=False)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}()'


@TRANSFORMS.register_module()
class DecompressPose(BaseTransform):
    """Expand compressed 2D poses (one row per detected person) into M×T×V arrays.

    Input fields: ``frame_inds`` (per row), ``keypoint`` (rows × V × 3: x, y, score),
    ``total_frames`` and optionally ``anno_inds`` (rows to keep). Output: ``keypoint``
    (M×T×V×2, float16), ``keypoint_score`` (M×T×V, float16), ``total_frames``; persons are
    stacked in row order within a frame. When more than ``max_person`` persons share a
    frame, every frame's persons are reordered by total score (highest first, stable) and
    only ``max_person`` are kept, as PYSKL does.

    Args:
        squeeze: drop frames without any person (re-index frames densely).
        max_person: most persons kept per frame.
    """

    def __init__(self, squeeze: bool = True, max_person: int = 10) -> None:
        self.squeeze = squeeze
        self.max_person = max_person

    def transform(self, results: dict) -> dict:
        for key in ('total_frames', 'frame_inds', 'keypoint'):
            require(results, key)
        total_frames = int(results['total_frames'])
        frame_inds = np.asarray(results.pop('frame_inds'))
        keypoint = results['keypoint']
        if 'anno_inds' in results:
            frame_inds = frame_inds[results['anno_inds']]
            keypoint = keypoint[results['anno_inds']]
        if keypoint.ndim != 3 or keypoint.shape[-1] != 3 or len(keypoint) != len(frame_inds):
            raise ValueError(f"field 'keypoint' must be rows×V×3 with one row per frame index, "
                             f'got shape {keypoint.shape} for {len(frame_inds)} frame_inds')
        if len(frame_inds) == 0:
            raise ValueError("field 'frame_inds' is empty: no pose in this sample")
        if np.any(np.diff(frame_inds) < 0):
            raise ValueError("field 'frame_inds' must be monotonically increasing")

        if self.squeeze:
            _, frame_inds = np.unique(frame_inds, return_inverse=True)
            total_frames = int(frame_inds.max()) + 1
        elif frame_inds.max() >= total_frames:
            raise ValueError(f"field 'frame_inds' reaches {int(frame_inds.max())} but "
                             f'total_frames is {total_frames}')
        results['total_frames'] = total_frames

        # Rank of every row among the rows of its frame (rows are sorted by frame).
        counts = np.bincount(frame_inds, minlength=total_frames)
        num_person = int(counts.max())
        first_row = np.cumsum(counts) - counts
        person_inds = np.arange(len(frame_inds)) - first_row[frame_inds]

        num_joints = keypoint.shape[1]
        new_kp = np.zeros((num_person, total_frames, num_joints, 2), dtype=np.float16)
        new_score = np.zeros((num_person, total_frames, num_joints), dtype=np.float16)
        new_kp[person_inds, frame_inds] = keypoint[..., :2]
        new_score[person_inds, frame_inds] = keypoint[..., 2]

        if num_person > self.max_person:
            score_sum = new_score.sum(-1)  # M×T, float16 as PYSKL sums it
            present = np.arange(num_person)[:, None] < counts[None, :]
            # Absent persons sort last; the stable sort keeps equal scores in row order.
            key = np.where(present, -score_sum.astype(np.float64), np.inf)
            order = np.argsort(key, axis=0, kind='stable')
            new_kp = np.take_along_axis(new_kp, order[..., None, None], axis=0)
            new_score = np.take_along_axis(new_score, order[..., None], axis=0)
            num_person = self.max_person
            results['num_person'] = num_person

        results['keypoint'] = new_kp[:num_person]
        results['keypoint_score'] = new_score[:num_person]
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(squeeze={self.squeeze}, max_person={self.max_person})'
