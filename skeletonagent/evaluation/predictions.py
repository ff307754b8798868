"""Prediction files (``{last,best}_pred.pkl``) and the record of which samples they score.

A prediction file is PYSKL's format: a pickled list of per-sample score arrays in dataset
order, nothing else (so the fusion helpers of other projects read it). Which samples those
are is written beside it, ``<name>_samples.json``: the annotation file, the split, the number
of classes, and every sample's ``frame_dir`` and label in order. Comparing runs
(:mod:`.compare`) checks the order against it; a file without one (from PYSKL, say) is
checked by its length and class count only.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Union

import numpy as np

from ..utils.fileio import atomic_write_text

__all__ = ['samples_path', 'write_prediction_samples', 'read_prediction_samples']

#: Reading the scores themselves: :func:`skeletonagent.evaluation.fusion.load_scores`.

PathLike = Union[str, os.PathLike]


def samples_path(pred_file: PathLike) -> Path:
    """``x_pred.pkl`` -> ``x_pred_samples.json``."""
    path = Path(pred_file)
    return path.with_name(path.stem + '_samples.json')


def write_prediction_samples(pred_file: PathLike, dataset: Any) -> Path | None:
    """Write the record of ``dataset``'s samples beside ``pred_file``; None (nothing written)
    for a dataset that does not name its samples (no ``frame_dirs``)."""
    frame_dirs = getattr(dataset, 'frame_dirs', None)
    if frame_dirs is None:
        return None
    labels = getattr(dataset, 'labels', None)
    ann_file = getattr(dataset, 'ann_file', None)
    record = dict(
        ann_file=str(Path(ann_file).resolve()) if ann_file else None,
        split=getattr(dataset, 'split', None),
        num_classes=getattr(dataset, 'num_classes', None),
        frame_dirs=[str(f) for f in frame_dirs],
        labels=[int(v) for v in labels] if labels is not None and np.asarray(labels).dtype != object
        else None)
    return atomic_write_text(samples_path(pred_file), json.dumps(record) + '\n')


def read_prediction_samples(pred_file: PathLike) -> dict | None:
    """The record beside ``pred_file``, or None when there is none.

    Raises:
        ValueError: naming the file, for a record that is not what
            :func:`write_prediction_samples` writes.
    """
    path = samples_path(pred_file)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding='utf-8'))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f'{path}: not a samples record ({exc})') from exc
    if not isinstance(record, dict) or not isinstance(record.get('frame_dirs'), list):
        raise ValueError(f'{path}: field "frame_dirs" missing or not a list')
    return record
