"""Skeleton geometry: standing rest poses, kinematic trees, layouts guessed from V, and the
arithmetic of drawing a skeleton (2D or 3D, the oblique view, the bounds, a neutral pose).

The synthetic demo generator animates the rest pose with a forward-kinematics rig built on
:func:`layout_tree`; the drawing code (:mod:`skeletonagent.visualization.skeleton`) draws
joint selections on :func:`canonical_pose`, projects 3D keypoints with
:func:`project_oblique`, frames them with :func:`square_limits` and guesses a layout from an
array's joint count with :func:`infer_layout`; it only renders and writes files. Rest poses
are keyed by joint *name*, so no joint index appears outside
:mod:`skeletonagent.skeleton.layouts`.
"""
from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from .layouts import LAYOUTS, Layout, get_layout

__all__ = ['REST_POSES', 'LAYOUT_BY_JOINTS', 'LayoutTree', 'infer_layout', 'layout_tree',
           'rest_pose', 'AZIMUTH', 'ELEVATION', 'is_3d', 'project_oblique', 'square_limits',
           'canonical_pose']


def _mirror_left(left_side: Mapping[str, tuple[float, float, float]]) -> dict:
    """Complete a rest pose given its centre and left joints (x is the subject's left)."""
    pose = dict(left_side)
    for name, (x, y, z) in left_side.items():
        if 'left' in name:
            pose[name.replace('left', 'right')] = (-x, y, z)
    return pose


#: Standing rest poses by layout, keyed by joint name: metres in the body frame (x to the
#: subject's left, y up, z forward, feet on the floor at y = 0), for a 1.75 m adult.
REST_POSES: Mapping[str, Mapping[str, tuple[float, float, float]]] = MappingProxyType({
    'nturgb+d': MappingProxyType(_mirror_left({
        'base of the spine': (0.0, 0.98, -0.02),
        'middle of the spine': (0.0, 1.22, -0.03),
        'spine': (0.0, 1.43, -0.03),
        'neck': (0.0, 1.50, -0.01),
        'head': (0.0, 1.64, 0.05),
        'left shoulder': (0.18, 1.40, -0.03),
        'left elbow': (0.22, 1.12, -0.04),
        'left wrist': (0.24, 0.88, -0.01),
        'left hand': (0.245, 0.81, 0.0),
        'tip of the left hand': (0.25, 0.73, 0.01),
        'left thumb': (0.22, 0.81, 0.04),
        'left hip': (0.09, 0.95, -0.02),
        'left knee': (0.10, 0.52, 0.0),
        'left ankle': (0.10, 0.09, -0.03),
        'left foot': (0.11, 0.03, 0.08),
    })),
})

#: The layout an array with V joints most likely uses (17 is ambiguous: coco and uav;
#: coco wins, pass 'uav' explicitly for UAV-Human).
LAYOUT_BY_JOINTS: Mapping[int, str] = MappingProxyType(
    {25: 'nturgb+d', 18: 'openpose', 17: 'coco', 20: 'coco_new', 21: 'handmp'})


def infer_layout(num_joints: int) -> str:
    """The layout name for V joints (25 → 'nturgb+d', 18 → 'openpose', 17 → 'coco',
    20 → 'coco_new', 21 → 'handmp').

    Raises:
        ValueError: naming V and the known joint counts.
    """
    name = LAYOUT_BY_JOINTS.get(int(num_joints))
    if name is None or name not in LAYOUTS:
        known = ', '.join(f'{lay.num_joints} ({n})' for n, lay in sorted(LAYOUTS.items()))
        raise ValueError(f'no skeleton layout has {num_joints} joints; known: {known}')
    return name


def rest_pose(layout: str | Layout) -> np.ndarray:
    """The layout's standing rest pose, float64 (V, 3), in joint order.

    Raises:
        KeyError: when the layout has no rest pose, or the pose lacks some of its joints.
    """
    layout = get_layout(layout)
    if layout.name not in REST_POSES:
        raise KeyError(f'no rest pose for layout {layout.name!r} (have: {", ".join(REST_POSES)})')
    template = REST_POSES[layout.name]
    missing = [name for name in layout.joint_names if name not in template]
    if missing:
        raise KeyError(f'rest pose for {layout.name!r} lacks joints {missing}')
    return np.array([template[name] for name in layout.joint_names], dtype=np.float64)


@dataclass(frozen=True)
class LayoutTree:
    """A layout's graph as a tree hanging from ``root`` (breadth-first from it).

    ``parent[j]`` is -1 for the root and for joints not connected to it (the official uav
    graph has two components); ``depth[j]`` counts edges from the root (0 for those too).
    """
    root: int
    parent: tuple[int, ...]
    depth: tuple[int, ...]

    def subtree(self, joint: int) -> tuple[int, ...]:
        """``joint`` and every joint further from the root through it, ascending."""
        members = []
        for other in range(len(self.parent)):
            node = other
            while node != -1 and node != joint:
                node = self.parent[node]
            if node == joint:
                members.append(other)
        return tuple(members)


def layout_tree(layout: str | Layout, root: int | str | None = None) -> LayoutTree:
    """The layout's graph re-rooted at ``root`` (a joint index or name; default its centre)."""
    layout = get_layout(layout)
    if root is None:
        root = layout.center
    elif isinstance(root, str):
        root = layout.index(root)
    num_joints = layout.num_joints
    neighbours: list[list[int]] = [[] for _ in range(num_joints)]
    for child, parent in layout.inward:
        neighbours[child].append(parent)
        neighbours[parent].append(child)
    parent_of, depth = [-1] * num_joints, [0] * num_joints
    seen, queue = {root}, deque([root])
    while queue:
        joint = queue.popleft()
        for other in neighbours[joint]:
            if other not in seen:
                seen.add(other)
                parent_of[other], depth[other] = joint, depth[joint] + 1
                queue.append(other)
    return LayoutTree(root=root, parent=tuple(parent_of), depth=tuple(depth))


