"""Synthetic demo dataset: 12 named actions on the NTU RGB+D 25-joint skeleton.

Each sample animates a standing rest pose with a small forward-kinematics rig: a motion is
a set of time-varying rotations, each turning the sub-tree of one joint (the joint and
everything further from the pelvis) about that joint. Rotations are applied from the
extremities inwards, so an elbow bend is carried along by the shoulder's rotation. The
classes move the joints their names say, and come in pairs that differ only subtly (left vs
right, raise vs wave, nod vs shake, squat vs jump) so a model confuses them early on.

The ``hard`` variant (:data:`DEMO_HARD_CLASSES`, ``data/demo/demo_hard_3danno.pkl``) keeps
only such pairs, closer still: the same arm raised high, pointed forward (the ranges of the
arm's angle overlap a little) or bent to the head, left or right; a kick against a held knee
lift of the same leg; the head tilted left or right, nodded or shaken. Some samples are
ambiguous by construction, so that no model reaches 100 %.

Per-sample variation: length (30-80 frames), timing, number of cycles, amplitude, body
size, rest-pose jitter, idle arm sway and body sway, rotation about the vertical axis (±30°),
camera height and tilt, position, sensor noise, and a second (idle) person in some samples.
Coordinates are metres in Kinect camera space (y up, z away from the camera), like NTU after
PYSKL's preprocessing. Everything is vectorised over frames and deterministic under ``seed``.

Joint indices come from :func:`skeletonagent.skeleton.get_layout`; the rest pose and the
kinematic tree from :mod:`skeletonagent.skeleton.geometry`; rotations are scipy's
:class:`~scipy.spatial.transform.Rotation`.
"""
from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from ..skeleton import get_layout, layout_tree, rest_pose
from ..utils.fileio import atomic_write_bytes
from .annotations import load_annotation_file
from .errors import DataError

__all__ = ['DEMO_CLASSES', 'DEMO_HARD_CLASSES', 'DEMO_VARIANTS', 'DEMO_LAYOUT',
           'DEMO_DATA_VERSION', 'DEMO_ANN_FILE', 'DEMO_HARD_ANN_FILE', 'demo_classes',
           'make_demo_annotations', 'ensure_demo_data']

#: Layout of the demo skeletons.
DEMO_LAYOUT = 'nturgb+d'

#: Bumped whenever the generated data changes, so stale demo files get regenerated.
DEMO_DATA_VERSION = 2

#: Where the demo configs read the demo data, relative to the working directory: the only
#: place :class:`~skeletonagent.datasets.demo.DemoPoseDataset` generates a missing file.
DEMO_ANN_FILE = 'data/demo/demo_3danno.pkl'

#: Where the hard demo config reads its data (generated there on first use, like the demo's).
DEMO_HARD_ANN_FILE = 'data/demo/demo_hard_3danno.pkl'

#: Demo action names; label ``i`` is ``DEMO_CLASSES[i]``.
DEMO_CLASSES: tuple[str, ...] = (
    'raise left hand', 'raise right hand', 'wave left hand', 'wave right hand',
    'kick left leg', 'kick right leg', 'nod head', 'shake head',
    'squat down', 'jump up', 'clap hands', 'bow')

#: The hard variant's action names: pairs that differ in a side or in a few joints only.
DEMO_HARD_CLASSES: tuple[str, ...] = (
    'raise left hand', 'raise right hand', 'point with left hand', 'point with right hand',
    'touch head with left hand', 'touch head with right hand', 'kick left leg',
    'lift left knee', 'tilt head left', 'tilt head right', 'nod head', 'shake head')

#: The generator's variants and their classes.
DEMO_VARIANTS: dict[str, tuple[str, ...]] = {'standard': DEMO_CLASSES, 'hard': DEMO_HARD_CLASSES}

_SPLIT_IDS = {'train': 0, 'val': 1, 'test': 2}


