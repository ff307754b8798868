"""Two settings compared on the same test samples, with statistics.

Each setting is one or more prediction files (``last_pred.pkl`` / ``best_pred.pkl``, one per
seed) scoring the same split of the same annotation file. For each setting: top-1, top-5 and
mean class accuracy, mean ± standard deviation over its runs (sample standard deviation,
``ddof=1``). Then the difference, **B − A** (the second setting minus the first):

* one run per side: the runs' top-1 correctness on the same samples, McNemar's exact test:
  ``b`` samples only A gets right, ``c`` only B; under "no difference" each of the ``b + c``
  discordant samples goes either way with probability 1/2, so the two-sided p-value is
  ``min(1, 2 · P(X ≤ min(b, c)))`` with ``X ~ Binomial(b + c, 1/2)`` (statistic
  ``min(b, c)``, as statsmodels reports it);
* several runs per side: the runs are paired by seed (read from each run's
  ``run_info.json``; by position when a seed is not known) and the per-pair differences of
  each metric are tested with a paired t-test over seeds (``scipy.stats.ttest_rel``); sides
  with different numbers of runs get Welch's unpaired t-test. McNemar's test of each pair is
  reported too.

And where the change is: the classes whose accuracy changed most and the confused pairs
(true class predicted as another) whose counts changed most, averaged over the runs.

Files are checked against the split before anything is computed, and refused with one line
naming the file: another number of samples (another split), another number of classes,
another sample order (the ``<name>_samples.json`` the test writes beside its predictions,
:mod:`.predictions`; a file without one is checked by length and classes only).
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
from mmengine.logging import MMLogger

from ..datasets import PoseDataset
from ..errors import SkeletonAgentError
from .functional import confusion_matrix
from .fusion import load_scores
from .predictions import read_prediction_samples, samples_path

__all__ = ['CompareError', 'SplitInfo', 'RunScores', 'Setting', 'split_info', 'load_setting',
           'mcnemar_exact', 'seeds_test', 'compare_settings', 'format_comparison',
           'plot_comparison', 'METRICS']

PathLike = Union[str, os.PathLike]

#: The metrics compared: (key, label).
METRICS = (('top1', 'top-1'), ('top5', 'top-5'), ('mean_class', 'mean class'))


class CompareError(SkeletonAgentError, ValueError):
    """Prediction files that cannot be compared (the message names the file)."""


@dataclass(frozen=True)
class SplitInfo:
    """The samples every prediction file must score: the split of the annotation file."""

    ann_file: str
    split: str | None
    labels: np.ndarray
    frame_dirs: tuple[str, ...]
    num_classes: int
    class_names: tuple[str, ...]

    @property
    def where(self) -> str:
        return f'split {self.split!r} of {self.ann_file}' if self.split else self.ann_file


def split_info(ann_file: PathLike, split: str | None) -> SplitInfo:
    """Labels, sample names and classes of ``split`` of ``ann_file`` (dataset order)."""
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('WARNING')      # not the dataset's 'N samples from' line in the table
    try:
        # memcached=True reads only the table of contents (no keypoints needed, none connected)
        dataset = PoseDataset(str(ann_file), [], split=split, memcached=True)
    finally:
        logger.setLevel(level)
    if dataset.multi_class:
        raise CompareError(f'{ann_file}: multi-label datasets are not supported')
    num_classes = int(dataset.num_classes)
    names = dataset.classes or [f'class {i}' for i in range(num_classes)]
    return SplitInfo(str(ann_file), split, np.asarray(dataset.labels, dtype=np.int64),
                     tuple(dataset.frame_dirs), num_classes, tuple(str(n) for n in names))


@dataclass
class RunScores:
    """One prediction file, checked against the split."""

    path: str
    scores: np.ndarray
    labels: np.ndarray
    seed: int | None = None

    @property
    def top1_correct(self) -> np.ndarray:
        return self.scores.argmax(1) == self.labels

    def metrics(self) -> dict[str, float]:
        top = np.argsort(-self.scores, axis=1, kind='stable')[:, :5]
        cm = self.confusion()
        support = cm.sum(1)
        present = support > 0
        return dict(top1=float(self.top1_correct.mean()),
                    top5=float((top == self.labels[:, None]).any(1).mean()),
                    mean_class=float((np.diag(cm)[present] / support[present]).mean()))

    def confusion(self) -> np.ndarray:
        return confusion_matrix(self.scores.argmax(1), self.labels, self.scores.shape[1])


@dataclass
class Setting:
    name: str
    runs: list[RunScores] = field(default_factory=list)

    def values(self, key: str) -> np.ndarray:
        return np.array([run.metrics()[key] for run in self.runs])


def _run_seed(pred_file: Path) -> int | None:
    """The seed of the run that wrote ``pred_file`` (its work dir's ``run_info.json``)."""
    info = pred_file.parent / 'run_info.json'
    try:
        seed = json.loads(info.read_text(encoding='utf-8'))['lines']['seed']
        return int(seed)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _check_order(path: Path, info: SplitInfo) -> None:
    record = read_prediction_samples(path)
    if record is None:
        return
    record_file = samples_path(path).name
    if record.get('split', info.split) != info.split:
        raise CompareError(f'{path}: written for split {record.get("split")!r} (per '
                           f'{record_file}), not split {info.split!r}')
    theirs = [str(f) for f in record['frame_dirs']]
    if theirs != list(info.frame_dirs):
        position = next((k for k, (a, b) in enumerate(zip(theirs, info.frame_dirs)) if a != b),
                        min(len(theirs), len(info.frame_dirs)))
        mine = info.frame_dirs[position] if position < len(info.frame_dirs) else 'the end'
        other = theirs[position] if position < len(theirs) else 'the end'
        raise CompareError(f'{path}: another sample order than {info.where} (per '
                           f'{record_file}: sample {position} is {other!r}, the split has '
                           f'{mine!r})')


def load_run(pred_file: PathLike, info: SplitInfo) -> RunScores:
    """A prediction file, refused (:class:`CompareError` naming it) unless it scores
    exactly the split's samples in the split's order."""
    path = Path(pred_file)
    try:
        scores = load_scores(path)
    except ValueError as exc:
        raise CompareError(str(exc)) from None
    if len(scores) != len(info.labels):
        raise CompareError(f'{path}: {len(scores)} predictions, but {info.where} has '
                           f'{len(info.labels)} samples: written for another split?')
    if scores.shape[1] != info.num_classes:
        raise CompareError(f'{path}: scores for {scores.shape[1]} classes, but {info.ann_file} '
                           f'has {info.num_classes} classes')
    _check_order(path, info)
    return RunScores(str(path), scores, info.labels, _run_seed(path))


def load_setting(name: str, pred_files: Sequence[PathLike], info: SplitInfo) -> Setting:
    if not pred_files:
        raise CompareError(f'setting {name!r}: no prediction file')
    return Setting(name, [load_run(p, info) for p in pred_files])


# ----------------------------------------------------------------------------- statistics
def mcnemar_exact(a_correct: np.ndarray, b_correct: np.ndarray) -> dict[str, Any]:
    """McNemar's exact test of two runs' correctness on the same samples (see the module
    docstring): ``b`` (only A right), ``c`` (only B right), ``statistic = min(b, c)`` and the
    two-sided ``p_value``."""
    from scipy.stats import binomtest  # deferred: scipy.stats is heavy; only this significance test needs it
    a_correct, b_correct = np.asarray(a_correct, bool), np.asarray(b_correct, bool)
    if a_correct.shape != b_correct.shape:
        raise ValueError(f'McNemar: {a_correct.shape[0]} and {b_correct.shape[0]} samples')
    b = int((a_correct & ~b_correct).sum())
    c = int((~a_correct & b_correct).sum())
    n = b + c
    p = 1.0 if n == 0 else float(binomtest(min(b, c), n, 0.5).pvalue)
    return dict(test='McNemar exact', b=b, c=c, statistic=min(b, c), p_value=min(1.0, p))


def seeds_test(a: Sequence[float], b: Sequence[float], paired: bool) -> dict[str, Any] | None:
    """The test over seeds of B − A: paired t-test (``paired``), else Welch's t-test; None
    with fewer than 2 runs a side. A p-value is None where the test is undefined (every
    difference the same)."""
    from scipy.stats import ttest_ind, ttest_rel  # deferred: scipy.stats is heavy; only this significance test needs it
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or len(b) < 2:
        return None
    if paired:
        result = ttest_rel(b, a)
        name = f'paired t-test over {len(a)} seeds'
    else:
        result = ttest_ind(b, a, equal_var=False)
        name = f"Welch's t-test ({len(a)} vs {len(b)} runs, unpaired)"
    stat, p = float(result.statistic), float(result.pvalue)
    return dict(test=name, statistic=None if math.isnan(stat) else stat,
                p_value=None if math.isnan(p) else p)


def _mean_std(values: np.ndarray) -> tuple[float, float]:
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def _pairs(a: Setting, b: Setting) -> tuple[list[tuple[RunScores, RunScores]], str]:
    """Runs paired by seed when every seed is known and the sides hold the same seeds, else
    by position (equal counts); how they were paired."""
    seeds_a = [r.seed for r in a.runs]
    seeds_b = [r.seed for r in b.runs]
    if None not in seeds_a and sorted(seeds_a) == sorted(seeds_b) and len(set(seeds_a)) == len(seeds_a):
        by_seed = {r.seed: r for r in b.runs}
        return [(r, by_seed[r.seed]) for r in a.runs], 'by seed'
    if len(a.runs) == len(b.runs):
        return list(zip(a.runs, b.runs)), 'by position (seeds not known or not the same)'
    return [], 'unpaired (different numbers of runs)'


def compare_settings(a: Setting, b: Setting, info: SplitInfo, top: int = 5) -> dict[str, Any]:
    """Every figure of the comparison of B with A (see the module docstring), as JSON-ready
    data."""
    names = info.class_names
    out: dict[str, Any] = dict(ann_file=info.ann_file, split=info.split,
                               samples=int(len(info.labels)), num_classes=info.num_classes,
                               difference=f'{b.name} − {a.name}', settings=[])
    for setting in (a, b):
        entry: dict[str, Any] = dict(name=setting.name, runs=[
            dict(path=r.path, seed=r.seed, **r.metrics()) for r in setting.runs])
        for key, _ in METRICS:
            mean, std = _mean_std(setting.values(key))
            entry[key] = dict(mean=mean, std=std)
        out['settings'].append(entry)

    pairs, pairing = _pairs(a, b)
    diff: dict[str, Any] = dict(pairing=pairing)
    for key, _ in METRICS:
        if pairs:
            deltas = np.array([rb.metrics()[key] - ra.metrics()[key] for ra, rb in pairs])
        else:
            deltas = np.array([b.values(key).mean() - a.values(key).mean()])
        mean, std = _mean_std(deltas)
        diff[key] = dict(mean=mean, std=std)
    diff['mcnemar'] = [dict(seed_a=ra.seed, seed_b=rb.seed,
                            **mcnemar_exact(ra.top1_correct, rb.top1_correct))
                       for ra, rb in pairs]
    if len(a.runs) == 1 and len(b.runs) == 1:
        diff['test'] = diff['mcnemar'][0]
    else:
        paired = bool(pairs)
        if paired:
            va = [ra.metrics()['top1'] for ra, _ in pairs]
            vb = [rb.metrics()['top1'] for _, rb in pairs]
        else:
            va, vb = list(a.values('top1')), list(b.values('top1'))
        diff['test'] = seeds_test(va, vb, paired)
    out['difference_figures'] = diff

    per_class = []
    acc = {}
    for setting in (a, b):
        cms = np.stack([r.confusion() for r in setting.runs]).astype(np.float64)
        support = cms.sum(2)
        acc[setting.name] = (np.divide(np.diagonal(cms, axis1=1, axis2=2), support,
                                       out=np.zeros_like(support), where=support > 0).mean(0),
                             cms.mean(0))
    (acc_a, cm_a), (acc_b, cm_b) = acc[a.name], acc[b.name]
    for cls in range(info.num_classes):
        per_class.append(dict(index=cls, name=names[cls], a=float(acc_a[cls]),
                              b=float(acc_b[cls]), change=float(acc_b[cls] - acc_a[cls])))
    out['per_class'] = per_class
    out['classes_changed_most'] = sorted(
        (c for c in per_class if c['change'] != 0), key=lambda c: (-abs(c['change']), c['index']))[:top]
    off = ~np.eye(info.num_classes, dtype=bool)
    rows, cols = np.nonzero(off & ((cm_a != 0) | (cm_b != 0)))
    pairs_changed = [dict(true=int(i), true_name=names[i], predicted=int(j),
                          predicted_name=names[j], a=float(cm_a[i, j]), b=float(cm_b[i, j]),
                          change=float(cm_b[i, j] - cm_a[i, j]))
                     for i, j in zip(rows, cols) if cm_a[i, j] != cm_b[i, j]]
    out['pairs_changed_most'] = sorted(
        pairs_changed, key=lambda p: (-abs(p['change']), p['true'], p['predicted']))[:top]
    return out


# ----------------------------------------------------------------------------- output
def _pm(figure: dict, runs: int, scale: float = 100.0, signed: bool = False) -> str:
    """'mean ± std', or the mean alone for a single run (no spread to give)."""
    mean = f'{scale * figure["mean"]:+.2f}' if signed else f'{scale * figure["mean"]:.2f}'
    return f'{mean} ± {scale * figure["std"]:.2f}' if runs > 1 else mean


def _p(value: float | None) -> str:
    return 'undefined' if value is None else (f'{value:.3g}' if value >= 1e-4 else f'{value:.1e}')


def format_comparison(result: dict[str, Any]) -> str:
    """The comparison as the tool prints it (accuracies in %)."""
    lines = [f"{result['samples']} samples of "
             + (f"split {result['split']!r} of " if result['split'] else '')
             + f"{result['ann_file']}, {result['num_classes']} classes; accuracies in %, "
               'mean ± std over runs (the difference: over the paired runs)']
    header = ['setting', 'runs', 'seeds'] + [label for _, label in METRICS]
    rows = [header]
    for s in result['settings']:
        seeds = ','.join('?' if r['seed'] is None else str(r['seed']) for r in s['runs'])
        rows.append([s['name'], str(len(s['runs'])), seeds]
                    + [_pm(s[k], len(s['runs'])) for k, _ in METRICS])
    diff = result['difference_figures']
    paired = max(len(diff['mcnemar']), 1)
    rows.append([result['difference'], '', ''] + [_pm(diff[k], paired, signed=True)
                                                  for k, _ in METRICS])
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    lines += ['  '.join(cell.ljust(w) if c < 3 else cell.rjust(w)
                        for c, (cell, w) in enumerate(zip(row, widths))) for row in rows]
    test = diff.get('test')
    if test is None:
        lines.append('significance: not tested (fewer than 2 runs on a side)')
    elif test['test'] == 'McNemar exact':
        lines.append(f"significance of the top-1 difference: McNemar's exact test, "
                     f"b={test['b']} (only {result['settings'][0]['name']} right), "
                     f"c={test['c']} (only {result['settings'][1]['name']} right), "
                     f"statistic {test['statistic']}, p = {_p(test['p_value'])}")
    else:
        stat = 'undefined' if test['statistic'] is None else f"{test['statistic']:.3f}"
        lines.append(f"significance of the top-1 difference: {test['test']} (runs paired "
                     f"{diff['pairing']}), t = {stat}, p = {_p(test['p_value'])}")
        for m in diff['mcnemar']:
            lines.append(f"  seed {m['seed_a']} vs {m['seed_b']}: McNemar b={m['b']} c={m['c']}, "
                         f"p = {_p(m['p_value'])}")
    if result['classes_changed_most']:
        lines.append('classes whose top-1 accuracy changed most (mean over runs, %):')
        for c in result['classes_changed_most']:
            lines.append(f"  {c['index']:>3} {c['name']:<30} {100 * c['a']:6.1f} → "
                         f"{100 * c['b']:6.1f}  ({100 * c['change']:+.1f})")
    if result['pairs_changed_most']:
        lines.append('confused pairs whose counts changed most (true → predicted, mean over runs):')
        for p in result['pairs_changed_most']:
            lines.append(f"  {p['true_name']} → {p['predicted_name']}: {p['a']:.2f} → "
                         f"{p['b']:.2f}  ({p['change']:+.2f})")
    return '\n'.join(lines)


def plot_comparison(result: dict[str, Any], out: PathLike) -> Path:
    """Per setting the three accuracies (bars: mean, whiskers: std, dots: runs); below, the
    change of every class's accuracy (B − A)."""
    # deferred: matplotlib is heavy, and only the plot needs it
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # deferred: as above
    from matplotlib.figure import Figure  # deferred: as above
    settings = result['settings']
    n = result['num_classes']
    fig = Figure(figsize=(max(8.0, 0.3 * n + 2), 7.5), dpi=100, layout='constrained')
    FigureCanvasAgg(fig)
    ax_metrics, ax_classes = fig.subplots(2, 1)
    width = 0.8 / len(settings)
    xs = np.arange(len(METRICS))
    for k, s in enumerate(settings):
        offset = (k - (len(settings) - 1) / 2) * width
        ax_metrics.bar(xs + offset, [100 * s[m]['mean'] for m, _ in METRICS], width,
                       yerr=[100 * s[m]['std'] for m, _ in METRICS], capsize=4, label=s['name'])
        for j, (m, _) in enumerate(METRICS):
            ax_metrics.plot([xs[j] + offset] * len(s['runs']), [100 * r[m] for r in s['runs']],
                            'k.', markersize=4)
    ax_metrics.set_xticks(xs)
    ax_metrics.set_xticklabels([label for _, label in METRICS])
    ax_metrics.set_ylabel('accuracy (%)')
    low = min(100 * r[m] for s in settings for r in s['runs'] for m, _ in METRICS)
    ax_metrics.set_ylim(max(0.0, low - 10), 100.5)
    ax_metrics.legend(fontsize=8)
    ax_metrics.set_title(f"{result['difference']}: {result['samples']} samples"
                         + (f", split {result['split']}" if result['split'] else ''))
    changes = [100 * c['change'] for c in result['per_class']]
    ax_classes.bar(range(n), changes, color=['tab:green' if v >= 0 else 'tab:red' for v in changes])
    ax_classes.axhline(0, color='black', linewidth=0.8)
    ax_classes.set_xticks(range(n))
    ax_classes.set_xticklabels([c['name'][:28] for c in result['per_class']], rotation=90,
                               fontsize=7 if n > 30 else 8)
    ax_classes.set_ylabel(f"class accuracy change (points)\n{result['difference']}")
    for ax in (ax_metrics, ax_classes):
        ax.grid(alpha=0.3, axis='y')
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out
