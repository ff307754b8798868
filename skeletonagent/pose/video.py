"""Video files in, PYSKL annotations out: frames through an estimator and the tracker.

:func:`extract_video` reads every frame (OpenCV), runs the estimator, tracks the persons and
returns PYSKL's annotation dict (``keypoint`` (M, T, V, 2) pixels, ``keypoint_score`` (M,
T, V), ``img_shape`` / ``original_shape`` (H, W), ``total_frames``, ``frame_dir``, and
``keypoint_3d`` (M, T, V, 3) where the backend gives 3D), or None when nobody was found.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import SkeletonAgentError
from .base import PoseEstimator
from .extra import require
from .tracker import PoseTracks

__all__ = ['VideoReadError', 'VideoInfo', 'video_info', 'read_frames', 'extract_video', 'write_video',
           'VIDEO_SUFFIXES']

#: What a folder scan takes for a video.
VIDEO_SUFFIXES = ('.mp4', '.avi', '.mov', '.mkv', '.webm', '.m4v', '.mpg', '.mpeg', '.wmv')


class VideoReadError(SkeletonAgentError, ValueError):
    """A video that cannot be opened or decoded; the message names the file."""


@dataclass(frozen=True)
class VideoInfo:
    fps: float
    frame_count: int      # as the container says (may be approximate)
    width: int
    height: int


def _open(path: str | os.PathLike | int):
    cv2 = require('cv2')
    if isinstance(path, int):
        cap = cv2.VideoCapture(path)
        where = f'camera {path}'
    else:
        if not Path(path).is_file():
            raise FileNotFoundError(f'video not found: {path}')
        cap = cv2.VideoCapture(os.fspath(path))
        where = os.fspath(path)
    if not cap.isOpened():
        cap.release()
        raise VideoReadError(f'{where}: cannot be opened as a video (not a video, or a codec '
                             'OpenCV lacks)')
    return cap


def video_info(path: str | os.PathLike) -> VideoInfo:
    """Frame rate, frame count and size of a video file."""
    cv2 = require('cv2')
    cap = _open(path)
    try:
        return VideoInfo(float(cap.get(cv2.CAP_PROP_FPS) or 0.0), int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0),
                         int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    finally:
        cap.release()


def read_frames(source: str | os.PathLike | int) -> Iterator[np.ndarray]:
    """RGB frames (H×W×3 uint8) of a video file, or of camera ``source`` (an int) until it
    stops giving frames."""
    cv2 = require('cv2')
    cap = _open(source)
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


def extract_video(path: str | os.PathLike, estimator: PoseEstimator, *, max_persons: int = 2,
                  frame_dir: str | None = None, progress: Callable[[int], None] | None = None) -> dict | None:
    """One video → a PYSKL annotation dict (no ``label``), or None when no person was found.

    Args:
        path: the video file.
        estimator: from :func:`~skeletonagent.pose.build_estimator`; it is reset first.
        max_persons: the tracks kept (PYSKL keeps 2).
        frame_dir: the sample's name (default: the file name without its suffix).
        progress: called with 1 after each frame.

    Raises:
        FileNotFoundError, VideoReadError: the file cannot be read, or holds no frame.
    """
    estimator.reset()
    tracks = PoseTracks()
    shape = None
    for rgb in read_frames(path):
        shape = rgb.shape[:2]
        tracks.add(estimator(rgb))
        if progress is not None:
            progress(1)
    if shape is None:
        raise VideoReadError(f'{os.fspath(path)}: no frame could be decoded')
    arrays = tracks.arrays(max_persons=max_persons)
    if arrays['keypoint'].shape[0] == 0:
        return None
    info_fps = video_info(path).fps
    ann = dict(frame_dir=frame_dir or Path(path).stem, total_frames=int(tracks.num_frames),
               img_shape=(int(shape[0]), int(shape[1])), original_shape=(int(shape[0]), int(shape[1])),
               layout=estimator.layout, fps=info_fps, **arrays)
    return ann


def write_video(path: str | os.PathLike, frames: Iterator[np.ndarray] | list[np.ndarray],
                fps: float = 25.0) -> Path:
    """RGB frames → an MP4 (MPEG-4 part 2, OpenCV's ``mp4v``); the folder is created.

    Raises:
        VideoReadError: OpenCV cannot write there (a folder that cannot be written, a codec
            this OpenCV lacks); ValueError: no frame.
    """
    cv2 = require('cv2')
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = None
    count = 0
    try:
        for rgb in frames:
            if writer is None:
                h, w = rgb.shape[:2]
                writer = cv2.VideoWriter(os.fspath(path), cv2.VideoWriter_fourcc(*'mp4v'), float(fps), (w, h))
                if not writer.isOpened():
                    raise VideoReadError(f'{path}: OpenCV cannot write an MP4 there')
            writer.write(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
            count += 1
    finally:
        if writer is not None:
            writer.release()
    if count == 0:
        raise ValueError(f'{path}: no frame to write')
    return path
