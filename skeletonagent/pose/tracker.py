"""Follow persons from frame to frame and keep the best ones, as PYSKL's demo does.

PYSKL matches each frame's skeletons to the tracks seen in the last 30 frames by a Hungarian
assignment on a skeleton distance, then keeps the 2 longest tracks. :class:`PoseTracks` does
the same online (a camera has no end): :meth:`PoseTracks.add` assigns every person of a
frame to a track (the cost is the mean distance of the joints both skeletons see, in units
of the track's size, so it works at any resolution; pairs farther than ``max_distance`` are
not matched), and :meth:`PoseTracks.arrays` stacks the ``max_persons`` tracks of a frame
range with the highest summed score into PYSKL's ``(M, T, V, C)`` arrays.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from .base import FramePoses

__all__ = ['PoseTracks', 'Track']


@dataclass
class Track:
    """One person over frames: per frame index, keypoints (V, 2), scores (V,), 3D or None."""
    track_id: int
    frames: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = field(default_factory=dict)
    last_frame: int = -1

    def last(self) -> tuple[np.ndarray, np.ndarray]:
        kp, score, _ = self.frames[self.last_frame]
        return kp, score


def _size(kp: np.ndarray, score: np.ndarray, min_score: float) -> float:
    seen = kp[score > min_score]
    if len(seen) < 2:
        seen = kp
    extent = seen.max(0) - seen.min(0)
    return float(max(np.hypot(*extent), 1.0))


def _distance(a_kp: np.ndarray, a_score: np.ndarray, b_kp: np.ndarray, b_score: np.ndarray,
              min_score: float) -> float:
    """Mean distance of the joints both skeletons see, over the first one's size."""
    both = (a_score > min_score) & (b_score > min_score)
    if not both.any():
        both = np.ones_like(both)
    d = np.linalg.norm(a_kp[both] - b_kp[both], axis=-1).mean()
    return float(d / _size(a_kp, a_score, min_score))


class PoseTracks:
    """Tracks of persons over the frames added so far.

    Args:
        max_age: a track not seen for this many frames is not matched any more (PYSKL: 30).
        max_distance: the largest matching cost (mean joint distance / person size) for a
            person to continue a track.
        min_score: joints at or below this score are not compared.
    """

    def __init__(self, max_age: int = 30, max_distance: float = 0.5, min_score: float = 0.3) -> None:
        self.max_age = max_age
        self.max_distance = max_distance
        self.min_score = min_score
        self.tracks: list[Track] = []
        self.num_frames = 0
        self.num_joints: int | None = None
        self.has_3d = False
        self._next_id = 0

    def add(self, poses: FramePoses, frame: int | None = None) -> list[int]:
        """Assign the persons of the next frame (or of ``frame``) to tracks; their ids."""
        frame = self.num_frames if frame is None else frame
        self.num_frames = max(self.num_frames, frame + 1)
        self.num_joints = poses.keypoints.shape[1]
        if poses.num_persons == 0:
            return []
        self.has_3d = self.has_3d or poses.keypoints_3d is not None
        alive = [t for t in self.tracks if frame - t.last_frame <= self.max_age and t.last_frame < frame]
        cost = np.zeros((len(alive), poses.num_persons))
        for i, track in enumerate(alive):
            kp, score = track.last()
            for j in range(poses.num_persons):
                cost[i, j] = _distance(kp, score, poses.keypoints[j], poses.scores[j], self.min_score)
        ids = [-1] * poses.num_persons
        if len(alive):
            for i, j in zip(*linear_sum_assignment(cost)):
                if cost[i, j] <= self.max_distance:
                    ids[j] = alive[i].track_id
        by_id = {t.track_id: t for t in self.tracks}
        for j in range(poses.num_persons):
            if ids[j] < 0:
                track = Track(self._next_id)
                self._next_id += 1
                self.tracks.append(track)
                by_id[track.track_id] = track
                ids[j] = track.track_id
            track = by_id[ids[j]]
            kp3d = None if poses.keypoints_3d is None else poses.keypoints_3d[j]
            track.frames[frame] = (poses.keypoints[j], poses.scores[j], kp3d)
            track.last_frame = frame
        return ids

    def forget_before(self, frame: int) -> None:
        """Drop what is older than ``frame`` (a camera runs for hours)."""
        for track in self.tracks:
            for f in [f for f in track.frames if f < frame]:
                del track.frames[f]
        self.tracks = [t for t in self.tracks if t.frames]

    def best(self, max_persons: int, start: int = 0, stop: int | None = None) -> list[Track]:
        """The ``max_persons`` tracks with the highest summed score in ``[start, stop)``, in
        the order they first appeared."""
        stop = self.num_frames if stop is None else stop
        totals = []
        for track in self.tracks:
            total = sum(float(s.sum()) for f, (_, s, _) in track.frames.items() if start <= f < stop)
            if total > 0:
                totals.append((total, track))
        totals.sort(key=lambda item: -item[0])
        chosen = [t for _, t in totals[:max_persons]]
        return sorted(chosen, key=lambda t: min(f for f in t.frames if start <= f < stop))

    def arrays(self, max_persons: int = 2, start: int = 0, stop: int | None = None) -> dict:
        """PYSKL arrays of frames ``[start, stop)``: ``keypoint`` (M, T, V, 2), ``keypoint_score``
        (M, T, V) and, when the backend gives 3D, ``keypoint_3d`` (M, T, V, 3); M is the number
        of tracks kept (0 when nobody was seen; a frame where a kept person is missing holds
        zeros, as PYSKL's)."""
        stop = self.num_frames if stop is None else stop
        T = max(0, stop - start)
        V = self.num_joints or 0
        chosen = self.best(max_persons, start, stop)
        kp = np.zeros((len(chosen), T, V, 2), np.float32)
        score = np.zeros((len(chosen), T, V), np.float32)
        kp3d = np.zeros((len(chosen), T, V, 3), np.float32) if self.has_3d else None
        for m, track in enumerate(chosen):
            for f, (k, s, k3) in track.frames.items():
                if start <= f < stop:
                    kp[m, f - start] = k
                    score[m, f - start] = s
                    if kp3d is not None and k3 is not None:
                        kp3d[m, f - start] = k3
        out = dict(keypoint=kp, keypoint_score=score)
        if kp3d is not None:
            out['keypoint_3d'] = kp3d
        return out