# ------------------------------------------------------------------ small maths helpers
def _rot(axis: str, angle: np.ndarray | float) -> Rotation:
    """Rotations about body axis 'x' | 'y' | 'z' by ``angle`` radians (one per frame).

    ``a * b`` composes (``b`` first), as the matrix product ``A @ B`` would.
    """
    return Rotation.from_euler(axis, np.asarray(angle)[..., None])


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _hold(s: np.ndarray, rise: float) -> np.ndarray:
    """0 → 1 over the first ``rise`` of the action, hold, 1 → 0 over the last ``rise``."""
    return _smoothstep(s / rise) * _smoothstep((1.0 - s) / rise)


def _pulse(s: np.ndarray, centre: float, half_width: float) -> np.ndarray:
    """Raised-cosine bump of height 1 at ``centre``, zero beyond ``half_width``."""
    d = np.clip((s - centre) / half_width, -1.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * d))


def _deg(value: float | np.ndarray) -> float | np.ndarray:
    return np.deg2rad(value)


# ------------------------------------------------------------------ the rig
class _Rig:
    """A layout's rest pose and kinematic tree, re-rooted at the pelvis."""

    def __init__(self, layout_name: str) -> None:
        self.layout = get_layout(layout_name)
        self.rest = rest_pose(self.layout)
        tree = layout_tree(self.layout, root='pelvis')
        self.depth = tree.depth
        self._subtrees = {joint: np.array(tree.subtree(joint))
                          for joint in range(self.layout.num_joints)}
        self.feet = np.array([self.idx(n) for n in
                              ('left ankle', 'left foot', 'right ankle', 'right foot')])

    def idx(self, name: str) -> int:
        return self.layout.index(name)

    def pose(self, rest: np.ndarray, rotations: Mapping[str, Rotation]) -> np.ndarray:
        """Positions (T, V, 3): ``rest`` (V, 3) with each joint's sub-tree turned about it."""
        num_frames = len(next(iter(rotations.values()))) if rotations else 1
        points = np.broadcast_to(rest, (num_frames, *rest.shape)).copy()
        order = sorted(rotations, key=lambda name: -self.depth[self.idx(name)])
        for name in order:
            joint = self.idx(name)
            members = self._subtrees[joint]
            pivot = points[:, joint:joint + 1]
            points[:, members] = pivot + np.einsum(
                'tij,tvj->tvi', rotations[name].as_matrix(), points[:, members] - pivot)
        return points


def _compose(rotations: dict[str, Rotation], name: str, rotation: Rotation) -> None:
    """Add ``rotation`` on top of what ``name`` already turns by (applied after it)."""
    rotations[name] = rotation * rotations[name] if name in rotations else rotation


# ------------------------------------------------------------------ the actions
# Each takes (s, rng) — s (T,) the action's own time in [0, 1] — and returns the joint
# rotations plus a vertical lift (T,) in metres. Body axes: x subject's left, y up,
# z forward; rotating about x by -a swings a hanging limb forward, about z by +a swings a
# left limb outwards (side = +1) and about y turns towards the subject's left.
Motion = tuple[dict[str, Rotation], np.ndarray]


def _arm_held_forward(side: int, s: np.ndarray, rng: np.random.Generator,
                      flex_deg: tuple[float, float], elbow_deg: tuple[float, float]) -> Motion:
    """One arm swung forward and held: flexion and elbow bend drawn from the given ranges
    (degrees), a little abduction (the random draws in this order: hold, flex, abduct, elbow)."""
    arm = 'left' if side > 0 else 'right'
    env = _hold(s, rng.uniform(0.25, 0.4))
    flex = _deg(rng.uniform(*flex_deg)) * env
    abduct = _deg(rng.uniform(0, 20)) * env
    elbow = _deg(rng.uniform(*elbow_deg)) * env
    return {f'{arm} elbow': _rot('x', -elbow),
            f'{arm} shoulder': _rot('x', -flex) * _rot('z', side * abduct)}, np.zeros_like(s)


def _raise_hand(side: int, s: np.ndarray, rng: np.random.Generator) -> Motion:
    return _arm_held_forward(side, s, rng, (140, 170), (5, 25))


