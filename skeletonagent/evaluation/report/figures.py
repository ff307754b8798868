"""The report's figures (matplotlib): the confusion matrix, per-class accuracy, training
curves, the effect of the agent rounds, and a skeleton with a round's joints.

Each plot is a matplotlib ``Figure`` on its own Agg canvas (matplotlib's object API), so the
user's backend and pyplot's figure list are never touched; matplotlib is imported only when a
figure is drawn. Sizes are in inches at :data:`DPI`, and grow with the number of classes and
the length of their names so that every label stays readable.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...visualization.skeleton import draw_critical_joints
from ..functional import confusion_class_accuracy, confusion_mean_class_accuracy
from .tables import confusion_block

__all__ = ['plot_confusion', 'plot_accuracy', 'plot_curves', 'plot_agent_effect', 'draw_joints',
           'confusion_figsize', 'accuracy_figsize', 'CURVES_FIGSIZE', 'DPI', 'FULL_MATRIX_MAX',
           'FULL_BARS_MAX']

logger = logging.getLogger(__name__)

#: Resolution of every figure (pixels = inches × DPI; figures keep their size exactly).
DPI = 100
#: Up to this many classes the whole confusion matrix is drawn; above, the top-N block.
FULL_MATRIX_MAX = 60
#: Up to this many classes the accuracy bar plot shows every class; above, the lowest ones.
FULL_BARS_MAX = 120
CURVES_FIGSIZE = (12.0, 8.0)

_LOSS_KEYS = ('loss', 'loss_cls', 'loss_mix', 'loss_constraint', 'loss_align')


def _figure(figsize: tuple[float, float], **subplots: Any) -> tuple[Any, Any]:
    """A figure on its own Agg canvas, and its axes: matplotlib's object API, so the user's
    backend and pyplot's figure list are never touched."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # deferred: matplotlib, heavy
    from matplotlib.figure import Figure  # deferred: only a drawn figure needs matplotlib
    fig = Figure(figsize=figsize, dpi=DPI, layout='constrained')
    FigureCanvasAgg(fig)
    return fig, fig.subplots(**subplots)


def confusion_figsize(n: int, max_name: int = 20) -> tuple[float, float]:
    """Figure size (inches) of a confusion plot of ``n`` classes whose longest name has
    ``max_name`` characters."""
    label = min(max_name, 40) * 0.075
    side = max(4.0, 0.2 * n) + label
    return (round(side + 1.5, 2), round(side + 0.6, 2))


def accuracy_figsize(n: int, max_name: int = 20) -> tuple[float, float]:
    """Figure size (inches) of the per-class accuracy bar plot of ``n`` bars."""
    return (round(7.0 + min(max_name, 40) * 0.075, 2), round(max(3.0, 0.2 * n + 1.2), 2))


def _short(name: str, limit: int = 40) -> str:
    return name if len(name) <= limit else name[:limit - 1] + '…'


def plot_confusion(cm: np.ndarray, names: Sequence[str], out: Path, top_n: int = 20) -> dict:
    """Draw the confusion matrix (or its top-N block) to ``out``; returns what was drawn."""
    cm = np.asarray(cm)
    n_all = cm.shape[0]
    support = cm.sum(1, keepdims=True).astype(np.float64)
    rates = np.divide(cm, support, out=np.zeros(cm.shape, dtype=np.float64), where=support > 0)
    if n_all <= FULL_MATRIX_MAX:
        idx = list(range(n_all))
        title = f'Confusion matrix ({n_all} classes, row-normalised)'
    else:
        idx = confusion_block(cm, top_n)
        title = (f'Confusion matrix: the {len(idx)} most confused of {n_all} classes\n'
                 '(shares of the whole rows)')
    sub, counts = rates[np.ix_(idx, idx)], cm[np.ix_(idx, idx)]
    labels = [_short(f'{i}: {names[i]}') for i in idx]
    n = len(idx)
    figsize = confusion_figsize(n, max((len(s) for s in labels), default=10))
    fig, ax = _figure(figsize)
    image = ax.imshow(sub, cmap='Blues', vmin=0.0, vmax=1.0, interpolation='nearest',
                      aspect='auto')
    fontsize = 9 if n <= 20 else 8 if n <= 40 else 7
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(labels, rotation=90, fontsize=fontsize)
    ax.set_yticklabels(labels, fontsize=fontsize)
    ax.set_xlabel('predicted class')
    ax.set_ylabel('true class')
    ax.set_title(title)
    if n <= 30:
        for r in range(n):
            for c in range(n):
                if counts[r, c]:
                    ax.text(c, r, str(int(counts[r, c])), ha='center', va='center',
                            fontsize=fontsize - 1,
                            color='white' if sub[r, c] > 0.5 else 'black')
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label='share of the true class')
    fig.savefig(out, dpi=DPI)
    return dict(classes=idx, figsize=figsize)


