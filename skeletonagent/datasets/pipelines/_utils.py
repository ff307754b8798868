"""Small helpers shared by the pipeline transforms (field checks, layout lookup)."""
from __future__ import annotations

from typing import Any

import numpy as np

from skeletonagent.skeleton import LAYOUTS, Layout, get_layout

#: |x| at or below this counts as a missing (zero) joint, as ``np.isclose(x, 0)`` does.
ZERO_ATOL = 1e-8


def sample_name(results: Any) -> str:
    """The sample's ``frame_dir`` (or '?' when the dict has none), for error messages."""
    if isinstance(results, (list, tuple)) and results:
        results = results[0]
    if isinstance(results, dict):
        return str(results.get('frame_dir', '?'))
    return '?'


def require(results: dict, key: str) -> Any:
    """``results[key]``, or a KeyError naming the missing field."""
    try:
        return results[key]
    except KeyError:
        raise KeyError(f'missing field {key!r} (present: {sorted(results)})') from None


def require_skeleton(results: dict, key: str = 'keypoint', channels: tuple[int, ...] | None = None
                     ) -> np.ndarray:
    """``results[key]`` checked to be an M×T×V×C array (optionally with C in ``channels``)."""
    value = require(results, key)
    if not isinstance(value, np.ndarray) or value.ndim != 4:
        shape = getattr(value, 'shape', None)
        raise ValueError(f'field {key!r} must be an M×T×V×C numpy array, got '
                         f'{type(value).__name__} with shape {shape}')
    if channels is not None and value.shape[-1] not in channels:
        raise ValueError(f'field {key!r} must have C in {channels}, got shape {value.shape}')
    return value


def check_layout(layout: Layout, array: np.ndarray, key: str = 'keypoint') -> None:
    """Raise a ValueError when ``array`` does not have the layout's number of joints."""
    if array.shape[2] != layout.num_joints:
        raise ValueError(f'field {key!r} has {array.shape[2]} joints but layout '
                         f'{layout.name!r} has {layout.num_joints} (shape {array.shape})')


def layout_for(dataset: str | Layout | None, num_joints: int) -> Layout | None:
    """The named layout, or (``dataset=None``) the first known layout with V joints."""
    if dataset is not None:
        return get_layout(dataset)
    for layout in LAYOUTS.values():
        if layout.num_joints == num_joints:
            return layout
    return None


def merge_score(results: dict, transform: str, dataset: str | None = None) -> None:
    """Append ``keypoint_score`` to 2D ``keypoint`` as a third channel (PYSKL's rule)."""
    if 'keypoint_score' not in results or 'keypoint' not in results:
        return
    if dataset == 'nturgb+d':
        raise ValueError(f'{transform}: NTU RGB+D 3D skeletons have no keypoint_score')
    keypoint = require_skeleton(results)
    if keypoint.shape[-1] != 2:
        raise ValueError(f"{transform}: only 2D keypoints have keypoint_score, field 'keypoint' "
                         f'has shape {keypoint.shape}')
    score = results.pop('keypoint_score')
    results['keypoint'] = np.concatenate([keypoint, score[..., None]], axis=-1)