def _wave_hand(side: int, s: np.ndarray, rng: np.random.Generator) -> Motion:
    arm = 'left' if side > 0 else 'right'
    env = _hold(s, rng.uniform(0.2, 0.3))
    abduct = _deg(rng.uniform(70, 100)) * env
    flex = _deg(rng.uniform(0, 30)) * env
    swing = _deg(rng.uniform(20, 35)) * np.sin(
        2 * np.pi * rng.uniform(2, 4) * s + rng.uniform(0, 2 * np.pi)) * env ** 2
    forearm_up = _deg(rng.uniform(80, 110)) * env + swing
    wrist = rng.uniform(0.0, 0.5) * swing                      # the hand flicks along
    return {f'{arm} wrist': _rot('z', side * wrist),
            f'{arm} elbow': _rot('z', side * forearm_up),
            f'{arm} shoulder': _rot('x', -flex) * _rot('z', side * abduct)}, np.zeros_like(s)


def _kick_leg(side: int, s: np.ndarray, rng: np.random.Generator) -> Motion:
    leg = 'left' if side > 0 else 'right'
    num_kicks = int(rng.integers(1, 3))
    centres = np.array([0.5]) if num_kicks == 1 else np.array([0.3, 0.7])
    centres = centres + rng.uniform(-0.08, 0.08, size=num_kicks)
    half_width = rng.uniform(0.12, 0.2) / num_kicks ** 0.5
    hip, knee = np.zeros_like(s), np.zeros_like(s)
    for centre in centres:
        hip += _pulse(s, centre, half_width)
        knee += _pulse(s, centre - 0.5 * half_width, 0.6 * half_width)
    hip *= _deg(rng.uniform(50, 90))
    knee *= _deg(rng.uniform(40, 80))
    return {f'{leg} knee': _rot('x', knee),
            f'{leg} hip': _rot('x', -hip),
            'middle of the spine': _rot('x', -0.15 * hip)}, np.zeros_like(s)


def _nod_head(s: np.ndarray, rng: np.random.Generator) -> Motion:
    env = _hold(s, 0.15)
    cycles = rng.uniform(1.5, 3.5)
    pitch = _deg(rng.uniform(30, 45)) * env * 0.5 * (1 - np.cos(2 * np.pi * cycles * s))
    # The upper back bends along a little (moving the neck forward); the arms keep hanging.
    rotations = {'neck': _rot('x', pitch), 'spine': _rot('x', 0.4 * pitch)}
    for arm in ('left', 'right'):
        rotations[f'{arm} shoulder'] = _rot('x', -0.4 * pitch)
    return rotations, np.zeros_like(s)


def _shake_head(s: np.ndarray, rng: np.random.Generator) -> Motion:
    env = _hold(s, 0.15)
    yaw = _deg(rng.uniform(35, 55)) * env * np.sin(
        2 * np.pi * rng.uniform(2, 4) * s + rng.uniform(0, 2 * np.pi))
    # A slight tilt towards the side the face turns to (the head joint sits close to the
    # neck's vertical axis, so a pure turn would hardly move it), and the shoulders turn a
    # little along with the head while the arms keep hanging.
    rotations = {'neck': _rot('y', yaw) * _rot('z', -0.35 * yaw), 'spine': _rot('y', 0.3 * yaw)}
    for arm in ('left', 'right'):
        rotations[f'{arm} shoulder'] = _rot('y', -0.3 * yaw)
    return rotations, np.zeros_like(s)


def _leg_bend(rotations: dict[str, Rotation], bend: np.ndarray) -> None:
    """Both legs: thighs forward by ``bend``, knees by twice that, feet kept flat."""
    for leg in ('left', 'right'):
        _compose(rotations, f'{leg} ankle', _rot('x', -bend))
        _compose(rotations, f'{leg} knee', _rot('x', 2 * bend))
        _compose(rotations, f'{leg} hip', _rot('x', -bend))


