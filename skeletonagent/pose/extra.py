"""The ``[video]`` extra: what the video features need, and the one line said without it.

MediaPipe 0.10.21 (the last release with the legacy ``solutions`` whose model files ship in
the wheel), OpenCV (frames in and out) and onnxruntime are not part of the core install:
that wheel needs ``numpy<2``. Every video feature calls :func:`require` before importing
them, so a missing piece is one :class:`VideoExtraMissing` naming the install command,
never a half-imported module.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import SkeletonAgentError

__all__ = ['INSTALL_COMMAND', 'VideoExtraMissing', 'require']

#: What a user runs to get the video features.
INSTALL_COMMAND = 'pip install -e ".[video]"'

# import name -> the distribution that brings it (for the message)
_PROVIDERS = {'cv2': 'opencv-contrib-python', 'mediapipe': 'mediapipe==0.10.21',
              'onnxruntime': 'onnxruntime', 'onnx': 'onnx'}


class VideoExtraMissing(SkeletonAgentError, RuntimeError):
    """A module of the ``[video]`` extra cannot be imported; the message says what to install."""


def require(name: str) -> ModuleType:
    """Import ``name`` (``cv2``, ``mediapipe``, ``onnxruntime``, ``onnx``) or raise
    :class:`VideoExtraMissing` with the install command."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        provider = _PROVIDERS.get(name, name)
        raise VideoExtraMissing(
            f'{name} is not installed ({exc.__class__.__name__}: {exc}); the video features need '
            f'the video extra: {INSTALL_COMMAND} (brings {provider}; it pins numpy<2)') from None
