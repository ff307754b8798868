"""Skeleton geometry: standing rest poses, kinematic trees, and layouts guessed from V.

The synthetic demo generator animates the rest pose with a forward-kinematics rig built on
:func:`layout_tree`; the drawing code (:mod:`skeletonagent.visualization.skeleton`) draws
joint selections on the same rest pose and guesses a layout from an array's joint count
with :func:`infer_layout`. Rest poses are keyed by joint *name*, so no joint index appears
outside :mod:`skeletonagent.skeleton.layouts`.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from .layouts import LAYOUTS, Layout, get_layout

__all__ = ['REST_POSES', 'LAYOUT_BY_JOINTS', 'LayoutTree', 'infer_layout', 'layout_tree',
           'rest_pose']


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
