"""The joint-mask format: Class × V × V float masks of each class's critical joints.

One module encodes and decodes it, so that the agent's Selector (which writes masks), the
backbone's joint-constraint branch (which reads them) and the drawings (which show the joints
a mask holds) cannot drift apart. The format follows the official ``tools/text/cls_matrix.py``:

* joints (``j``): ``mask[c, joint, :] = 1`` for every critical joint of class ``c``;
* bones (``b``) / k-bones (``k``): ``mask[c, r, :] = 1`` for every row ``r`` whose pair
  ``layout.bone_pairs[r]`` / ``layout.kbone_pairs[r]`` holds a critical joint;
* motion streams (``jm``, ``bm``, ``km``) use their static stream's mask.

The official tool takes the position ``r`` of the pair in the pair list as the row
(``row_index='pair'``, matching the shipped ``*_critical_joints.npy``). For NTU the pair list
is not in joint order at two places ((21, 22) at 20, (20, 20) at 21), so the official row is
not the row the bone feature lands in (``bone[v1]``); ``row_index='joint'`` uses ``v1``.

A row is all ones or all zeros, so the backbone reads a mask through its row means
(:func:`row_weights`) and a drawing reads the critical rows back (:func:`rows_of_mask`).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .layouts import get_layout

__all__ = ['MASK_STREAMS', 'ROW_INDEX_MODES', 'mask_stream', 'encode_masks', 'row_weights',
           'rows_of_mask', 'check_mask_shape', 'MaskFormat']

#: The stream whose mask each modality uses (motion streams share their static stream's).
MASK_STREAMS: dict[str, str] = {'j': 'j', 'b': 'b', 'k': 'k', 'jm': 'j', 'bm': 'b', 'km': 'k'}
#: How a bone row is numbered: the pair's position (official) or its first joint.
ROW_INDEX_MODES = ('pair', 'joint')


def mask_stream(modality: str) -> str:
    """'j', 'b' or 'k': the stream whose mask ``modality`` uses ('bm' -> 'b').

    Raises:
        ValueError: for an unknown modality (the message lists the known ones).
    """
    try:
        return MASK_STREAMS[modality]
    except (KeyError, TypeError):
        raise ValueError(f'unknown modality {modality!r}; known: {sorted(MASK_STREAMS)}') \
            from None


def _layout(layout: Any) -> Any:
    # a name is looked up; a layout object (or a hand-made stand-in with joint_names and the
    # pair lists, as tests build) is used as it is
    return get_layout(layout) if isinstance(layout, str) else layout


def _row_membership(layout: Any, stream: str, row_index: str) -> np.ndarray:
    """Boolean (V, V): ``member[r, j]`` when feature row ``r`` involves joint ``j``."""
    num_joints = len(layout.joint_names)
    if stream == 'j':
        return np.eye(num_joints, dtype=bool)
    pairs_name = 'bone_pairs' if stream == 'b' else 'kbone_pairs'
    pairs = np.asarray(getattr(layout, pairs_name), dtype=np.int64).reshape(-1, 2)
    if len(pairs) != num_joints or pairs.min(initial=0) < 0 or pairs.max(initial=0) >= num_joints:
        raise ValueError(f'layout {getattr(layout, "name", "?")!r}: {pairs_name} must hold '
                         f'{num_joints} pairs of joints in 0..{num_joints - 1}')
    if row_index == 'pair':
        rows = np.arange(num_joints)
    elif row_index == 'joint':
        rows = pairs[:, 0]
    else:
        raise ValueError(f"row_index must be 'pair' or 'joint', got {row_index!r}")
    member = np.zeros((num_joints, num_joints), dtype=bool)
    for column in (0, 1):
        member[rows, pairs[:, column]] = True
    return member


def encode_masks(critical_joints_per_class: Sequence[Iterable[int]], layout: Any,
                 modality: str, row_index: str = 'pair') -> np.ndarray:
    """Class × V × V float32 masks of the critical joints (see the module docstring).

    Args:
        critical_joints_per_class: 0-based critical joints of every class.
        layout: the skeleton layout, a name or an object (its joint count and bone /
            k-bone pairs).
        modality: 'j', 'b', 'k', 'jm', 'bm' or 'km'.
        row_index: 'pair' (official) or 'joint'; only matters for bones and k-bones.

    Raises:
        ValueError: naming the class and the joint when a joint is out of range, or an
            unknown modality / row_index.
    """
    layout = _layout(layout)
    stream = mask_stream(modality)
    num_joints = len(layout.joint_names)
    member = _row_membership(layout, stream, row_index)
    selected = np.zeros((len(critical_joints_per_class), num_joints), dtype=bool)
    for cls, joints in enumerate(critical_joints_per_class):
        joints = np.asarray(list(joints), dtype=np.int64)
        bad = joints[(joints < 0) | (joints >= num_joints)]
        if bad.size:
            raise ValueError(f'class {cls}: joint {int(bad[0])} is outside 0..{num_joints - 1} '
                             f'of layout {getattr(layout, "name", "?")!r}')
        selected[cls, joints] = True
    # A row is on when any joint it involves is critical: (C, V) x (V_rows, V)^T.
    rows_on = (selected.astype(np.int32) @ member.T.astype(np.int32)) > 0
    masks = np.zeros((len(selected), num_joints, num_joints), dtype=np.float32)
    masks[rows_on] = 1.0
    return masks


def row_weights(masks: Any) -> Any:
    """Class × V: the weight each feature row has for each class, the mean of its mask row.

    This is how the backbone's joint-constraint branch reads the masks: the official
    ``direct_fc(einsum('nmv,cvu->nmcu', x, examplar)).mean(u)`` is linear, so only each
    row's mean over ``u`` matters. Works on a torch tensor or a NumPy array alike (the
    reduction is the array's own, so the backbone's numbers do not change).
    """
    return masks.mean(-1)


def rows_of_mask(masks: Any, class_index: int | None = None) -> list[int]:
    """The rows a mask sets: a class's critical joints for joint masks, the positions of the
    pairs holding one for bone / k-bone masks (so, approximately, the joints).

    Args:
        masks: ``Class×V×V`` (needs ``class_index``), ``V×V``, ``Class×V`` (rows already
            reduced; needs ``class_index``) or ``V`` (one class's row flags).
        class_index: the class for multi-class arrays.

    Raises:
        ValueError: a missing / out-of-range class or an unexpected shape.
    """
    masks = np.asarray(masks)
    if masks.ndim == 3 or (masks.ndim == 2 and class_index is not None
                           and masks.shape[0] != masks.shape[1]):
        if class_index is None:
            raise ValueError(f'masks of shape {masks.shape} hold {masks.shape[0]} classes: '
                             'give the class index')
        if not -masks.shape[0] <= class_index < masks.shape[0]:
            raise ValueError(f'class {class_index} is out of range: the masks hold '
                             f'{masks.shape[0]} classes (0..{masks.shape[0] - 1})')
        masks = masks[class_index]
    elif masks.ndim == 2 and class_index is not None and masks.shape[0] == masks.shape[1]:
        # square Class×V with Class == V is indistinguishable from one V×V mask: a V×V mask
        # has every column of a row set; Class×V rows are per-class flags.
        if not (masks == masks[:, :1]).all():
            masks = masks[class_index]
    if masks.ndim == 2:
        flags = (masks != 0).any(axis=1)
    elif masks.ndim == 1:
        flags = masks != 0
    else:
        raise ValueError(f'masks must be Class×V×V, V×V, Class×V or V; got shape {masks.shape}')
    return [int(i) for i in np.flatnonzero(flags)]


def check_mask_shape(shape: Sequence[int], num_classes: int, num_joints: int,
                     source: str = 'agent masks', layout: str | None = None) -> None:
    """Raise ``ValueError`` unless ``shape`` is ``(num_classes, num_joints, num_joints)``.

    The message names where the masks came from and, given it, the layout the joint count
    comes from, so that masks of another skeleton or dataset are caught before training.
    """
    expected = (int(num_classes), int(num_joints), int(num_joints))
    if tuple(int(s) for s in shape) != expected:
        of = f' of layout {layout!r}' if layout else ''
        raise ValueError(f'{source}: shape {tuple(shape)}, expected {expected} (classes, '
                         f'joints{of}, joints)')


@dataclass(frozen=True)
class MaskFormat:
    """How one run's masks are laid out: the skeleton (its joints and pairs), the stream and
    the row numbering of bones. Built once from the model (its graph's layout and its
    stream), so that masks, prompts and the backbone agree by construction.

    Attributes:
        layout: a layout name or object (a name is looked up).
        modality: 'j', 'b', 'k', 'jm', 'bm' or 'km'.
        row_index: 'pair' (official) or 'joint' (see the module docstring).

    Raises:
        ValueError / KeyError: an unknown modality, row_index or layout name.
    """

    layout: Any
    modality: str = 'j'
    row_index: str = 'pair'

    def __post_init__(self) -> None:
        mask_stream(self.modality)
        if self.row_index not in ROW_INDEX_MODES:
            raise ValueError(f'row_index must be one of {ROW_INDEX_MODES}, got {self.row_index!r}')
        object.__setattr__(self, 'layout', _layout(self.layout))

    @property
    def stream(self) -> str:
        """The stream whose mask the modality uses ('bm' -> 'b')."""
        return mask_stream(self.modality)

    @property
    def num_joints(self) -> int:
        return len(self.layout.joint_names)

    def encode(self, critical_joints_per_class: Sequence[Iterable[int]]) -> np.ndarray:
        """Class × V × V masks of the critical joints (:func:`encode_masks`)."""
        return encode_masks(critical_joints_per_class, self.layout, self.modality, self.row_index)

    def check(self, shape: Sequence[int], num_classes: int, source: str = 'agent masks') -> None:
        """Raise ``ValueError`` unless masks of ``shape`` fit this format and ``num_classes``."""
        check_mask_shape(shape, num_classes, self.num_joints, source,
                         layout=getattr(self.layout, 'name', None))
