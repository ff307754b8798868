"""Multi-stream fusion: weighted sums of per-stream score files, as the paper reports them.

SkeletonAgent (like InfoGCN and PYSKL) trains one model per input stream — joint ``j``, bone
``b``, k-bone ``k`` and their motions ``jm``, ``bm``, ``km`` — and reports the weighted sums
of their test scores: the 2-stream ``j+b`` (weights 1,1), the 4-stream ``j+b+jm+bm``
(2,2,1,1) and the 6-stream ``j+b+k+jm+bm+km`` (2,2,2,1,1,1).

A prediction file is what ``tools/test.py --out`` and ``--test-best`` (``best_pred.pkl``)
write, PYSKL's format: a pickled list with one score array (``num_classes``,) per sample, in
the dataset's order. Scores are summed as stored (softmax probabilities averaged over clips
for our models), without renormalising. Labels come from the annotation pickle through
:class:`~skeletonagent.datasets.PoseDataset`, so they are in the same order.

``tools/ensemble.py`` is the command-line face of :func:`main`.
"""
from __future__ import annotations

import argparse
import itertools
import math
import os
import os.path as osp
import pickle
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..datasets import PoseDataset
from ..datasets.errors import DataError
from ..errors import SkeletonAgentError
from ..utils.fileio import atomic_write_bytes
from .functional import mean_class_accuracy, top_k_accuracy

__all__ = ['STREAMS', 'PAPER_FUSIONS', 'FusionError', 'FusionResult', 'load_scores',
           'split_labels', 'stream_names', 'check_sample_counts', 'fuse', 'evaluate',
           'paper_fusions', 'search_weights', 'format_results', 'run_ensemble', 'main']

#: The six streams, named as the official work_dirs name them.
STREAMS = ('j', 'b', 'k', 'jm', 'bm', 'km')
#: The paper's fusions: (name, {stream: weight}).
PAPER_FUSIONS = (
    ('2s', {'j': 1, 'b': 1}),
    ('4s', {'j': 2, 'b': 2, 'jm': 1, 'bm': 1}),
    ('6s', {'j': 2, 'b': 2, 'k': 2, 'jm': 1, 'bm': 1, 'km': 1}),
)
DEFAULT_GRID = (0, 1, 2, 3)


class FusionError(SkeletonAgentError, ValueError):
    """Prediction files that cannot be fused, or a request that is refused."""


@dataclass
class FusionResult:
    name: str
    streams: tuple[str, ...]
    weights: tuple[float, ...]
    top1: float
    top5: float
    mean_class: float


# ----------------------------------------------------------------------------------- inputs
def load_scores(path: str | os.PathLike) -> np.ndarray:
    """A prediction pickle as a float64 ``N × num_classes`` matrix."""
    try:
        with open(path, 'rb') as f:
            data = pickle.load(f)
    except FileNotFoundError:
        raise FusionError(f'prediction file not found: {path}') from None
    except Exception as exc:
        raise FusionError(f'prediction file {path} cannot be unpickled: '
                          f'{type(exc).__name__}: {exc}') from exc
    try:
        if isinstance(data, np.ndarray):
            scores = np.asarray(data, dtype=np.float64)
        elif isinstance(data, (list, tuple)) and data:
            scores = np.stack([np.asarray(s, dtype=np.float64).reshape(-1) for s in data])
        else:
            raise TypeError(f'{type(data).__name__}' + (' (empty)' if not data else ''))
    except (TypeError, ValueError) as exc:
        raise FusionError(f'prediction file {path} must hold a list of per-sample score '
                          f'arrays of one length (PYSKL format), got {exc}') from exc
    if scores.ndim != 2 or scores.shape[1] < 1:
        raise FusionError(f'prediction file {path}: scores must be N × num_classes, got shape '
                          f'{scores.shape}')
    if not np.isfinite(scores).all():
        raise FusionError(f'prediction file {path} holds non-finite scores')
    return scores


def split_labels(ann_file: str | os.PathLike, split: str | None) -> np.ndarray:
    """The labels of ``split`` in the dataset's (and so the prediction files') order."""
    # memcached=True reads the table of contents only: keypoints are not needed here (and
    # absent from Kinetics' table), so they are not checked; nothing connects to a server.
    dataset = PoseDataset(ann_file, [], split=split, memcached=True)
    if dataset.multi_class:
        raise FusionError('multi-label datasets are not supported')
    return dataset.labels


