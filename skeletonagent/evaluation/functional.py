"""Classification metrics on score matrices (NumPy, vectorised).

Numerically the same as PYSKL's / mmaction2's ``top_k_accuracy`` and ``mean_class_accuracy``:
top-k counts a sample as correct when its label is among the k highest scores; mean class
accuracy averages per-class recall over the classes present in the labels.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _as_score_matrix(scores: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    arr = np.asarray(scores if isinstance(scores, np.ndarray) else np.stack(list(scores)))
    if arr.ndim != 2:
        raise ValueError(f'scores must be N×num_classes, got shape {arr.shape}')
    return arr


def top_k_accuracy(scores, labels, topk: Sequence[int] = (1, 5)) -> list[float]:
    """Fraction of samples whose label is among the top-k scores, for each k."""
    scores = _as_score_matrix(scores)
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) != len(scores):
        raise ValueError(f'{len(scores)} score rows but {len(labels)} labels')
    if len(labels) == 0:
        return [0.0 for _ in topk]
    max_k = min(max(topk), scores.shape[1])
    # indices of the max_k largest scores, best first (stable for ties like argsort)
    top = np.argsort(-scores, axis=1, kind='stable')[:, :max_k]
    hits = top == labels[:, None]
    return [float(hits[:, :min(k, max_k)].any(axis=1).mean()) for k in topk]


def confusion_matrix(pred: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``cm[i, j]`` = number of samples of class i predicted as j (int64)."""
    pred = np.asarray(pred, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    flat = labels * num_classes + pred
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def mean_class_accuracy(scores, labels) -> float:
    """Mean over classes present in ``labels`` of the per-class top-1 recall."""
    scores = _as_score_matrix(scores)
    labels = np.asarray(labels, dtype=np.int64)
    return confusion_mean_class_accuracy(confusion_matrix(scores.argmax(axis=1), labels,
                                                          scores.shape[1]))


# The same metrics from a confusion matrix alone (rows: true class, columns: predicted), for
# what keeps only the matrix (a run's ``*_pred_confusion.npy``, the report).
def confusion_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Per-class top-1 recall ``cm[i, i] / cm[i].sum()`` (float64); NaN for a class without
    samples."""
    cm = np.asarray(cm)
    support = cm.sum(axis=1)
    out = np.full(cm.shape[0], np.nan)
    present = support > 0
    out[present] = np.diag(cm)[present] / support[present]
    return out


def confusion_mean_class_accuracy(cm: np.ndarray) -> float:
    """Mean of :func:`confusion_class_accuracy` over the classes with samples (0 if none)."""
    recall = confusion_class_accuracy(cm)
    present = ~np.isnan(recall)
    if not present.any():
        return 0.0
    return float(recall[present].mean())


def confusion_top1_accuracy(cm: np.ndarray) -> float:
    """Fraction of samples on the diagonal (0 for an empty matrix)."""
    cm = np.asarray(cm)
    total = cm.sum()
    return float(np.trace(cm) / total) if total else 0.0
