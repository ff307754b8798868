"""Reading and checking a PYSKL annotation pickle, sample by sample.

:class:`~skeletonagent.datasets.PoseDataset` loads its file with these functions, and so do
the preparation checker (``datasets/prep/check.py``), the demo data and inference: every
reader turns a bad file into the same :class:`DataError`, which names the file, the sample
(its ``frame_dir``) and the field at fault, so one bad sample among 100k can be found.

The file format (PYSKL's)::

    dict(split=dict(<split name>=[frame_dir, ...], ...),
         annotations=[dict(frame_dir=str, label=int, total_frames=int,
                           keypoint=np.ndarray (M, T, V, C),          # C in (2, 3)
                           keypoint_score=np.ndarray (M, T, V),       # optional
                           img_shape=(h, w), original_shape=(h, w)),  # optional
                      ...])
"""
from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from numbers import Integral, Real
from typing import Any

import numpy as np

from ..skeleton import Layout, get_layout
from .errors import DataError
from .pipelines import Compose

__all__ = ['load_annotation_file', 'validate_annotation', 'expected_joints', 'is_int',
           'REQUIRED_FIELDS', 'DATA_README']

#: Fields every sample must have (the identifier may be ``filename`` instead).
REQUIRED_FIELDS = ('label', 'total_frames', 'keypoint')
#: Where a missing annotation file error sends the user.
DATA_README = ('data/README.md in the SkeletonAgent repository says where each dataset '
               'comes from and how to prepare it')


def load_annotation_file(path: str | os.PathLike) -> Any:
    """Unpickle ``path``, turning every way it can fail into a :class:`DataError`."""
    try:
        with open(path, 'rb') as f:
            return pickle.load(f)
    except FileNotFoundError:
        raise DataError(f'annotation file not found ({DATA_README})', file=path) from None
    except IsADirectoryError:
        raise DataError('annotation file is a directory, not a pickle', file=path) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            ImportError, IndexError, KeyError, MemoryError, UnicodeDecodeError) as exc:
        raise DataError(f'cannot be unpickled (not a pickle, or truncated): '
                        f'{type(exc).__name__}: {exc}', file=path) from exc


def is_int(value: Any) -> bool:
    """An integer of Python or numpy, not a bool (``True`` is no label)."""
    return isinstance(value, Integral) and not isinstance(value, (bool, np.bool_))


def _check_label(label: Any, num_classes: int | None, multi_class: bool, fail) -> None:
    labels = label if multi_class and isinstance(label, (list, tuple)) else [label]
    for one in labels:
        if not is_int(one):
            fail('label', f'must be an int, got {type(one).__name__} {one!r}')
        if one < 0:
            fail('label', f'must be >= 0, got {one}')
        if num_classes is not None and one >= num_classes:
            fail('label', f'must be < num_classes={num_classes}, got {one}')


def validate_annotation(ann: Any, *, file: str, index: int, num_classes: int | None = None,
                        multi_class: bool = False, need_keypoint: bool = True,
                        identifier: str = 'frame_dir',
                        joints: tuple[int, str] | None = None) -> None:
    """Check one annotation dict; raise :class:`DataError` naming file, sample and field.

    ``joints`` is ``(V, who expects it)``, e.g. ``(25, "layout 'nturgb+d'")``: the keypoints
    must have V joints. Every check is O(1) numpy work per sample (finiteness is one
    reduction over the array), so checking a whole NTU file costs little next to reading it
    (``bench/validation.py``; figures in ``bench/README.md``).
    """
    if not isinstance(ann, Mapping):
        raise DataError(f'annotation #{index} must be a dict, got {type(ann).__name__}',
                        file=file, field='annotations')
    frame_dir = ann.get(identifier)

    def fail(field: str, message: str):
        raise DataError(message, file=file,
                        frame_dir=frame_dir if frame_dir is not None else f'#{index}',
                        field=field)

    if frame_dir is None:
        fail(identifier, f'annotation #{index} has no {identifier!r}')
    required = REQUIRED_FIELDS if need_keypoint else REQUIRED_FIELDS[:2]
    for name in required:
        if name not in ann:
            fail(name, f'required field missing (sample has: {", ".join(map(str, ann))})')

    _check_label(ann['label'], num_classes, multi_class, fail)

    total_frames = ann['total_frames']
    if not is_int(total_frames) or total_frames < 0:
        fail('total_frames', f'must be a non-negative int, got {total_frames!r}')

    if not need_keypoint:
        return
    keypoint = ann['keypoint']
    if not isinstance(keypoint, np.ndarray):
        fail('keypoint', f'must be a numpy array, got {type(keypoint).__name__}')
    if keypoint.ndim != 4:
        fail('keypoint', f'must be 4-d (M, T, V, C), got shape {keypoint.shape}')
    if keypoint.shape[-1] not in (2, 3):
        fail('keypoint', f'last dim C must be 2 or 3, got shape {keypoint.shape}')
    if not (np.issubdtype(keypoint.dtype, np.floating)
            or np.issubdtype(keypoint.dtype, np.integer)):
        fail('keypoint', f'must hold real numbers, got dtype {keypoint.dtype}')
    if keypoint.shape[1] != total_frames:
        fail('total_frames', f'total_frames={total_frames} but keypoint has '
                             f'T={keypoint.shape[1]} frames (shape {keypoint.shape})')
    if joints is not None and keypoint.shape[2] != joints[0]:
        fail('keypoint', f'has {keypoint.shape[2]} joints (shape {keypoint.shape}) but '
                         f'{joints[1]} needs {joints[0]}')
    # the plain mask: faster than one float64 sum (bench/validation.py, bench/README.md)
    if keypoint.dtype.kind == 'f' and not np.isfinite(keypoint).all():
        bad = ~np.isfinite(keypoint)
        m, t, v, c = np.argwhere(bad)[0]
        fail('keypoint', f'{int(bad.sum())} non-finite coordinate(s), first at person {m}, '
                         f'frame {t}, joint {v}, channel {c}: {keypoint[m, t, v, c]}')

    if 'keypoint_score' in ann:
        score = ann['keypoint_score']
        if not isinstance(score, np.ndarray):
            fail('keypoint_score', f'must be a numpy array, got {type(score).__name__}')
        if score.shape != keypoint.shape[:3]:
            fail('keypoint_score', f'shape {score.shape} does not match keypoint '
                                   f'(M, T, V) = {keypoint.shape[:3]}')
    for name in ('img_shape', 'original_shape'):
        if name in ann:
            shape = ann[name]
            if (not isinstance(shape, (tuple, list, np.ndarray)) or len(shape) != 2
                    or not all(isinstance(s, Real) and s > 0 for s in shape)):
                fail(name, f'must be (height, width) with positive sizes, got {shape!r}')


def expected_joints(layout: str | Layout | None = None,
                    pipeline: Compose | None = None) -> tuple[int, str] | None:
    """How many joints the stored keypoints must have, and who says so.

    ``layout`` (the file's layout, when given) and the pipeline's first layout-dependent
    transform (:meth:`Compose.required_joints`) must agree; either alone decides; ``None``
    when neither fixes V.

    Raises:
        ValueError: when the layout and the pipeline disagree (naming both).
    """
    from_pipeline = pipeline.required_joints() if pipeline is not None else None
    if layout is None:
        return from_pipeline
    layout = get_layout(layout)
    given = (layout.num_joints, f'layout {layout.name!r}')
    if from_pipeline is not None and from_pipeline[0] != given[0]:
        raise ValueError(f'{given[1]} has {given[0]} joints but {from_pipeline[1]} needs '
                         f'{from_pipeline[0]}')
    return given
