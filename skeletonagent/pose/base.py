"""The one small interface every pose estimator has.

An estimator takes one RGB frame (H×W×3 uint8) and returns a :class:`FramePoses`: every
person (or hand) it found, with keypoints already in one of our layouts (``coco`` for
bodies, ``handmp`` for hands), in pixels of that frame. Estimators are built by name
(:func:`build_estimator`) and closed with :meth:`PoseEstimator.close` (or ``with``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..errors import SkeletonAgentError
from ..registry import POSE_ESTIMATORS

__all__ = ['FramePoses', 'PoseEstimator', 'PoseBackendUnavailable',
           'register_estimator', 'build_estimator']


class PoseBackendUnavailable(SkeletonAgentError, RuntimeError):
    """A backend cannot run here (its package or its model file is missing); the message
    says what to install or fetch, and where to put it."""


@dataclass
class FramePoses:
    """The persons found in one frame.

    Attributes:
        keypoints: (P, V, 2) float32 pixel coordinates (x right, y down).
        scores: (P, V) float32 per-joint confidence in [0, 1].
        keypoints_3d: (P, V, 3) float32 metric coordinates (metres, the person's hip centre
            at the origin, y down as MediaPipe's world landmarks), or None when the backend
            has no 3D.
    """

    keypoints: np.ndarray
    scores: np.ndarray
    keypoints_3d: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.keypoints = np.asarray(self.keypoints, dtype=np.float32)
        if self.keypoints.ndim != 3 or self.keypoints.shape[-1] != 2:
            raise ValueError(f'keypoints must be (P, V, 2), got {self.keypoints.shape}')
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(self.keypoints.shape[:2])
        if self.keypoints_3d is not None:
            self.keypoints_3d = np.asarray(self.keypoints_3d, dtype=np.float32).reshape(
                *self.keypoints.shape[:2], 3)

    @property
    def num_persons(self) -> int:
        return int(self.keypoints.shape[0])

    @classmethod
    def empty(cls, num_joints: int, with_3d: bool = False) -> FramePoses:
        """No person, with the joint count kept."""
        return cls(np.zeros((0, num_joints, 2), np.float32), np.zeros((0, num_joints), np.float32),
                   np.zeros((0, num_joints, 3), np.float32) if with_3d else None)


class PoseEstimator:
    """Base class: ``layout`` (our layout name), ``has_3d``, ``__call__(rgb) -> FramePoses``.

    ``video=True`` estimators may use the previous frame (MediaPipe's tracking mode): feed
    the frames of one video in order, and build a new estimator (or call :meth:`reset`)
    for the next video.
    """

    name: str = 'base'
    layout: str = 'coco'
    has_3d: bool = False

    def __call__(self, rgb: np.ndarray) -> FramePoses:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the previous frames (a new video starts)."""

    def describe(self) -> str:
        """One line for logs: the backend and its model."""
        return self.name

    def close(self) -> None:
        """Release the backend's resources."""

    def __enter__(self) -> PoseEstimator:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def register_estimator(name: str) -> Callable[[Callable[..., PoseEstimator]], Callable[..., PoseEstimator]]:
    """Register a backend factory (taking the backend's keyword arguments) under ``name`` in
    :data:`~skeletonagent.registry.POSE_ESTIMATORS`."""
    return POSE_ESTIMATORS.register_module(name=name)


def build_estimator(name: str = 'mediapipe', **kwargs: Any) -> PoseEstimator:
    """The estimator called ``name``: ``mediapipe`` (BlazePose, one person, ``coco`` + 3D),
    ``mediapipe_hands`` (up to ``max_hands`` hands, ``handmp``) or ``rtmlib`` (several
    persons, ``coco``).

    Raises:
        ValueError: an unknown name (the known ones are listed).
        VideoExtraMissing / PoseBackendUnavailable: the backend cannot run here.
    """
    factory = POSE_ESTIMATORS.get(name)    # imports the backends' modules (registry locations)
    if factory is None:
        known = ', '.join(sorted(POSE_ESTIMATORS.module_dict))
        raise ValueError(f'unknown pose backend {name!r}; known: {known}')
    return factory(**kwargs)
