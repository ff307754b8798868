"""Pose estimators behind one interface, and their output on our layouts.

``build_estimator('mediapipe')`` (default: BlazePose through MediaPipe's legacy solutions,
offline, one person, ``coco`` + 3D), ``'mediapipe_hands'`` (``handmp``) or ``'rtmlib'``
(several persons, ``coco``; models downloaded on first use). :class:`PoseTracks` follows
persons over frames and keeps the best ones; :func:`extract_video` turns a video file into
a PYSKL annotation; :func:`prepare_videos` a folder of videos into a training pickle.
Everything here needs the ``[video]`` extra (``pip install -e ".[video]"``), imported only
when used: importing this package never fails.
"""
# the backends register in POSE_ESTIMATORS, found through its locations= on the first build
from .base import (
    FramePoses,
    PoseBackendUnavailable,
    PoseEstimator,
    build_estimator,
    register_estimator,
)
from .extra import INSTALL_COMMAND, VideoExtraMissing, require
from .tracker import PoseTracks, Track

__all__ = ['FramePoses', 'PoseBackendUnavailable', 'PoseEstimator', 'build_estimator',
           'register_estimator', 'INSTALL_COMMAND', 'VideoExtraMissing', 'require', 'PoseTracks',
           'Track']