def _squat_down(s: np.ndarray, rng: np.random.Generator) -> Motion:
    bend = _deg(rng.uniform(60, 95)) * _hold(s, rng.uniform(0.25, 0.4))
    rotations: dict[str, Rotation] = {}
    _leg_bend(rotations, bend)
    rotations['middle of the spine'] = _rot('x', 0.35 * bend)
    arms_forward = rng.uniform(0.0, 1.0)
    for arm in ('left', 'right'):
        rotations[f'{arm} shoulder'] = _rot('x', -arms_forward * 0.9 * bend)
    return rotations, np.zeros_like(s)


def _jump_up(s: np.ndarray, rng: np.random.Generator) -> Motion:
    take_off = rng.uniform(0.35, 0.45)
    flight = rng.uniform(0.15, 0.3)
    crouch_width = rng.uniform(0.08, 0.14)
    crouch = (_pulse(s, take_off - crouch_width, crouch_width)
              + _pulse(s, take_off + flight + crouch_width, crouch_width))
    bend = _deg(rng.uniform(25, 45)) * crouch
    airborne = (s > take_off) & (s < take_off + flight)
    lift = np.where(airborne, np.sin(np.pi * (s - take_off) / flight), 0.0)
    lift *= rng.uniform(0.15, 0.35)
    rotations: dict[str, Rotation] = {}
    _leg_bend(rotations, bend)
    rotations['middle of the spine'] = _rot('x', 0.3 * bend)
    arm_swing = (_deg(rng.uniform(60, 150)) * _pulse(s, take_off + flight / 2, flight)
                 - 0.6 * bend)
    for arm in ('left', 'right'):
        rotations[f'{arm} shoulder'] = _rot('x', -arm_swing)
    return rotations, lift


def _clap_hands(s: np.ndarray, rng: np.random.Generator) -> Motion:
    env = _hold(s, rng.uniform(0.15, 0.25))
    flex = _deg(rng.uniform(45, 75)) * env
    elbow = _deg(rng.uniform(40, 80)) * env
    adduct = env * _deg(rng.uniform(15, 19) + rng.uniform(7, 10) * np.cos(
        2 * np.pi * rng.uniform(3, 6) * s + rng.uniform(0, 2 * np.pi)))
    rotations = {}
    for arm, side in (('left', 1), ('right', -1)):
        rotations[f'{arm} elbow'] = _rot('x', -elbow)
        rotations[f'{arm} shoulder'] = _rot('y', -side * adduct) * _rot('x', -flex)
    return rotations, np.zeros_like(s)


def _bow(s: np.ndarray, rng: np.random.Generator) -> Motion:
    bend = _deg(rng.uniform(30, 60)) * _hold(s, rng.uniform(0.25, 0.4))
    rotations = {'middle of the spine': _rot('x', bend), 'neck': _rot('x', 0.2 * bend)}
    for arm in ('left', 'right'):
        rotations[f'{arm} shoulder'] = _rot('x', -0.8 * bend)
    return rotations, np.zeros_like(s)


def _point_hand(side: int, s: np.ndarray, rng: np.random.Generator) -> Motion:
    """The straight arm held forward: the angle overlaps a low 'raise' a little."""
    return _arm_held_forward(side, s, rng, (75, 145), (0, 20))


def _touch_head(side: int, s: np.ndarray, rng: np.random.Generator) -> Motion:
    """The arm raised to the side and bent, the hand on the head."""
    arm = 'left' if side > 0 else 'right'
    env = _hold(s, rng.uniform(0.25, 0.4))
    flex = _deg(rng.uniform(110, 150)) * env
    abduct = _deg(rng.uniform(15, 40)) * env
    elbow = _deg(rng.uniform(95, 135)) * env
    return {f'{arm} elbow': _rot('x', -elbow) * _rot('z', -side * 0.4 * elbow),
            f'{arm} shoulder': _rot('x', -flex) * _rot('z', side * abduct)}, np.zeros_like(s)