def stream_names(paths: Sequence[str], names: Sequence[str] | None = None) -> list[str]:
    """Each file's stream: ``names`` when given; else the parent folders' names when they
    all differ (``work_dirs/ntu60_xsub/{j,b}/best_pred.pkl`` → ``j``, ``b``); else the file
    names without suffix (``out/{j,b}.pkl`` → ``j``, ``b``)."""
    if names is not None:
        names = list(names)
        if len(names) != len(paths):
            raise FusionError(f'{len(names)} --names for {len(paths)} prediction files')
    else:
        names = [osp.basename(osp.dirname(osp.abspath(p))) for p in paths]
        if len(set(names)) < len(names):
            names = [osp.splitext(osp.basename(p))[0] for p in paths]
    seen: dict[str, str] = {}
    for name, path in zip(names, paths):
        if name in seen:
            raise FusionError(f'two prediction files are both stream {name!r} ({seen[name]}, '
                              f'{path}); name the streams with --names (e.g. --names '
                              f'{" ".join(STREAMS[:len(paths)])})')
        seen[name] = path
    return names


def check_sample_counts(scores: Sequence[np.ndarray], paths: Sequence[str], num_samples: int,
                        split: str | None, num_classes: int | None = None) -> None:
    """Every file must hold one score row per sample of the split, all of one width."""
    for s, path in zip(scores, paths):
        if len(s) != num_samples:
            raise FusionError(f'prediction file {path} has {len(s)} samples but split '
                              f'{split!r} has {num_samples}: it was not written for this split')
    widths = {s.shape[1] for s in scores}
    if len(widths) > 1:
        detail = ', '.join(f'{p}: {s.shape[1]}' for s, p in zip(scores, paths))
        raise FusionError(f'prediction files disagree on the number of classes ({detail})')
    if num_classes is not None and scores and scores[0].shape[1] < num_classes:
        raise FusionError(f'prediction files have {scores[0].shape[1]} classes but split '
                          f'{split!r} has labels up to {num_classes - 1}')


