"""Several persons in COCO-17 with rtmlib (a person detector + RTMPose, through onnxruntime).

Optional: ``pip install rtmlib`` (not part of the video extra). Its ONNX models are
downloaded on first use into rtmlib's cache (``$TORCH_HOME`` or ``$XDG_CACHE_HOME/rtmlib``,
``hub/checkpoints/<name>.onnx``). Where that cannot happen (offline), building the
estimator stops with one line naming the file to fetch and where to put it.
"""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from ..skeleton.estimators import landmark_order
from .base import FramePoses, PoseBackendUnavailable, PoseEstimator, register_estimator

__all__ = ['RTMLibPose', 'rtmlib_cache_dir', 'expected_onnx_path']


def rtmlib_cache_dir() -> Path:
    """Where rtmlib looks for (and downloads) its models."""
    home = os.getenv('TORCH_HOME') or os.path.join(os.getenv('XDG_CACHE_HOME', '~/.cache'), 'rtmlib')
    return Path(os.path.expanduser(home)) / 'hub' / 'checkpoints'


def expected_onnx_path(url_or_path: str) -> Path:
    """The local ``.onnx`` rtmlib uses for a model URL (the zip's ``end2end.onnx``, renamed)."""
    if os.path.exists(url_or_path):
        return Path(url_or_path)
    stem = os.path.basename(urlparse(url_or_path).path).split('.')[0]
    return rtmlib_cache_dir() / f'{stem}.onnx'


def _fetch(url: str, allow_download: bool) -> str:
    local = expected_onnx_path(url)
    if local.is_file():
        return str(local)
    how = (f'fetch {url} on a machine with network, unzip it and put its end2end.onnx at '
           f'{local}')
    if not allow_download:
        raise PoseBackendUnavailable(f'rtmlib model missing: {local}; {how}')
    try:
        from rtmlib.tools.file import download_checkpoint  # deferred: rtmlib is optional (pip install rtmlib)
        return str(download_checkpoint(url))
    except OSError as exc:     # URLError is an OSError: no network
        raise PoseBackendUnavailable(f'rtmlib cannot download its model ({exc}); {how}') from None


@register_estimator('rtmlib')
class RTMLibPose(PoseEstimator):
    """rtmlib's ``Body`` (detector + RTMPose, COCO-17 = our ``coco``), several persons.

    Args:
        mode: rtmlib's preset, 'lightweight', 'balanced' or 'performance'.
        det, pose: local ``.onnx`` files (or URLs) instead of the preset's.
        allow_download: let rtmlib download missing models (the first use needs network).
        device: onnxruntime device ('cpu', 'cuda').
    """

    name = 'rtmlib'
    layout = 'coco'
    has_3d = False

    def __init__(self, mode: str = 'lightweight', det: str | None = None, pose: str | None = None,
                 allow_download: bool = True, device: str = 'cpu', video: bool = True) -> None:
        try:
            import rtmlib  # deferred: optional (pip install rtmlib)
        except ImportError:
            raise PoseBackendUnavailable('the rtmlib backend needs rtmlib: pip install rtmlib==0.0.16 '
                                         '(its models are downloaded on first use)') from None
        presets = rtmlib.Body.MODE
        if mode not in presets:
            raise ValueError(f'unknown rtmlib mode {mode!r}; known: {", ".join(presets)}')
        preset = presets[mode]
        det_path = _fetch(det or preset['det'], allow_download)
        pose_path = _fetch(pose or preset['pose'], allow_download)
        self._body = rtmlib.Body(det=det_path, det_input_size=preset['det_input_size'],
                                 pose=pose_path, pose_input_size=preset['pose_input_size'],
                                 backend='onnxruntime', device=device)
        self._mode = mode
        _, self._order = landmark_order('coco17')

    def describe(self) -> str:
        return f'rtmlib Body ({self._mode}: detector + RTMPose) -> coco'

    def __call__(self, rgb: np.ndarray) -> FramePoses:
        bgr = np.ascontiguousarray(rgb[..., ::-1])     # rtmlib works on OpenCV's BGR frames
        keypoints, scores = self._body(bgr)
        keypoints = np.asarray(keypoints, np.float32).reshape(-1, 17, 2)
        scores = np.asarray(scores, np.float32).reshape(-1, 17)
        if len(keypoints) == 0:
            return FramePoses.empty(len(self._order))
        return FramePoses(keypoints[:, self._order], np.clip(scores[:, self._order], 0, 1))