def _lift_knee(side: int, s: np.ndarray, rng: np.random.Generator) -> Motion:
    """The thigh raised and held with the knee bent (a kick extends it again)."""
    leg = 'left' if side > 0 else 'right'
    env = _hold(s, rng.uniform(0.2, 0.35))
    hip = _deg(rng.uniform(55, 90)) * env
    knee = _deg(rng.uniform(60, 100)) * env
    return {f'{leg} knee': _rot('x', knee),
            f'{leg} hip': _rot('x', -hip),
            'middle of the spine': _rot('x', -0.15 * hip)}, np.zeros_like(s)


def _tilt_head(side: int, s: np.ndarray, rng: np.random.Generator) -> Motion:
    """The head held tilted towards one shoulder: only the head and neck move."""
    env = _hold(s, rng.uniform(0.2, 0.35))
    roll = _deg(rng.uniform(15, 35)) * env
    return {'neck': _rot('z', side * roll)}, np.zeros_like(s)


_MOTIONS: dict[str, Callable[[np.ndarray, np.random.Generator], Motion]] = {
    'raise left hand': lambda s, rng: _raise_hand(1, s, rng),
    'raise right hand': lambda s, rng: _raise_hand(-1, s, rng),
    'wave left hand': lambda s, rng: _wave_hand(1, s, rng),
    'wave right hand': lambda s, rng: _wave_hand(-1, s, rng),
    'kick left leg': lambda s, rng: _kick_leg(1, s, rng),
    'kick right leg': lambda s, rng: _kick_leg(-1, s, rng),
    'nod head': _nod_head,
    'shake head': _shake_head,
    'squat down': _squat_down,
    'jump up': _jump_up,
    'clap hands': _clap_hands,
    'bow': _bow,
}
assert tuple(_MOTIONS) == DEMO_CLASSES
_MOTIONS.update({
    'point with left hand': lambda s, rng: _point_hand(1, s, rng),
    'point with right hand': lambda s, rng: _point_hand(-1, s, rng),
    'touch head with left hand': lambda s, rng: _touch_head(1, s, rng),
    'touch head with right hand': lambda s, rng: _touch_head(-1, s, rng),
    'lift left knee': lambda s, rng: _lift_knee(1, s, rng),
    'tilt head left': lambda s, rng: _tilt_head(1, s, rng),
    'tilt head right': lambda s, rng: _tilt_head(-1, s, rng),
})
assert set(DEMO_HARD_CLASSES) <= set(_MOTIONS)


def demo_classes(variant: str = 'standard') -> tuple[str, ...]:
    """The action names of a variant of the demo data.

    Raises:
        ValueError: for an unknown variant, naming the known ones.
    """
    try:
        return DEMO_VARIANTS[variant]
    except KeyError:
        raise ValueError(f'unknown demo variant {variant!r}; choose from '
                         f'{", ".join(DEMO_VARIANTS)}') from None


# ------------------------------------------------------------------ one person, one clip
def _idle_rotations(num_frames: int, rng: np.random.Generator) -> dict[str, Rotation]:
    """Slow, small arm sway every person shows whatever else they do."""
    u = np.linspace(0.0, 1.0, num_frames)
    rotations = {}
    for arm in ('left', 'right'):
        sway = _deg(rng.uniform(1, 5)) * np.sin(
            2 * np.pi * rng.uniform(0.3, 1.2) * u + rng.uniform(0, 2 * np.pi))
        lean = _deg(rng.uniform(-4, 4)) * np.ones_like(u)
        rotations[f'{arm} shoulder'] = _rot('x', sway) * _rot('z', lean)
    return rotations