def plot_accuracy(cm: np.ndarray, names: Sequence[str], out: Path) -> dict:
    """Per-class accuracy as horizontal bars, lowest first (classes without test samples are
    left out); above :data:`FULL_BARS_MAX` classes only the lowest ones are drawn."""
    recall = confusion_class_accuracy(cm)
    present = [i for i in range(len(names)) if not np.isnan(recall[i])]
    acc = {i: recall[i] for i in present}
    order = sorted(present, key=lambda i: (acc[i], i))
    title = 'Per-class accuracy (top-1)'
    if len(order) > FULL_BARS_MAX:
        order = order[:FULL_BARS_MAX // 2]
        title += f': the {len(order)} lowest of {len(present)} classes'
    labels = [_short(f'{i}: {names[i]}') for i in order]
    figsize = accuracy_figsize(len(order), max((len(s) for s in labels), default=10))
    fig, ax = _figure(figsize)
    values = [acc[i] for i in order]
    ax.barh(range(len(order)), values, color='tab:blue')
    ax.set_yticks(range(len(order)))
    ax.set_yticklabels(labels, fontsize=8 if len(order) <= 60 else 7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel('accuracy')
    if present:
        mean = confusion_mean_class_accuracy(cm)
        ax.axvline(mean, color='tab:red', linestyle='--', linewidth=1,
                   label=f'mean class accuracy {mean:.3f}')
        # below the plot, so that it covers no bar (the top bars are the lowest classes, the
        # bottom ones reach the right edge)
        ax.legend(loc='upper center', bbox_to_anchor=(0.5, -0.08 - 0.4 / figsize[1]),
                  fontsize=8, frameon=False)
    ax.set_title(title)
    fig.savefig(out, dpi=DPI)
    return dict(classes=order, figsize=figsize)


def _series(records: Sequence[dict], key: str, x_key: str) -> tuple[list, list]:
    xs, ys = [], []
    for r in records:
        if key in r and x_key in r:
            xs.append(r[x_key])
            ys.append(r[key])
    return xs, ys


_VAL_LABELS = {'acc/top1': 'top-1', 'acc/top5': 'top-5', 'acc/mean1': 'mean class'}


def plot_curves(records: Sequence[dict], out: Path) -> dict | None:
    """Loss components, learning rate, train accuracy (by iteration) and validation accuracy
    (by epoch) from the JSON scalars log; agent rounds as dotted lines. None without data."""
    train = [r for r in records if 'loss' in r or 'lr' in r]
    val = [r for r in records if 'acc/top1' in r and 'loss' not in r]
    agent = [r for r in records if 'agent/version' in r]
    if not train and not val:
        return None
    fig, axes = _figure(CURVES_FIGSIZE, nrows=2, ncols=2)
    (ax_loss, ax_lr), (ax_train, ax_val) = axes
    x_key = 'step'
    for key in _LOSS_KEYS:
        xs, ys = _series(train, key, x_key)
        if xs:
            ax_loss.plot(xs, ys, label=key, linewidth=2 if key == 'loss' else 1)
    ax_loss.set_title('training losses')
    xs, ys = _series(train, 'lr', x_key)
    if xs:
        ax_lr.plot(xs, ys, color='tab:green')
    ax_lr.set_title('learning rate')
    for key in ('top1_acc', 'top5_acc'):
        xs, ys = _series(train, key, x_key)
        if xs:
            ax_train.plot(xs, ys, label=key)
    ax_train.set_title('training accuracy (clean samples of the logged iterations)')
    # top-1 and mean-class accuracy are often equal (a balanced validation set): drawn with
    # different markers and line styles, the one on top does not hide the other
    for key, style in (('acc/top1', dict(marker='o', linestyle='-', linewidth=2.5)),
                       ('acc/top5', dict(marker='^', linestyle='-', linewidth=1)),
                       ('acc/mean1', dict(marker='x', linestyle='--', linewidth=1,
                                          markersize=8))):
        xs, ys = _series(val, key, 'step')
        if xs:
            ax_val.plot(xs, ys, label=_VAL_LABELS.get(key, key), **style)
    ax_val.set_title('validation accuracy')
    ax_val.set_xlabel('epoch')
    for ax in (ax_loss, ax_lr, ax_train):
        ax.set_xlabel('iteration')
        for i, r in enumerate(agent):
            ax.axvline(r['step'], color='tab:purple', linestyle=':', linewidth=1,
                       label='agent round' if i == 0 and ax is ax_loss else None)
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.savefig(out, dpi=DPI)
    return dict(train_records=len(train), val_records=len(val), agent_records=len(agent))


def plot_agent_effect(rounds: Sequence[dict], out: Path) -> dict | None:
    """The ``effect`` of every agent round (its JSON): above, the validation confusion rate
    of its asked pairs and of the other pairs from the validation before its install to the
    last one after; below, the change of their confusions per round. Rounds' installs are
    dotted lines. None when no round has an effect measured."""
    measured = [(r, r['effect']) for r in rounds
                if isinstance(r.get('effect'), dict) and r['effect'].get('before') is not None
                and r['effect'].get('after')]
    if not measured:
        return None
    fig, (ax_rate, ax_change) = _figure((10.0, 7.0), nrows=2, ncols=1)
    for k, (_, effect) in enumerate(measured):
        points = [effect['before'], *effect['after']]
        epochs = [p['epoch'] for p in points]
        ax_rate.plot(epochs, [100 * p['asked_rate'] for p in points], marker='o',
                     color='tab:red', label='asked pairs' if k == 0 else None)
        ax_rate.plot(epochs, [100 * p['other_rate'] for p in points], marker='.',
                     linestyle='--', color='tab:blue', label='other pairs' if k == 0 else None)
    marked = 0
    for report in rounds:
        installed = report.get('installed_after_epoch')
        if installed is not None:
            ax_rate.axvline(installed, color='tab:purple', linestyle=':', linewidth=1,
                            label='round installed' if not marked else None)
            marked += 1
            ax_rate.text(installed, 1.0, f" r{report.get('round', '?')}", color='tab:purple',
                         fontsize=8, va='top', transform=ax_rate.get_xaxis_transform())
    from matplotlib.ticker import MaxNLocator  # deferred: matplotlib, as in _figure
    ax_rate.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_rate.set_xlabel('epoch (validation after it)')
    ax_rate.set_ylabel('confusion rate per pair (%)')
    ax_rate.set_title('validation confusions of the pairs each round asked about vs. the others')
    labels = [f"r{r.get('round', '?')}" for r, _ in measured]
    xs = np.arange(len(measured))
    for offset, key, color, name in ((-0.2, 'asked_change', 'tab:red', 'asked pairs'),
                                     (0.2, 'other_change', 'tab:blue', 'other pairs')):
        values = [100 * e[key] if e.get(key) is not None else 0.0 for _, e in measured]
        ax_change.bar(xs + offset, values, width=0.4, color=color, label=name)
        for x, (_, e) in zip(xs, measured):
            if e.get(key) is None:       # from zero confusions: no relative change
                ax_change.text(x + offset, 0, 'n/a', ha='center', va='bottom', fontsize=7)
    ax_change.axhline(0, color='black', linewidth=0.8)
    ax_change.set_xticks(xs)
    ax_change.set_xticklabels(labels)
    ax_change.set_ylabel('change of the confusions (%)')
    ax_change.set_title('before the install → last validation before the next round')
    for ax in (ax_rate, ax_change):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.savefig(out, dpi=DPI)
    return dict(rounds=[r.get('round') for r, _ in measured])


def draw_joints(layout: str, joints: Sequence[int], out_dir: Path) -> Path | None:
    """The skeleton with ``joints`` highlighted (the visualisation room's drawing), cached by
    joint set; None when that drawing is not available or fails."""
    name = f'{layout}_' + ('-'.join(str(int(j)) for j in sorted(joints)) or 'none') + '.png'
    out = out_dir / name.replace('+', 'p').replace('/', '_')
    if not out.is_file():
        out_dir.mkdir(parents=True, exist_ok=True)
        try:
            draw_critical_joints(layout, list(joints), str(out))
        except Exception as exc:  # noqa: BLE001
            logger.warning('report: drawing joints %s failed: %s: %s', list(joints),
                           type(exc).__name__, exc)
            return None
    return out if out.is_file() else None
