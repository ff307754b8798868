"""The report's tables: accuracy, per-class rows and confused pairs of a confusion matrix,
and the CSV files they are written to.

Every accuracy here is computed by :mod:`skeletonagent.evaluation.functional` (the same
functions as the validation metric), so the report's numbers and the log's agree.
"""
from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..functional import confusion_class_accuracy, confusion_mean_class_accuracy, confusion_top1_accuracy

__all__ = ['confused_pairs', 'confusion_block', 'per_class_rows', 'accuracy_line', 'write_csv',
           'write_tables']

PER_CLASS_HEADER = ('index', 'class', 'samples', 'correct', 'predicted', 'accuracy')
PAIRS_HEADER = ('true_index', 'true_class', 'predicted_index', 'predicted_class', 'count',
                'share_of_true_class')


def confused_pairs(confusion: np.ndarray) -> list[tuple[int, int, int, float]]:
    """``(true, predicted, count, share of the true class)`` for every confused pair, most
    frequent first (ties by class index)."""
    cm = np.asarray(confusion)
    support = cm.sum(1)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    rows, cols = np.nonzero(off)
    pairs = [(int(i), int(j), int(off[i, j]), float(off[i, j] / support[i]))
             for i, j in zip(rows, cols)]
    pairs.sort(key=lambda p: (-p[2], p[0], p[1]))
    return pairs


def confusion_block(confusion: np.ndarray, top_n: int) -> list[int]:
    """Indices of the ``top_n`` classes most involved in confusions (as true or predicted
    class), in class order."""
    cm = np.asarray(confusion)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    mass = off.sum(0) + off.sum(1)
    order = sorted(range(len(mass)), key=lambda i: (-mass[i], i))[:max(1, int(top_n))]
    return sorted(order)


def per_class_rows(cm: np.ndarray, names: Sequence[str]) -> list[list[Any]]:
    """``[index, name, samples, correct, predicted, accuracy]`` per class; the accuracy as
    text with 6 decimals, empty for a class without samples."""
    support, correct, predicted = cm.sum(1), np.diag(cm), cm.sum(0)
    recall = confusion_class_accuracy(cm)
    rows = []
    for i, name in enumerate(names):
        acc = f'{recall[i]:.6f}' if support[i] else ''
        rows.append([i, name, int(support[i]), int(correct[i]), int(predicted[i]), acc])
    return rows


def accuracy_line(cm: np.ndarray) -> str:
    """The summary's accuracy line of a confusion matrix."""
    return (f'top-1 accuracy {confusion_top1_accuracy(cm):.4f}, mean class accuracy '
            f'{confusion_mean_class_accuracy(cm):.4f} ({int(cm.sum())} test samples)')


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    """``rows`` under ``header`` as a UTF-8 CSV file."""
    with open(path, 'w', newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_tables(out: Path, cm: np.ndarray, names: Sequence[str]
                 ) -> tuple[list[list[Any]], list[tuple[int, int, int, float]]]:
    """Write ``confusion.csv``, ``per_class_accuracy.csv`` and ``confused_pairs.csv`` into
    ``out``; returns the per-class rows and the confused pairs (the page shows them too)."""
    write_csv(out / 'confusion.csv', ['true \\ predicted', *names],
              [[names[i], *map(int, cm[i])] for i in range(len(names))])
    per_class = per_class_rows(cm, names)
    write_csv(out / 'per_class_accuracy.csv', PER_CLASS_HEADER, per_class)
    pairs = confused_pairs(cm)
    write_csv(out / 'confused_pairs.csv', PAIRS_HEADER,
              [[i, names[i], j, names[j], c, f'{r:.6f}'] for i, j, c, r in pairs])
    return per_class, pairs