# --------------------------------------------------------------------------- drawing geometry
#: The oblique view of 3D skeletons (degrees).
AZIMUTH, ELEVATION = 30.0, 15.0


def is_3d(keypoint: np.ndarray, layout: Any = None) -> bool:
    """Whether M×T×V×C keypoints are 3D (x, y, z) rather than 2D (x, y[, score]).

    C = 2: 2D. C = 3: 3D for 'nturgb+d'; for other layouts 2D+score when the third channel
    lies in [0, 1] everywhere, else 3D.
    """
    c = keypoint.shape[-1]
    if c == 2:
        return False
    if c != 3:
        raise ValueError(f'keypoints must have C = 2 or 3 channels, got shape {keypoint.shape}')
    if layout is not None and get_layout(layout).name == 'nturgb+d':
        return True
    third = keypoint[..., 2]
    return not (np.all(third >= 0) and np.all(third <= 1))


def project_oblique(points: np.ndarray, azimuth: float = AZIMUTH,
                    elevation: float = ELEVATION) -> np.ndarray:
    """Orthographic oblique view of (..., 3) camera-space points → (..., 2), y up.

    Camera space as Kinect's: y up, z away from the camera, x to the camera's left; the
    view is the camera's (a subject facing it has their left hand on the picture's right),
    turned by ``azimuth`` about the vertical and looking down by ``elevation``, so that depth
    stays visible on a flat picture.
    """
    a, e = math.radians(azimuth), math.radians(elevation)
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    xr = x * math.cos(a) + z * math.sin(a)
    zr = -x * math.sin(a) + z * math.cos(a)
    yr = y * math.cos(e) + zr * math.sin(e)
    return np.stack([-xr, yr], axis=-1)


def square_limits(points: np.ndarray, visible: np.ndarray, margin: float = 0.08
                  ) -> tuple[tuple[float, float], tuple[float, float]]:
    """Square ``(xlim, ylim)`` around every visible point of ``points`` (..., 2), with
    ``margin`` of the side added on each side; ``(-1, 1)`` both ways when none is visible.
    Square, so that one sequence's frames share a scale and bodies keep their proportions."""
    pts = points[visible]
    if not len(pts):
        return (-1.0, 1.0), (-1.0, 1.0)
    lo, hi = pts.min(0), pts.max(0)
    centre = (lo + hi) / 2
    half = max(float((hi - lo).max()) / 2, 1e-6) * (1 + 2 * margin)
    return (centre[0] - half, centre[0] + half), (centre[1] - half, centre[1] + half)


# Front view of a standing person, metres, x towards the subject's left (the viewer's
# right), y up; the NTU rest pose supplies the body joints.
_FACE = {
    'nose': (0.0, 1.61), 'left eye': (0.045, 1.665), 'right eye': (-0.045, 1.665),
    'left ear': (0.095, 1.635), 'right ear': (-0.095, 1.635),
    'mid hip': (0.0, 0.97), 'thorax': (0.0, 1.185), 'mid shoulder': (0.0, 1.40),
}


def _named_positions() -> dict[str, tuple[float, float]]:
    table = {name: (x, y) for name, (x, y, _) in REST_POSES['nturgb+d'].items()}
    table.update({k: v for k, v in _FACE.items() if k not in table})
    return table


def _hand_pose(layout: Layout) -> np.ndarray | None:
    """A spread right hand, palm facing the viewer, for MediaPipe's 21 joints."""
    names = layout.joint_names
    if len(names) != 21 or names[0] != 'wrist':
        return None
    pose = np.zeros((21, 2))
    fingers = [(1, -62, (0.30, 0.28, 0.25, 0.22)),   # thumb: cmc, mcp, ip, tip
               (5, -22, (0.85, 0.40, 0.25, 0.22)),
               (9, -4, (0.85, 0.45, 0.28, 0.24)),
               (13, 14, (0.80, 0.42, 0.26, 0.22)),
               (17, 32, (0.75, 0.33, 0.20, 0.19))]
    for first, angle, lengths in fingers:
        direction = np.array([math.sin(math.radians(angle)), math.cos(math.radians(angle))])
        point = np.zeros(2)
        for k, length in enumerate(lengths):
            point = point + direction * length
            pose[first + k] = point
    return pose


def canonical_pose(layout: str | Layout) -> np.ndarray:
    """V×2 coordinates (y up) of a neutral pose of ``layout``, for drawing joint selections.

    Body layouts whose joints all have known names (NTU, OpenPose, COCO, coco_new, UAV) get
    a standing front view built from the NTU rest pose (:data:`REST_POSES`); MediaPipe hands
    a spread hand.

    Raises:
        ValueError: for a layout with neither (naming its unplaced joints).
    """
    layout = get_layout(layout)
    table = _named_positions()
    if all(name in table for name in layout.joint_names):
        return np.array([table[name] for name in layout.joint_names], dtype=np.float64)
    hand = _hand_pose(layout)
    if hand is not None:
        return hand
    unplaced = [name for name in layout.joint_names if name not in table]
    raise ValueError(f'no drawing pose for layout {layout.name!r}: joints {unplaced} have no '
                     'position (skeletonagent.skeleton.REST_POSES)')