# ------------------------------------------------------------------------------ the maths
def fuse(scores: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """``Σ w_i · scores_i``."""
    if len(scores) != len(weights):
        raise FusionError(f'{len(weights)} weights for {len(scores)} streams')
    out = np.zeros_like(scores[0], dtype=np.float64)
    for s, w in zip(scores, weights):
        out += float(w) * s
    return out


def evaluate(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """top-1, top-5 and mean class accuracy (fractions)."""
    top1, top5 = top_k_accuracy(scores, labels, (1, 5))
    return dict(top1=top1, top5=top5, mean_class=mean_class_accuracy(scores, labels))


def _result(name, streams, weights, scores, labels) -> FusionResult:
    return FusionResult(name, tuple(streams), tuple(weights),
                        **evaluate(fuse(scores, weights), labels))


def paper_fusions(named: Mapping[str, np.ndarray], labels: np.ndarray) -> list[FusionResult]:
    """The paper's 2s / 4s / 6s fusions whose streams are all present."""
    out = []
    for name, weights in PAPER_FUSIONS:
        if all(s in named for s in weights):
            out.append(_result(name, list(weights), list(weights.values()),
                               [named[s] for s in weights], labels))
    return out


def search_weights(scores: Sequence[np.ndarray], labels: np.ndarray,
                   grid: Sequence[int] = DEFAULT_GRID) -> tuple[tuple[int, ...], float]:
    """The integer weights (one per stream, from ``grid``) with the best top-1.

    Weight vectors that are multiples of another one rank every sample the same way and are
    skipped; ties go to the smallest weight sum, then to the first in grid order.

    Exact (the same floating-point sums as :func:`fuse`) and fast: a class can reach a
    sample's label score under non-negative weights only if it scores (nearly) as high in
    some stream, so only those (sample, class) pairs are evaluated; a sample is right when
    no kept class beats its label (or ties it from before it: argmax takes the first).
    """
    grid = sorted({int(g) for g in grid})
    if not grid or grid[0] < 0:
        raise FusionError(f'the search grid must hold non-negative integers, got {grid}')
    candidates = [w for w in itertools.product(grid, repeat=len(scores))
                  if any(w) and math.gcd(*w) == 1]
    if not candidates:
        raise FusionError(f'the search grid {grid} yields no non-zero weights')
    labels = np.asarray(labels, dtype=np.int64)
    rows = np.arange(len(labels))
    rivals = np.zeros(scores[0].shape, dtype=bool)
    for s in scores:
        own = s[rows, labels][:, None]
        rivals |= s >= own - 1e-9 * np.abs(own)   # margin: rounding may create ties
    rivals[rows, labels] = False
    sample, cls = np.nonzero(rivals)                    # sorted by sample
    rival_scores = [s[sample, cls] for s in scores]
    label_scores = [s[sample, labels[sample]] for s in scores]
    before_label = cls < labels[sample]
    _, starts = np.unique(sample, return_index=True)

    best, best_key = None, None
    chunk = max(1, min(len(candidates), 4_000_000 // max(len(sample), 1)))
    for start in range(0, len(candidates), chunk):
        w = np.asarray(candidates[start:start + chunk], dtype=np.float64)   # G × K
        if len(sample):
            rival = np.zeros((len(w), len(sample)))
            own = np.zeros((len(w), len(sample)))
            for k in range(len(scores)):      # accumulated exactly as fuse() does
                rival += w[:, k:k + 1] * rival_scores[k][None]
                own += w[:, k:k + 1] * label_scores[k][None]
            beaten = (rival > own) | ((rival == own) & before_label[None])
            wrong = np.logical_or.reduceat(beaten, starts, axis=1).sum(axis=1)
        else:
            wrong = np.zeros(len(w))
        for g, n_wrong in enumerate(wrong):
            cand = candidates[start + g]
            key = (int(n_wrong), sum(cand))
            if best_key is None or key < best_key:
                best, best_key = cand, key
    return tuple(best), (len(labels) - best_key[0]) / len(labels)


# ---------------------------------------------------------------------------------- report
def _fmt_w(weights: Sequence[float]) -> str:
    return ','.join(f'{w:g}' for w in weights)


def format_results(results: Sequence[FusionResult]) -> list[str]:
    """One line per fusion: name, streams, weights, top-1 / top-5 / mean class (in %); each
    text column as wide as its longest entry (a fusion of four streams stays in its column)."""
    texts = [(r.name, '+'.join(r.streams), _fmt_w(r.weights)) for r in results]
    heads = ('fusion', 'streams', 'weights')
    widths = [max([len(h)] + [len(t[i]) for t in texts]) for i, h in enumerate(heads)]

    def row(cells: Sequence[str], numbers: str) -> str:
        return ' '.join(c.ljust(w) for c, w in zip(cells, widths)) + ' ' + numbers
    lines = [row(heads, f'{"top1":>7} {"top5":>7} {"mean_class":>10}')]
    for r, cells in zip(results, texts):
        lines.append(row(cells, f'{100 * r.top1:7.2f} {100 * r.top5:7.2f} '
                                f'{100 * r.mean_class:10.2f}'))
    return lines


def _looks_like_test(split: str | None) -> bool:
    return split is not None and 'test' in split.lower()


def run_ensemble(ann: str, split: str | None, preds: Sequence[str],
                 weights: Sequence[float] | None = None, names: Sequence[str] | None = None,
                 out: str | None = None, search: bool = False, search_split: str | None = None,
                 search_preds: Sequence[str] | None = None, grid: Sequence[int] = DEFAULT_GRID,
                 allow_same_split: bool = False, echo=print) -> dict:
    """Everything ``tools/ensemble.py`` does; returns the results and the fused scores."""
    preds = list(preds)
    names = stream_names(preds, names)
    weights = [1.0] * len(preds) if weights is None else [float(w) for w in weights]
    if len(weights) != len(preds):
        raise FusionError(f'{len(weights)} --weights for {len(preds)} prediction files')
    if any(w < 0 for w in weights) or not any(weights):
        raise FusionError(f'--weights must be non-negative and not all zero, got {weights}')

    if search:
        if not search_split:
            raise FusionError('--search needs --search-split NAME: the split to tune the '
                              'weights on (a validation split, never the test split)')
        same = search_split == split
        if (same or _looks_like_test(search_split)) and not allow_same_split:
            why = ('it is the evaluation split' if same
                   else 'its name says it is a test split')
            raise FusionError(f'refusing to tune the fusion weights on split {search_split!r}: '
                              f'{why}, so the reported accuracy would be optimistic. Tune on a '
                              'held-out split (--search-split NAME --search-preds FILES, one '
                              'per stream, in the order of --preds), or pass '
                              '--allow-same-split to do it anyway.')
        if not same and not search_preds:
            raise FusionError(f'--search-split {search_split!r} needs --search-preds: the '
                              'streams\' prediction files for that split, in the order of '
                              '--preds')
        if search_preds and len(search_preds) != len(preds):
            raise FusionError(f'{len(search_preds)} --search-preds for {len(preds)} --preds')

    labels = split_labels(ann, split)
    scores = [load_scores(p) for p in preds]
    check_sample_counts(scores, preds, len(labels), split, int(labels.max()) + 1)
    named = dict(zip(names, scores))

    echo(f'ensemble of {len(preds)} stream(s) on split {split!r}: {len(labels)} samples, '
         f'{scores[0].shape[1]} classes (labels from {ann})')
    results = [_result(n, [n], [1.0], [s], labels) for n, s in named.items()]
    results += paper_fusions(named, labels)
    results.append(_result('given', names, weights, scores, labels))
    fused_weights = weights

    if search:
        if search_split == split:
            search_scores, search_labels = scores, labels
        else:
            search_labels = split_labels(ann, search_split)
            search_scores = [load_scores(p) for p in search_preds]
            check_sample_counts(search_scores, search_preds, len(search_labels), search_split,
                                int(search_labels.max()) + 1)
            if search_scores[0].shape[1] != scores[0].shape[1]:
                raise FusionError('--search-preds and --preds disagree on the number of '
                                  'classes')
        if search_split == split or _looks_like_test(search_split):
            echo(f'WARNING: weights tuned on split {search_split!r} (--allow-same-split): its '
                 'accuracy below is optimistic, not a held-out result')
        best, best_top1 = search_weights(search_scores, search_labels, grid)
        echo(f'search on split {search_split!r} ({len(search_labels)} samples, grid '
             f'{list(grid)}): weights {_fmt_w(best)} give top1 {100 * best_top1:.2f}')
        results.append(_result('searched', names, best, scores, labels))
        fused_weights = list(best)

    for line in format_results(results):
        echo(line)
    fused = fuse(scores, fused_weights)
    if out:
        atomic_write_bytes(out, pickle.dumps([row.astype(np.float32) for row in fused],
                                             protocol=4))
        echo(f'fused scores (weights {_fmt_w(fused_weights)}) written to {out}')
    return dict(results=results, fused=fused, weights=tuple(fused_weights), labels=labels)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description='Fuse per-stream prediction files (weighted sums of scores) and report '
                    "top-1, top-5 and mean class accuracy: each stream, the paper's 2s/4s/6s "
                    'fusions whose streams are given, and the given weights.')
    p.add_argument('--ann', required=True, help='annotation pickle (labels)')
    p.add_argument('--split', default=None, help='the split the predictions are for')
    p.add_argument('--preds', nargs='+', required=True,
                   help='prediction pickles (tools/test.py --out, best_pred.pkl)')
    p.add_argument('--names', nargs='+', default=None,
                   help='stream of each file (default: the folder names when they differ, else '
                        f'the file names without suffix; {"/".join(STREAMS)})')
    p.add_argument('--weights', nargs='+', type=float, default=None,
                   help='weight of each file (default: 1 each)')
    p.add_argument('--out', default=None, help='write the fused scores here (PYSKL format)')
    p.add_argument('--search', action='store_true',
                   help='tune integer weights on --search-split (grid search on top-1)')
    p.add_argument('--search-split', default=None, help='split to tune the weights on')
    p.add_argument('--search-preds', nargs='+', default=None,
                   help='prediction files for --search-split, in the order of --preds')
    p.add_argument('--grid', nargs='+', type=int, default=list(DEFAULT_GRID),
                   help='candidate weights per stream (default: 0 1 2 3)')
    p.add_argument('--allow-same-split', action='store_true',
                   help='allow tuning on the evaluation split or a test split (optimistic)')
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run_ensemble(args.ann, args.split, args.preds, args.weights, args.names, args.out,
                     args.search, args.search_split, args.search_preds, args.grid,
                     args.allow_same_split)
    except (FusionError, DataError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    return 0
