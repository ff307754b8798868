"""Short videos of a real person, made from a photograph a package ships: for tests, the
benchmarks and trying the "Your own actions" path without videos of your own.

The photograph is scikit-image's ``astronaut`` (a real photo of a person facing the camera,
shipped inside the scikit-image wheel, part of the video extra). :func:`moving_photo_frames`
slides it sideways over a plain background; :func:`make_sample_videos` writes a folder
``<class>/*.mp4`` of two classes, the person sliding to the image's left or to its right.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .extra import VideoExtraMissing, require
from .video import write_video

__all__ = ['person_photo', 'moving_photo_frames', 'make_sample_videos', 'SAMPLE_CLASSES']

#: The classes :func:`make_sample_videos` writes: the direction the person slides in the image.
SAMPLE_CLASSES = ('slide to the left', 'slide to the right')


def person_photo(mirror: bool = False) -> np.ndarray:
    """The astronaut photograph (512×512 RGB uint8), or its mirror image."""
    try:
        from skimage import data  # deferred: optional extra [video]
    except ImportError:
        raise VideoExtraMissing('the sample videos need scikit-image (part of the video extra): '
                                'pip install -e ".[video]"') from None
    photo = data.astronaut()
    return np.ascontiguousarray(photo[:, ::-1]) if mirror else photo


def moving_photo_frames(num_frames: int = 24, size: tuple[int, int] = (240, 400), start: float = 0.0,
                        stop: float = 1.0, mirror: bool = False, bob: float = 0.0,
                        background: int = 200, scale: float = 1.0) -> tuple[list[np.ndarray], np.ndarray]:
    """Frames (H×W×3 RGB) in which the photo, scaled to ``scale`` of the frame's height (its
    bottom on the frame's bottom), slides from ``start`` to ``stop`` (0 = against the left
    edge, 1 = against the right edge), with an optional vertical bob of ``bob`` pixels; and
    the photo's left edge per frame (pixels)."""
    cv2 = require('cv2')
    h, w = size
    side = max(8, min(h, int(round(h * scale))))
    photo = cv2.resize(person_photo(mirror), (side, side), interpolation=cv2.INTER_AREA)
    travel = max(0, w - side)
    lefts = np.round(np.linspace(start, stop, num_frames) * travel).astype(int)
    frames = []
    for i, left in enumerate(lefts):
        frame = np.full((h, w, 3), background, np.uint8)
        dy = int(round(bob * np.sin(2 * np.pi * i / max(num_frames, 1))))
        src = photo[max(0, -dy):side - max(0, dy)]
        top = h - side + max(0, dy)
        frame[top:top + len(src), left:left + side] = src
        frames.append(frame)
    return frames, lefts


def make_sample_videos(out_dir: str | os.PathLike, per_class: int = 4, num_frames: int = 24,
                       size: tuple[int, int] = (240, 400), fps: float = 12.0, seed: int = 0,
                       scale: float = 1.0) -> list[Path]:
    """``out_dir/<class>/<class>_NN.mp4`` for :data:`SAMPLE_CLASSES`: the person (the photo
    at ``scale`` of the frame's height) slides to the left or to the right over a random
    span, some videos mirrored. Returns the files."""
    rng = np.random.default_rng(seed)
    files = []
    for name in SAMPLE_CLASSES:
        for k in range(per_class):
            a, b = sorted(rng.uniform(0.0, 1.0, 2))
            b = max(b, min(1.0, a + 0.5))
            a = min(a, b - 0.5)
            start, stop = (b, a) if name == SAMPLE_CLASSES[0] else (a, b)
            frames, _ = moving_photo_frames(num_frames, size, start, stop, mirror=bool(k % 2),
                                            bob=float(rng.uniform(0, 6)), scale=scale)
            files.append(write_video(Path(out_dir) / name / f'{name.replace(" ", "_")}_{k:02d}.mp4',
                                     frames, fps))
    return files