def _person(rig: _Rig, action: str | None, num_frames: int,
            rng: np.random.Generator) -> np.ndarray:
    """One person's clip (T, V, 3) in the body frame, feet on the floor."""
    rest = rig.rest * rng.uniform(0.85, 1.15)                 # body size
    rest[:, 0] *= rng.uniform(0.9, 1.1)                        # build (shoulder/hip width)
    rest = rest + rng.normal(0.0, 0.01, size=rest.shape)       # individual proportions
    rotations = _idle_rotations(num_frames, rng)
    lift = np.zeros(num_frames)
    if action is not None:
        u = np.linspace(0.0, 1.0, num_frames)
        start, end = rng.uniform(0.0, 0.15), rng.uniform(0.85, 1.0)
        s = np.clip((u - start) / (end - start), 0.0, 1.0)
        action_rotations, lift = _MOTIONS[action](s, rng)
        for name, rotation in action_rotations.items():
            _compose(rotations, name, rotation)
    points = rig.pose(rest, rotations)
    floor = points[:, rig.feet, 1].min(axis=1) - rest[rig.feet, 1].min()
    points[..., 1] += lift[:, None] - floor[:, None]
    u = np.linspace(0.0, 1.0, num_frames)
    for axis in (0, 2):                                        # body sway
        points[..., axis] += rng.uniform(0.005, 0.02) * np.sin(
            2 * np.pi * rng.uniform(0.2, 0.6) * u + rng.uniform(0, 2 * np.pi))[:, None]
    return points


def _place(points: np.ndarray, *, yaw: float, position: np.ndarray,
           camera: np.ndarray) -> np.ndarray:
    """Body frame → camera frame: face the camera (turned by ``yaw``), move, view."""
    turn = _rot('y', np.pi + yaw).as_matrix()
    return (points @ turn.T + position) @ camera.T


def _make_sample(rig: _Rig, action: str, rng: np.random.Generator,
                 second_person_prob: float) -> np.ndarray:
    num_frames = int(rng.integers(30, 81))
    floor_y = rng.uniform(-1.05, -0.7)                         # camera height above floor
    camera = _rot('x', _deg(rng.uniform(-6, 6))).as_matrix()
    main_position = np.array([rng.uniform(-0.5, 0.5), floor_y, rng.uniform(2.3, 3.6)])
    people = [_place(_person(rig, action, num_frames, rng),
                     yaw=_deg(rng.uniform(-30, 30)), position=main_position, camera=camera)]
    if rng.random() < second_person_prob:
        offset = np.array([rng.choice([-1, 1]) * rng.uniform(0.8, 1.4), 0.0,
                           rng.uniform(-0.4, 0.6)])
        people.append(_place(_person(rig, None, num_frames, rng),
                             yaw=_deg(rng.uniform(-60, 60)), position=main_position + offset,
                             camera=camera))
    keypoint = np.stack(people)                                # (M, T, V, 3)
    keypoint += rng.normal(0.0, rng.uniform(0.002, 0.006), size=keypoint.shape)
    return keypoint.astype(np.float32)


def _demo_meta(variant: str = 'standard', **params) -> dict:
    # the standard variant's meta has no 'variant' key: files written before it stay current
    extra = {} if variant == 'standard' else dict(variant=variant)
    return dict(generator=__name__, version=DEMO_DATA_VERSION, layout=DEMO_LAYOUT, **extra,
                **params)


