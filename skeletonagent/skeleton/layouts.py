"""Skeleton layouts: the single source of joint topology in SkeletonAgent.

Every index below is 0-based. Edges and centres follow PYSKL's ``pyskl/utils/graph.py``
and the official SkeletonAgent ``skeletonagent/utils/graph.py`` (which adds ``coco_new``
and ``uav``); bone / k-bone pairs follow the official ``JointToBone`` / ``JointToKB``;
left/right follow PYSKL's ``Flip`` configs and the official ``Spatial_Flip``; ``mix_parts``
are the five groups the official skeleton mixup swaps (``models/recognizers/tools.py``),
in the official order.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ['Layout', 'LAYOUTS', 'get_layout']


def _normalise_name(name: str) -> str:
    """Lower-case, ``_``/``-`` as spaces, single spaces: 'Left_Wrist' -> 'left wrist'."""
    return ' '.join(name.lower().replace('_', ' ').replace('-', ' ').split())


@dataclass(frozen=True)
class Layout:
    """A skeleton layout (joint names, graph edges, symmetry, bones, body parts).

    Attributes:
        name: layout name as configs spell it ('nturgb+d', 'coco', ...).
        joint_names: human-readable name of every joint, length V.
        center: centre joint of the graph (used by the ``stgcn_spatial`` adjacency).
        inward: graph edges (child, parent), as in PYSKL's Graph.
        bone_pairs: ``JointToBone`` pairs (v1, v2): bone[v1] = j[v1] - j[v2].
        kbone_pairs: ``JointToKB`` pairs, same convention.
        left, right: mirrored joints; ``left[i]`` is the mirror of ``right[i]``.
        body_parts: named groups of joints.
        mix_parts: the five joint groups the official skeleton mixup swaps.
        synonyms: extra names (normalised, lower case) mapped to a joint index.
        norm_center: joint ``PreNormalize3D`` moves to the origin (the official code uses
            the middle of the spine for 25-joint NTU skeletons and the last joint otherwise).
        score_channel_pairs: whether bone/motion features of 3-channel input average the
            third (score) channel instead of differencing it; True for the 2D+score layouts
            the official code names ('openpose', 'coco').
        derived_joints: joints computed from others, in evaluation order, as
            ``(joint, (source, source, ...))``: the joint is the mean of its sources. The
            official ``Kinetics_Transform`` builds ``coco_new`` from ``coco`` this way.
    """

    name: str
    joint_names: tuple[str, ...]
    center: int
    inward: tuple[tuple[int, int], ...]
    bone_pairs: tuple[tuple[int, int], ...]
    kbone_pairs: tuple[tuple[int, int], ...]
    left: tuple[int, ...]
    right: tuple[int, ...]
    body_parts: Mapping[str, tuple[int, ...]]
    mix_parts: tuple[tuple[int, ...], ...]
    synonyms: Mapping[str, int] = field(default_factory=dict)
    norm_center: int = -1
    score_channel_pairs: bool = False
    derived_joints: tuple[tuple[int, tuple[int, ...]], ...] = ()

    def __post_init__(self) -> None:
        num_joints = len(self.joint_names)
        # Read-only views so a shared layout cannot be changed by a caller.
        object.__setattr__(self, 'body_parts', MappingProxyType(dict(self.body_parts)))
        object.__setattr__(self, 'synonyms', MappingProxyType(
            {_normalise_name(k): v for k, v in self.synonyms.items()}))
        if self.norm_center < 0:
            object.__setattr__(self, 'norm_center', num_joints + self.norm_center)
        if len(self.left) != len(self.right):
            raise ValueError(f'layout {self.name!r}: left and right have different lengths')

    def __hash__(self) -> int:
        return hash(self.name)

    # A layout is immutable: copies are itself; pickles rebuild it from its fields (the
    # read-only mappings cannot be pickled as they are, and DataLoader workers need it).
    def __copy__(self) -> Layout:
        return self

    def __deepcopy__(self, memo: dict) -> Layout:
        return self

    def __reduce__(self):
        fields = {name: getattr(self, name) for name in self.__dataclass_fields__}
        fields['body_parts'] = dict(self.body_parts)
        fields['synonyms'] = dict(self.synonyms)
        return _rebuild_layout, (fields,)

    @property
    def num_joints(self) -> int:
        """V, the number of joints."""
        return len(self.joint_names)

    @property
    def outward(self) -> tuple[tuple[int, int], ...]:
        """Graph edges (parent, child)."""
        return tuple((j, i) for i, j in self.inward)

    @property
    def flip_index(self) -> tuple[int, ...]:
        """Permutation of joints that swaps every left joint with its right mirror."""
        order = list(range(self.num_joints))
        for left, right in zip(self.left, self.right):
            order[left], order[right] = right, left
        return tuple(order)

    def index(self, name: str) -> int:
        """Joint index for a joint name or synonym (case, '_' and '-' insensitive).

        Raises:
            KeyError: naming the layout and the unknown name.
        """
        key = _normalise_name(name)
        for i, joint_name in enumerate(self.joint_names):
            if _normalise_name(joint_name) == key:
                return i
        if key in self.synonyms:
            return self.synonyms[key]
        raise KeyError(f'layout {self.name!r} has no joint called {name!r}')

    def has_joint(self, name: str) -> bool:
        """Whether :meth:`index` knows ``name``."""
        try:
            self.index(name)
        except KeyError:
            return False
        return True


def _rebuild_layout(fields: dict) -> Layout:
    """Unpickle a layout: the registered one when it is unchanged, else a new one."""
    layout = Layout(**fields)
    known = LAYOUTS.get(layout.name)
    return known if known is not None and known == layout else layout


def _one_based(pairs: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    return tuple((i - 1, j - 1) for i, j in pairs)


# ---------------------------------------------------------------- NTU RGB+D (Kinect v2)
_NTU = Layout(
    name='nturgb+d',
    joint_names=(
        'base of the spine', 'middle of the spine', 'neck', 'head',
        'left shoulder', 'left elbow', 'left wrist', 'left hand',
        'right shoulder', 'right elbow', 'right wrist', 'right hand',
        'left hip', 'left knee', 'left ankle', 'left foot',
        'right hip', 'right knee', 'right ankle', 'right foot',
        'spine', 'tip of the left hand', 'left thumb', 'tip of the right hand', 'right thumb'),
    center=20,
    inward=_one_based([
        (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9),
        (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18),
        (20, 19), (22, 8), (23, 8), (24, 12), (25, 12)]),
    bone_pairs=(
        (0, 1), (1, 20), (2, 20), (3, 2), (4, 20), (5, 4), (6, 5), (7, 6), (8, 20), (9, 8),
        (10, 9), (11, 10), (12, 0), (13, 12), (14, 13), (15, 14), (16, 0), (17, 16), (18, 17),
        (19, 18), (21, 22), (20, 20), (22, 7), (23, 24), (24, 11)),
    kbone_pairs=(
        (0, 20), (1, 1), (2, 2), (3, 20), (4, 4), (5, 20), (6, 4), (7, 5), (8, 8), (9, 20),
        (10, 8), (11, 9), (12, 1), (13, 0), (14, 12), (15, 13), (16, 1), (17, 0), (18, 16),
        (19, 17), (21, 7), (20, 20), (22, 6), (23, 11), (24, 10)),
    left=(4, 5, 6, 7, 12, 13, 14, 15, 21, 22),
    right=(8, 9, 10, 11, 16, 17, 18, 19, 23, 24),
    body_parts={
        'trunk': (0, 1, 20),
        'head': (2, 3),
        'left_arm': (4, 5, 6, 7, 21, 22),
        'right_arm': (8, 9, 10, 11, 23, 24),
        'left_leg': (12, 13, 14, 15),
        'right_leg': (16, 17, 18, 19),
    },
    # Official order (tools.py): trunk, "left_hand" [9..12, 24, 25], "right_hand"
    # [5..8, 22, 23], "left_leg" [17..20], "right_leg" [13..16], 1-based there.
    mix_parts=(
        (3, 2, 20, 1, 0),
        (8, 9, 10, 11, 23, 24),
        (4, 5, 6, 7, 21, 22),
        (16, 17, 18, 19),
        (12, 13, 14, 15)),
    synonyms={
        'spine base': 0, 'pelvis': 0, 'hip': 0, 'hips': 0, 'waist': 0, 'hip center': 0,
        'spine mid': 1, 'middle spine': 1, 'belly': 1, 'abdomen': 1, 'torso': 1,
        'chest': 20, 'spine shoulder': 20, 'upper spine': 20, 'shoulder center': 20,
        'left hand tip': 21, 'left fingertips': 21, 'left fingers': 21,
        'right hand tip': 23, 'right fingertips': 23, 'right fingers': 23,
        'left palm': 7, 'right palm': 11, 'face': 3, 'nose': 3,
        'left toe': 15, 'right toe': 19, 'left heel': 14, 'right heel': 18,
    },
    norm_center=1,
)

# ---------------------------------------------------------------- OpenPose 18
_OPENPOSE = Layout(
    name='openpose',
    joint_names=(
        'nose', 'neck', 'right shoulder', 'right elbow', 'right wrist',
        'left shoulder', 'left elbow', 'left wrist', 'right hip', 'right knee', 'right ankle',
        'left hip', 'left knee', 'left ankle', 'right eye', 'left eye', 'right ear', 'left ear'),
    center=1,
    inward=((4, 3), (3, 2), (7, 6), (6, 5), (13, 12), (12, 11), (10, 9), (9, 8), (11, 5), (8, 2),
            (5, 1), (2, 1), (0, 1), (15, 0), (14, 0), (17, 15), (16, 14)),
    bone_pairs=((0, 1), (1, 1), (2, 1), (3, 2), (4, 3), (5, 1), (6, 5), (7, 6), (8, 2), (9, 8),
                (10, 9), (11, 5), (12, 11), (13, 12), (14, 0), (15, 0), (16, 14), (17, 15)),
    kbone_pairs=((0, 0), (1, 1), (2, 2), (3, 1), (4, 2), (5, 5), (6, 1), (7, 5), (8, 1), (9, 2),
                 (10, 8), (11, 1), (12, 5), (13, 11), (14, 1), (15, 1), (16, 0), (17, 0)),
    left=(5, 6, 7, 11, 12, 13, 15, 17),
    right=(2, 3, 4, 8, 9, 10, 14, 16),
    body_parts={
        'trunk': (1,),
        'head': (0, 14, 15, 16, 17),
        'left_arm': (5, 6, 7),
        'right_arm': (2, 3, 4),
        'left_leg': (11, 12, 13),
        'right_leg': (8, 9, 10),
    },
    mix_parts=((0, 1, 14, 15, 16, 17), (5, 6, 7), (2, 3, 4), (11, 12, 13), (8, 9, 10)),
    synonyms={
        'head': 0, 'face': 0, 'chest': 1, 'upper spine': 1, 'shoulder center': 1,
        'left hand': 7, 'right hand': 4, 'left foot': 13, 'right foot': 10,
    },
    score_channel_pairs=True,
)

# ---------------------------------------------------------------- COCO 17
_COCO_NAMES = (
    'nose', 'left eye', 'right eye', 'left ear', 'right ear', 'left shoulder', 'right shoulder',
    'left elbow', 'right elbow', 'left wrist', 'right wrist', 'left hip', 'right hip',
    'left knee', 'right knee', 'left ankle', 'right ankle')
_COCO_LEFT = (1, 3, 5, 7, 9, 11, 13, 15)
_COCO_RIGHT = (2, 4, 6, 8, 10, 12, 14, 16)
_COCO_LIMBS = {
    'left_arm': (5, 7, 9),
    'right_arm': (6, 8, 10),
    'left_leg': (11, 13, 15),
    'right_leg': (12, 14, 16),
}
_COCO_SYNONYMS = {
    'head': 0, 'face': 0, 'left hand': 9, 'right hand': 10, 'left foot': 15, 'right foot': 16,
}

_COCO = Layout(
    name='coco',
    joint_names=_COCO_NAMES,
    center=0,
    inward=((15, 13), (13, 11), (16, 14), (14, 12), (11, 5), (12, 6), (9, 7), (7, 5), (10, 8),
            (8, 6), (5, 0), (6, 0), (1, 0), (3, 1), (2, 0), (4, 2)),
    bone_pairs=((0, 0), (1, 0), (2, 0), (3, 1), (4, 2), (5, 0), (6, 0), (7, 5), (8, 6), (9, 7),
                (10, 8), (11, 0), (12, 0), (13, 11), (14, 12), (15, 13), (16, 14)),
    kbone_pairs=((0, 0), (1, 1), (2, 2), (3, 0), (4, 0), (5, 5), (6, 6), (7, 0), (8, 0), (9, 5),
                 (10, 6), (11, 11), (12, 12), (13, 0), (14, 0), (15, 11), (16, 12)),
    left=_COCO_LEFT,
    right=_COCO_RIGHT,
    body_parts={'trunk': (5, 6, 11, 12), 'head': (0, 1, 2, 3, 4), **_COCO_LIMBS},
    mix_parts=((0, 1, 2, 3, 4), (5, 7, 9), (6, 8, 10), (11, 13, 15), (12, 14, 16)),
    synonyms=_COCO_SYNONYMS,
    score_channel_pairs=True,
)

# ------------------------------------------- COCO 17 + 3 centre joints (official Kinetics)
# Kinetics_Transform appends: 17 = mid-hip, 19 = mid-shoulder, 18 = their midpoint, named as
# the official Kinetics / FineGYM prompts number them ("18-mid hip, 19-thorax, 20-mid shoulder").
_COCO_NEW = Layout(
    name='coco_new',
    joint_names=_COCO_NAMES + ('mid hip', 'thorax', 'mid shoulder'),
    center=19,
    inward=((15, 13), (13, 11), (16, 14), (14, 12), (11, 17), (12, 17), (9, 7), (7, 5), (10, 8),
            (8, 6), (5, 19), (6, 19), (1, 0), (3, 1), (2, 0), (4, 2), (0, 19), (17, 18),
            (18, 19)),
    bone_pairs=((0, 19), (1, 0), (2, 0), (3, 1), (4, 2), (5, 19), (6, 19), (7, 5), (8, 6),
                (9, 7), (10, 8), (11, 17), (12, 17), (13, 11), (14, 12), (15, 13), (16, 14),
                (17, 18), (18, 19), (19, 19)),
    kbone_pairs=((0, 0), (1, 19), (2, 19), (3, 0), (4, 0), (5, 5), (6, 6), (7, 19), (8, 19),
                 (9, 5), (10, 6), (11, 18), (12, 18), (13, 17), (14, 17), (15, 11), (16, 12),
                 (17, 19), (18, 18), (19, 19)),
    left=_COCO_LEFT,
    right=_COCO_RIGHT,
    body_parts={'trunk': (5, 6, 11, 12, 17, 18, 19), 'head': (0, 1, 2, 3, 4), **_COCO_LIMBS},
    # Official k400 groups, 1-based there: [1..5, 18, 19, 20], [6, 8, 10], [7, 9, 11],
    # [12, 14, 16], [13, 15, 17].
    mix_parts=((0, 1, 2, 3, 4, 17, 18, 19), (5, 7, 9), (6, 8, 10), (11, 13, 15), (12, 14, 16)),
    synonyms={
        **_COCO_SYNONYMS, 'pelvis': 17, 'hip': 17, 'hips': 17, 'waist': 17, 'spine base': 17,
        'spine': 18, 'belly': 18, 'abdomen': 18, 'torso': 18,
        'chest': 19, 'shoulder center': 19, 'upper spine': 19,
        'hip center': 17, 'middle of the spine': 18, 'neck': 19,
    },
    # Kinetics_Transform: mid-hip first, then mid-shoulder, then the midpoint of the two.
    derived_joints=((17, (11, 12)), (19, (5, 6)), (18, (17, 19))),
)

# ---------------------------------------------------------------- UAV-Human 17
# Read off the official graph (1-based there): 1 is the head (nose) linked to 14/15 (eyes),
# 14->16 and 15->17 (ears); 2-3-4 and 5-6-7 are the arms (shoulder, elbow, wrist), 8-9-10
# and 11-12-13 the legs (hip, knee, ankle); the shoulders and hips form a ring. The head is
# not linked to the body in the official graph, so the graph has two components.
# Names follow the numbering of the official UAV prompt ("2-right shoulder, 5-left shoulder,
# 8-right hip, 14-right eye, ..."): the person's right side comes first. The flip pairs
# (left[i] <-> right[i]) are the official ones: 2<->5, 3<->6, 4<->7, 8<->11, 9<->12,
# 10<->13, 14<->15, 16<->17 (1-based).
_UAV = Layout(
    name='uav',
    joint_names=(
        'nose', 'right shoulder', 'right elbow', 'right wrist', 'left shoulder', 'left elbow',
        'left wrist', 'right hip', 'right knee', 'right ankle', 'left hip', 'left knee',
        'left ankle', 'right eye', 'left eye', 'right ear', 'left ear'),
    center=1,
    inward=_one_based([
        (2, 3), (2, 5), (3, 4), (5, 6), (6, 7), (2, 8), (8, 9), (8, 11), (9, 10), (5, 11),
        (11, 12), (12, 13), (1, 14), (1, 15), (14, 16), (15, 17)]),
    bone_pairs=((0, 0), (1, 1), (2, 1), (3, 2), (4, 1), (5, 4), (6, 5), (7, 1), (8, 7), (9, 8),
                (10, 7), (11, 10), (12, 11), (13, 0), (14, 0), (15, 13), (16, 14)),
    kbone_pairs=((0, 0), (1, 1), (2, 2), (3, 1), (4, 4), (5, 1), (6, 4), (7, 7), (8, 1), (9, 7),
                 (10, 1), (11, 4), (12, 10), (13, 13), (14, 14), (15, 0), (16, 0)),
    left=(4, 5, 6, 10, 11, 12, 14, 16),
    right=(1, 2, 3, 7, 8, 9, 13, 15),
    body_parts={
        'trunk': (1, 4, 7, 10),
        'head': (0, 13, 14, 15, 16),
        'left_arm': (4, 5, 6),
        'right_arm': (1, 2, 3),
        'left_leg': (10, 11, 12),
        'right_leg': (7, 8, 9),
    },
    # Official uav groups, 1-based there: [1, 14, 15, 16, 17], [2, 3, 4], [5, 6, 7],
    # [8, 9, 10], [11, 12, 13].
    mix_parts=((0, 13, 14, 15, 16), (1, 2, 3), (4, 5, 6), (7, 8, 9), (10, 11, 12)),
    synonyms={
        'head': 0, 'face': 0, 'left hand': 6, 'right hand': 3, 'left foot': 12, 'right foot': 9,
    },
)

# ---------------------------------------------------------------- MediaPipe hand 21
_HANDMP = Layout(
    name='handmp',
    joint_names=(
        'wrist', 'thumb cmc', 'thumb mcp', 'thumb ip', 'thumb tip',
        'index finger mcp', 'index finger pip', 'index finger dip', 'index finger tip',
        'middle finger mcp', 'middle finger pip', 'middle finger dip', 'middle finger tip',
        'ring finger mcp', 'ring finger pip', 'ring finger dip', 'ring finger tip',
        'pinky mcp', 'pinky pip', 'pinky dip', 'pinky tip'),
    center=0,
    inward=((1, 0), (2, 1), (3, 2), (4, 3), (5, 0), (6, 5), (7, 6), (8, 7), (9, 0), (10, 9),
            (11, 10), (12, 11), (13, 0), (14, 13), (15, 14), (16, 15), (17, 0), (18, 17),
            (19, 18), (20, 19)),
    # Each joint's bone points to its parent in the graph (the wrist to itself).
    bone_pairs=((0, 0), (1, 0), (2, 1), (3, 2), (4, 3), (5, 0), (6, 5), (7, 6), (8, 7), (9, 0),
                (10, 9), (11, 10), (12, 11), (13, 0), (14, 13), (15, 14), (16, 15), (17, 0),
                (18, 17), (19, 18), (20, 19)),
    # k-bones skip one joint towards the wrist, as the official k-bones do for limbs.
    kbone_pairs=((0, 0), (1, 1), (2, 0), (3, 1), (4, 2), (5, 5), (6, 0), (7, 5), (8, 6), (9, 9),
                 (10, 0), (11, 9), (12, 10), (13, 13), (14, 0), (15, 13), (16, 14), (17, 17),
                 (18, 0), (19, 17), (20, 18)),
    left=(),
    right=(),
    body_parts={
        'palm': (0, 1, 5, 9, 13, 17),
        'thumb': (1, 2, 3, 4),
        'index': (5, 6, 7, 8),
        'middle': (9, 10, 11, 12),
        'ring': (13, 14, 15, 16),
        'pinky': (17, 18, 19, 20),
    },
    mix_parts=((0, 1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12), (13, 14, 15, 16),
               (17, 18, 19, 20)),
    synonyms={
        'hand': 0, 'palm': 9, 'thumb': 4, 'index finger': 8, 'index': 8, 'middle finger': 12,
        'ring finger': 16, 'pinky': 20, 'little finger': 20, 'little finger tip': 20,
    },
)

#: Every known layout by name.
LAYOUTS: Mapping[str, Layout] = MappingProxyType(
    {layout.name: layout for layout in (_NTU, _OPENPOSE, _COCO, _COCO_NEW, _UAV, _HANDMP)})


def get_layout(name: str | Layout) -> Layout:
    """The layout called ``name`` (a :class:`Layout` is returned as is).

    Raises:
        KeyError: listing the known layout names when ``name`` is unknown.
    """
    if isinstance(name, Layout):
        return name
    try:
        return LAYOUTS[name]
    except (KeyError, TypeError):
        raise KeyError(f'unknown skeleton layout {name!r}; known layouts: '
                       f'{", ".join(sorted(LAYOUTS))}') from None
