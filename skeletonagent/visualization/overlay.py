"""Skeletons and labels drawn over video frames (OpenCV, in place, fast enough for a camera).

Edges come from the layout; persons get the colours of :data:`PERSON_COLOURS` in order;
joints at or below ``min_score`` are not drawn, nor edges touching them. Needs OpenCV (the
video extra).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..pose.extra import require
from ..skeleton import get_layout
from .skeleton import PERSON_COLOURS

__all__ = ['draw_poses', 'draw_text_box']


def _cv2():
    return require('cv2')


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip('#')
    return tuple(int(h[i:i + 2], 16) for i in (0, 2, 4))


def draw_poses(frame: np.ndarray, keypoints: np.ndarray, scores: np.ndarray | None, layout: Any,
               min_score: float = 0.3, thickness: int | None = None) -> np.ndarray:
    """Draw every person's skeleton on ``frame`` (H×W×3 RGB uint8, changed in place).

    Args:
        keypoints: (P, V, 2) pixels; scores: (P, V) or None (all drawn).
        layout: a layout or its name (its edges are drawn).
    """
    cv2 = _cv2()
    layout = get_layout(layout)
    keypoints = np.asarray(keypoints, np.float32).reshape(-1, layout.num_joints, 2)
    if scores is None:
        scores = np.ones(keypoints.shape[:2], np.float32)
    scores = np.asarray(scores, np.float32).reshape(keypoints.shape[:2])
    size = max(frame.shape[:2])
    thickness = thickness or max(1, size // 320)
    for p, (kp, score) in enumerate(zip(keypoints, scores)):
        colour = _rgb(PERSON_COLOURS[p % len(PERSON_COLOURS)])
        seen = (score > min_score) & np.isfinite(kp).all(-1)
        pts = np.round(kp).astype(np.int32)
        for child, parent in layout.inward:
            if seen[child] and seen[parent]:
                cv2.line(frame, tuple(map(int, pts[child])), tuple(map(int, pts[parent])), colour,
                         thickness, cv2.LINE_AA)
        for v in np.flatnonzero(seen):
            cv2.circle(frame, tuple(map(int, pts[v])), thickness + 2, colour, -1, cv2.LINE_AA)
    return frame


def draw_text_box(frame: np.ndarray, lines: Sequence[str], origin: tuple[int, int] = (8, 8),
                  scale: float | None = None) -> np.ndarray:
    """White text on a dark box at the top left of ``frame`` (in place)."""
    cv2 = _cv2()
    if not lines:
        return frame
    scale = scale or max(0.4, max(frame.shape[:2]) / 1200)
    thick = max(1, int(round(scale * 2)))
    sizes = [cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, scale, thick) for line in lines]
    line_h = max(h + base for (_, h), base in sizes) + 4
    width = max(w for (w, _), _ in sizes) + 12
    x, y = origin
    sub = frame[y:y + line_h * len(lines) + 8, x:x + width]
    sub[:] = (sub.astype(np.uint16) * 2 // 5).astype(np.uint8)      # darken behind the text
    for i, line in enumerate(lines):
        cv2.putText(frame, line, (x + 6, y + (i + 1) * line_h), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), thick, cv2.LINE_AA)
    return frame
