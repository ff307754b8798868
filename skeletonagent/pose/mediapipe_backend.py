"""MediaPipe's legacy ``solutions`` Pose and Hands, offline: their model files ship in the
mediapipe 0.10.21 wheel (``pose_detection.tflite``, ``pose_landmark_full.tflite``,
``hand_landmark_full.tflite``), so nothing is downloaded.

Pose (BlazePose) finds one person per frame: its 33 landmarks become our ``coco`` joints
(``skeleton.estimators.BLAZEPOSE_TO_COCO``), the score of a joint is BlazePose's
visibility, and its world landmarks (metres, hip centre at the origin) give the 3D. Hands
finds up to ``max_hands`` hands in the ``handmp`` layout; a hand's joints all get the hand's
detection score (Hands has no per-landmark confidence).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..skeleton.estimators import landmark_order
from .base import FramePoses, PoseBackendUnavailable, PoseEstimator, register_estimator
from .extra import require

__all__ = ['MediaPipePose', 'MediaPipeHands']

# model_complexity -> the landmark model file it loads (the wheel ships the 'full' ones only;
# the others would be downloaded on first use, which we never do)
_POSE_FILES = {0: 'pose_landmark_lite.tflite', 1: 'pose_landmark_full.tflite',
               2: 'pose_landmark_heavy.tflite'}
_HAND_FILES = {0: 'hand_landmark_lite.tflite', 1: 'hand_landmark_full.tflite'}


def _solutions():
    mp = require('mediapipe')
    try:
        return mp.solutions
    except AttributeError:
        raise PoseBackendUnavailable(
            f'mediapipe {getattr(mp, "__version__", "?")} has no legacy solutions API; the '
            'video extra pins mediapipe==0.10.21: pip install -e ".[video]"') from None


def _check_model_file(subdir: str, filename: str, complexity: int) -> None:
    """Refuse a model_complexity whose file is not in the wheel (MediaPipe would download it)."""
    mp = require('mediapipe')
    path = Path(mp.__file__).parent / 'modules' / subdir / filename
    if not path.is_file():
        raise PoseBackendUnavailable(
            f'model_complexity={complexity} needs {filename}, which the installed mediapipe '
            f'does not ship ({path}); nothing is downloaded: use model_complexity=1')


@register_estimator('mediapipe')
class MediaPipePose(PoseEstimator):
    """BlazePose (one person) → ``coco`` 2D pixels + visibility scores, and 3D in metres.

    Args:
        video: frames of one video in order (MediaPipe tracks the person between frames:
            faster, steadier); False treats every frame on its own.
        model_complexity: 1 (the model the wheel ships).
        min_detection_confidence / min_tracking_confidence: MediaPipe's thresholds.
    """

    name = 'mediapipe'
    layout = 'coco'
    has_3d = True

    def __init__(self, video: bool = True, model_complexity: int = 1,
                 min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5) -> None:
        solutions = _solutions()
        _check_model_file('pose_landmark', _POSE_FILES.get(model_complexity, '?'), model_complexity)
        self._layout, self._order = landmark_order('blazepose')
        self._kwargs = dict(static_image_mode=not video, model_complexity=model_complexity,
                            smooth_landmarks=True, enable_segmentation=False,
                            min_detection_confidence=min_detection_confidence,
                            min_tracking_confidence=min_tracking_confidence)
        self._solution = solutions.pose
        self._pose = self._solution.Pose(**self._kwargs)

    def describe(self) -> str:
        return f'mediapipe {require("mediapipe").__version__} Pose (BlazePose full, 1 person) -> coco'

    def reset(self) -> None:
        self._pose.close()
        self._pose = self._solution.Pose(**self._kwargs)

    def __call__(self, rgb: np.ndarray) -> FramePoses:
        h, w = rgb.shape[:2]
        result = self._pose.process(np.ascontiguousarray(rgb))
        V = len(self._order)
        if result.pose_landmarks is None:
            return FramePoses.empty(V, with_3d=True)
        lm = np.array([(p.x, p.y, p.visibility) for p in result.pose_landmarks.landmark], np.float32)
        kp = lm[self._order, :2] * np.array([w, h], np.float32)
        score = np.clip(lm[self._order, 2], 0.0, 1.0)
        kp3d = None
        if result.pose_world_landmarks is not None:
            world = np.array([(p.x, p.y, p.z) for p in result.pose_world_landmarks.landmark], np.float32)
            kp3d = world[self._order][None]
        else:
            kp3d = np.zeros((1, V, 3), np.float32)
        return FramePoses(kp[None], score[None], kp3d)

    def close(self) -> None:
        self._pose.close()


@register_estimator('mediapipe_hands')
class MediaPipeHands(PoseEstimator):
    """MediaPipe Hands (up to ``max_hands``) → ``handmp`` 2D pixels, 3D in metres.

    MediaPipe labels handedness as if the image were mirrored (a selfie camera); the hands
    are returned in the order MediaPipe finds them and the tracker keeps each one apart.
    """

    name = 'mediapipe_hands'
    layout = 'handmp'
    has_3d = True

    def __init__(self, video: bool = True, max_hands: int = 2, model_complexity: int = 1,
                 min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5) -> None:
        solutions = _solutions()
        _check_model_file('hand_landmark', _HAND_FILES.get(model_complexity, '?'), model_complexity)
        self._layout, self._order = landmark_order('mediapipe_hand')
        self._kwargs = dict(static_image_mode=not video, max_num_hands=max_hands,
                            model_complexity=model_complexity,
                            min_detection_confidence=min_detection_confidence,
                            min_tracking_confidence=min_tracking_confidence)
        self._solution = solutions.hands
        self._hands = self._solution.Hands(**self._kwargs)

    def describe(self) -> str:
        return (f'mediapipe {require("mediapipe").__version__} Hands (full, up to '
                f'{self._kwargs["max_num_hands"]} hands) -> handmp')

    def reset(self) -> None:
        self._hands.close()
        self._hands = self._solution.Hands(**self._kwargs)

    def __call__(self, rgb: np.ndarray) -> FramePoses:
        h, w = rgb.shape[:2]
        result = self._hands.process(np.ascontiguousarray(rgb))
        V = len(self._order)
        if not result.multi_hand_landmarks:
            return FramePoses.empty(V, with_3d=True)
        kps, scores, kp3ds = [], [], []
        worlds = result.multi_hand_world_landmarks or [None] * len(result.multi_hand_landmarks)
        handedness = result.multi_handedness or [None] * len(result.multi_hand_landmarks)
        for landmarks, world, hand in zip(result.multi_hand_landmarks, worlds, handedness):
            lm = np.array([(p.x, p.y) for p in landmarks.landmark], np.float32)
            kps.append(lm[self._order] * np.array([w, h], np.float32))
            confidence = float(hand.classification[0].score) if hand is not None else 1.0
            scores.append(np.full(V, confidence, np.float32))
            if world is not None:
                kp3ds.append(np.array([(p.x, p.y, p.z) for p in world.landmark], np.float32)[self._order])
            else:
                kp3ds.append(np.zeros((V, 3), np.float32))
        return FramePoses(np.stack(kps), np.stack(scores), np.stack(kp3ds))

    def close(self) -> None:
        self._hands.close()
