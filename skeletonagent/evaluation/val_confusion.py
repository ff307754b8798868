"""The validation confusion matrix of every validation of a training run, kept on disk.

The validation metric (:class:`~skeletonagent.evaluation.accuracy.SkeletonAccuracy` with
``confusion=True``, which the engine gives the validation evaluator) returns the matrix under
:data:`CONFUSION_METRIC` (``acc/confusion``); the engine's ``ValHistoryHook`` writes it to
``WORK_DIR/val_confusion/epoch_NNN.npy`` (rows: true class, columns: predicted class, int64).
The agent reads them back to measure what each of its rounds changed
(:mod:`skeletonagent.evaluation.agent_effect`).
"""
from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..utils.fileio import atomic_write_bytes

__all__ = ['VAL_CONFUSION_DIR', 'CONFUSION_METRIC', 'confusion_of', 'val_confusion_path',
           'save_val_confusion', 'read_val_confusions', 'drop_val_confusions']

#: Folder of the matrices, under the work dir.
VAL_CONFUSION_DIR = 'val_confusion'
#: The key of the matrix in the validation metrics (``SkeletonAccuracy``'s prefix ``acc``).
CONFUSION_METRIC = 'acc/confusion'

_NAME = re.compile(r'^epoch_(\d+)\.npy$')


def confusion_of(metrics: Mapping | None) -> np.ndarray | None:
    """The confusion matrix in a validation's metrics (:data:`CONFUSION_METRIC`), or None."""
    if not metrics or CONFUSION_METRIC not in metrics:
        return None
    matrix = np.asarray(metrics[CONFUSION_METRIC])
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        return None
    return matrix.astype(np.int64)


def val_confusion_path(work_dir: str | os.PathLike, epoch: int) -> Path:
    """Where the matrix of the validation after ``epoch`` (1-based) lies."""
    return Path(work_dir) / VAL_CONFUSION_DIR / f'epoch_{int(epoch):03d}.npy'


def save_val_confusion(work_dir: str | os.PathLike, epoch: int, matrix: np.ndarray) -> Path:
    """Write one validation's matrix (atomically); returns its path."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(matrix, dtype=np.int64))
    path = val_confusion_path(work_dir, epoch)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _files(work_dir: str | os.PathLike) -> dict[int, Path]:
    folder = Path(work_dir) / VAL_CONFUSION_DIR
    if not folder.is_dir():
        return {}
    found = {}
    for path in folder.iterdir():
        match = _NAME.match(path.name)
        if match:
            found[int(match.group(1))] = path
    return found


def read_val_confusions(work_dir: str | os.PathLike, up_to: int | None = None
                        ) -> dict[int, np.ndarray]:
    """``{epoch: matrix}`` of every kept validation (only epochs ``<= up_to`` when given).

    Raises:
        ValueError: naming the file, for a matrix that cannot be read or is not square.
    """
    out: dict[int, np.ndarray] = {}
    for epoch, path in sorted(_files(work_dir).items()):
        if up_to is not None and epoch > up_to:
            continue
        try:
            matrix = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f'{path}: not a confusion matrix ({exc})') from exc
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f'{path}: a confusion matrix must be square, got shape '
                             f'{matrix.shape}')
        out[epoch] = matrix.astype(np.int64)
    return out


def drop_val_confusions(work_dir: str | os.PathLike, after: int | None = None) -> list[Path]:
    """Remove the kept matrices of epochs ``> after`` (all with None): a new run in the same
    work dir starts empty, a resumed one drops what a killed run wrote past its checkpoint."""
    removed = []
    for epoch, path in _files(work_dir).items():
        if after is None or epoch > after:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