def make_demo_annotations(*, num_train_per_class: int = 40, num_val_per_class: int = 10,
                          num_test_per_class: int = 10, seed: int = 0,
                          second_person_prob: float = 0.3, variant: str = 'standard') -> dict:
    """The demo dataset as a PYSKL annotation dict (pure: nothing is written).

    Args:
        variant: ``'standard'`` (:data:`DEMO_CLASSES`) or ``'hard'``
            (:data:`DEMO_HARD_CLASSES`).

    Returns:
        ``dict(split=dict(train=[...], val=[...], test=[...]), annotations=[...],
        classes=list(<the variant's classes>), meta=dict(generator, version, layout,
        <arguments>))``; each annotation holds ``frame_dir``, ``label`` (index into the
        classes), ``total_frames`` and ``keypoint`` (float32, M×T×25×3 with M 1 or 2). Sample
        ``(split, label, i)`` depends only on ``seed``, the variant and those three, so
        changing one split's size leaves the others alone.
    """
    classes = demo_classes(variant)
    rig = _Rig(DEMO_LAYOUT)
    sizes = {'train': num_train_per_class, 'val': num_val_per_class,
             'test': num_test_per_class}
    splits: dict[str, list[str]] = {name: [] for name in sizes}
    annotations = []
    # the standard variant's seeds (and sample names) are those it always had
    salt = [] if variant == 'standard' else [list(DEMO_VARIANTS).index(variant)]
    prefix = 'demo' if variant == 'standard' else f'demo_{variant}'
    for split, count in sizes.items():
        for label, action in enumerate(classes):
            for i in range(count):
                rng = np.random.default_rng([seed, _SPLIT_IDS[split], label, i, *salt])
                keypoint = _make_sample(rig, action, rng, second_person_prob)
                frame_dir = f'{prefix}_{split}_A{label + 1:03d}_{i:03d}'
                splits[split].append(frame_dir)
                annotations.append(dict(frame_dir=frame_dir, label=label,
                                        total_frames=keypoint.shape[1], keypoint=keypoint))
    meta = _demo_meta(variant, seed=seed, num_train_per_class=num_train_per_class,
                      num_val_per_class=num_val_per_class, num_test_per_class=num_test_per_class,
                      second_person_prob=second_person_prob)
    return dict(split=splits, annotations=annotations, classes=list(classes), meta=meta)


def _is_current(path: Path, wanted_meta: dict, any_size: bool = False) -> bool:
    """Whether the demo file at ``path`` was made by this generator version with these
    arguments (any sizes and seed with ``any_size``); False for an older demo file;
    DataError for a file that is no demo file."""
    try:
        data = load_annotation_file(path)
    except DataError as error:
        raise DataError(f'exists but cannot be read ({error.message}); delete it or pass '
                        'overwrite=True to regenerate the demo data', file=path) from error
    if isinstance(data, dict) and isinstance(data.get('meta'), dict) \
            and data['meta'].get('generator') == __name__:
        if any_size:
            fixed = ('generator', 'version', 'layout')
            return all(data['meta'].get(k) == wanted_meta[k] for k in fixed) and (
                data['meta'].get('variant', 'standard') == wanted_meta.get('variant', 'standard'))
        return data['meta'] == wanted_meta
    if isinstance(data, dict) and data.get('classes') in [list(c) for c in DEMO_VARIANTS.values()]:
        return False                   # written before files carried a version
    raise DataError('exists and is not a demo data file; refusing to replace it (delete it or '
                    'pass overwrite=True)', file=path)


def ensure_demo_data(path: str | os.PathLike, *, num_train_per_class: int = 40,
                     num_val_per_class: int = 10, num_test_per_class: int = 10,
                     seed: int = 0, overwrite: bool = False, any_size: bool = False,
                     variant: str = 'standard') -> Path:
    """Write the demo pickle to ``path`` unless it is already there; return the path.

    An existing file is kept when it holds the demo data for these arguments from this
    version of the generator (its ``meta``), and regenerated when it is an older or
    differently sized demo file, or another ``variant``. With ``any_size`` an existing file
    of this generator version and variant is kept whatever its sizes and seed (what a config
    pointing at a smaller demo file wants). ``overwrite`` regenerates unconditionally.

    The write is atomic (a temporary file in the same folder, then a rename), so concurrent
    callers (one per rank) and interrupted runs never leave a half-written file behind.

    Raises:
        DataError: when ``path`` holds something other than demo data (it is left alone).
    """
    path = Path(path).expanduser().absolute()
    demo_classes(variant)          # an unknown variant fails before anything is read
    params = dict(seed=seed, num_train_per_class=num_train_per_class,
                  num_val_per_class=num_val_per_class, num_test_per_class=num_test_per_class,
                  second_person_prob=0.3)
    if path.exists() and not overwrite and _is_current(path, _demo_meta(variant, **params),
                                                       any_size):
        return path
    data = make_demo_annotations(variant=variant, **params)
    atomic_write_bytes(path, pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
    return path
