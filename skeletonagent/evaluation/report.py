"""The evaluation report of a work dir: confusion, per-class accuracy, curves, agent rounds.

:func:`write_report` reads what training and testing left in a work dir and writes
``WORK_DIR/report/``:

- ``confusion.png`` / ``confusion.csv``: the test confusion matrix (rows: true class, columns:
  predicted class; colours are row-normalised rates). Up to :data:`FULL_MATRIX_MAX` classes
  the whole matrix is drawn; above, the block of the ``top_n`` most confused classes. The CSV
  always holds the whole matrix.
- ``per_class_accuracy.csv`` / ``per_class_accuracy.png``: samples, correct, predicted and
  accuracy per class (from the confusion's diagonal), and a sorted bar plot.
- ``confused_pairs.csv``: every (true, predicted) pair of different classes with its count.
- ``curves.png``: loss components, learning rate, train and validation accuracy from
  mmengine's JSON scalars log (``WORK_DIR/<timestamp>/vis_data/scalars.json``), with the
  agent rounds marked.
- ``agent_effect.png``: per agent round, the validation confusion rate of the pairs it asked
  about and of every other pair, before its install and after, with the rounds marked (the
  ``effect`` the agent writes into each round's JSON, :mod:`.agent_effect`).
- ``index.html``: all of the above with the agent's rounds (``agent/rounds/round_*.json``):
  per class the confused classes, the prompt, the reply and the joints it names, drawn on the
  skeleton when ``skeletonagent.visualization.skeleton.draw_critical_joints`` is available.

Inputs: the predictions ``{best,last}_pred.pkl`` (per-sample score arrays in dataset order),
the labels from the confusion matrix dumped beside them (``*_pred_confusion.npy``) or from the
annotation file (``ann`` and ``split``), class names and layout from the config dumped into
the work dir (``<name>.py``: the agent's ``label_map``), else from the agent rounds, the
annotation file, or ``class N``.

Plots are matplotlib ``Figure`` objects on their own Agg canvas (the user's backend and
pyplot's state are never touched); the page is one Jinja2 template, :data:`PAGE`, whose
autoescaping escapes every value (the replies come from an LLM).
"""
from __future__ import annotations

import csv
import json
import logging
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np

__all__ = ['write_report', 'ReportInputs', 'load_inputs', 'read_scalars', 'read_rounds',
           'plot_agent_effect',
           'confused_pairs', 'confusion_block', 'confusion_figsize', 'accuracy_figsize',
           'CURVES_FIGSIZE', 'DPI', 'FULL_MATRIX_MAX', 'REPORT_SUBDIR']

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]

#: Where, under the work dir, the report goes.
REPORT_SUBDIR = 'report'
#: Resolution of every figure (pixels = inches × DPI; figures keep their size exactly).
DPI = 100
#: Up to this many classes the whole confusion matrix is drawn; above, the top-N block.
FULL_MATRIX_MAX = 60
#: Up to this many classes the accuracy bar plot shows every class; above, the lowest ones.
FULL_BARS_MAX = 120
CURVES_FIGSIZE = (12.0, 8.0)

_LOSS_KEYS = ('loss', 'loss_cls', 'loss_mix', 'loss_constraint', 'loss_align')
_AGENT_KEYS = ('agent/requests', 'agent/failures', 'agent/seconds', 'agent/classes_updated',
               'agent/version')


# ----------------------------------------------------------------------------- inputs
@dataclass
class ReportInputs:
    """What the report is made of (any part may be missing)."""

    work_dir: Path
    pred_file: Path | None = None
    scores: np.ndarray | None = None          # N × C
    confusion: np.ndarray | None = None       # C × C, rows true, columns predicted
    class_names: list[str] = field(default_factory=list)
    layout: str | None = None
    config_file: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        if self.confusion is not None:
            return int(self.confusion.shape[0])
        if self.scores is not None:
            return int(self.scores.shape[1])
        return len(self.class_names)


def _find_pred(work_dir: Path, pred: PathLike | None) -> Path | None:
    if pred is not None:
        path = Path(pred)
        if not path.is_file() and (work_dir / path).is_file():
            path = work_dir / path
        if not path.is_file():
            raise FileNotFoundError(f'report: no predictions file {pred}')
        return path
    for name in ('best_pred.pkl', 'last_pred.pkl'):
        if (work_dir / name).is_file():
            return work_dir / name
    return None


def _find_config(work_dir: Path) -> Path | None:
    """The config mmengine dumped into the work dir (the newest top-level ``*.py``)."""
    found = sorted(work_dir.glob('*.py'), key=lambda p: p.stat().st_mtime, reverse=True)
    return found[0] if found else None


def _config_settings(config_file: Path | None, inputs: ReportInputs) -> tuple[Any, Any]:
    """``(label_map, layout)`` from the dumped config (None where not found)."""
    if config_file is None:
        return None, None
    try:
        from mmengine.config import Config
        cfg = Config.fromfile(str(config_file))
        agent = cfg.get('agent') or {}
        head = (cfg.get('model') or {}).get('cls_head') or {}
        return agent.get('label_map'), agent.get('layout') or head.get('joint_cfg')
    except Exception as exc:  # noqa: BLE001 - a report without names beats no report
        inputs.notes.append(f'could not read the config {config_file.name}: '
                            f'{type(exc).__name__}: {exc}')
        return None, None


def _labels_from_ann(ann: PathLike, split: str | None) -> tuple[np.ndarray, Any]:
    """Labels (dataset order) and class names of ``split`` of an annotation file."""
    from ..datasets import PoseDataset
    dataset = PoseDataset(str(ann), pipeline=[], split=split, test_mode=True)
    dataset.full_init()
    labels = np.array([int(info['label']) for info in dataset.video_infos], dtype=np.int64)
    return labels, dataset.classes


def load_inputs(work_dir: PathLike, pred: PathLike | None = None,
                ann: PathLike | None = None, split: str | None = None,
                class_names: Sequence[str] | None = None,
                layout: str | None = None) -> ReportInputs:
    """Gather predictions, the confusion matrix, class names and the layout of a work dir."""
    from .functional import confusion_matrix
    work_dir = Path(work_dir)
    inputs = ReportInputs(work_dir=work_dir)
    inputs.pred_file = _find_pred(work_dir, pred)
    if inputs.pred_file is not None:
        scores = pickle.loads(inputs.pred_file.read_bytes())
        inputs.scores = np.stack([np.asarray(s, dtype=np.float32) for s in scores]) \
            if len(scores) else None
    ann_classes = None
    if ann is not None:
        labels, ann_classes = _labels_from_ann(ann, split)
        if inputs.scores is None:
            raise ValueError('report: --ann needs predictions (--pred)')
        if len(labels) != len(inputs.scores):
            raise ValueError(f'report: {len(inputs.scores)} predictions in '
                             f'{inputs.pred_file} but {len(labels)} samples in {ann} '
                             f'(split {split!r})')
        inputs.confusion = confusion_matrix(inputs.scores.argmax(1), labels,
                                            inputs.scores.shape[1])
    elif inputs.pred_file is not None:
        cm_file = inputs.pred_file.with_name(inputs.pred_file.stem + '_confusion.npy')
        if cm_file.is_file():
            inputs.confusion = np.load(cm_file)
            if inputs.scores is not None:
                predicted = np.bincount(inputs.scores.argmax(1),
                                        minlength=inputs.confusion.shape[1])
                if (inputs.confusion.sum() != len(inputs.scores)
                        or not np.array_equal(inputs.confusion.sum(0), predicted)):
                    inputs.notes.append(f'{cm_file.name} does not match '
                                        f'{inputs.pred_file.name}; confusion not used')
                    inputs.confusion = None
        else:
            inputs.notes.append(f'no {cm_file.name} (unlabelled test set?); pass --ann and '
                                '--split for the labels')

    inputs.config_file = _find_config(work_dir)
    label_map, cfg_layout = _config_settings(inputs.config_file, inputs)
    inputs.layout = layout or cfg_layout or 'nturgb+d'
    num_classes = inputs.num_classes
    names: list[str] | None = list(class_names) if class_names is not None else None
    if names is None and label_map is not None:
        try:
            from ..datasets.label_map import load_label_map
            names = load_label_map(label_map, num_classes or None)
        except Exception as exc:  # noqa: BLE001
            inputs.notes.append(f'label map {label_map!r}: {type(exc).__name__}: {exc}')
    if names is None and ann_classes is not None:
        names = list(ann_classes)
    if names is None:
        names = _names_from_rounds(work_dir, num_classes)
    if names is None or (num_classes and len(names) != num_classes):
        names = [f'class {i}' for i in range(num_classes)]
    inputs.class_names = [str(n) for n in names]
    return inputs


def _names_from_rounds(work_dir: Path, num_classes: int) -> list[str] | None:
    """Class names the agent's round reports mention (when they name every class)."""
    known: dict[int, str] = {}
    for report in read_rounds(work_dir):
        for entry in report.get('classes', []):
            known[int(entry['index'])] = entry['name']
            for other in entry.get('confused', []):
                known[int(other['index'])] = other['name']
    if num_classes and len(known) == num_classes and set(known) == set(range(num_classes)):
        return [known[i] for i in range(num_classes)]
    return None


def read_scalars(work_dir: PathLike) -> list[dict]:
    """Every record of the JSON scalars logs of a work dir (runs in timestamp order)."""
    records: list[dict] = []
    for path in sorted(Path(work_dir).glob('*/vis_data/scalars.json')):
        for line in path.read_text(encoding='utf-8').splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by an interrupted run
    return records


def read_rounds(work_dir: PathLike) -> list[dict]:
    """The agent's round reports (``agent/rounds/round_*.json``), in round order."""
    reports = []
    for path in sorted((Path(work_dir) / 'agent' / 'rounds').glob('round_*.json')):
        try:
            report = json.loads(path.read_text(encoding='utf-8'))
        except (OSError, json.JSONDecodeError) as exc:
            logger.warning('report: skipping %s: %s', path, exc)
            continue
        report['_file'] = path.name
        reports.append(report)
    return reports


# ----------------------------------------------------------------------------- tables
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


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    with open(path, 'w', newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _per_class_rows(cm: np.ndarray, names: Sequence[str]) -> list[list[Any]]:
    support, correct, predicted = cm.sum(1), np.diag(cm), cm.sum(0)
    rows = []
    for i, name in enumerate(names):
        acc = f'{correct[i] / support[i]:.6f}' if support[i] else ''
        rows.append([i, name, int(support[i]), int(correct[i]), int(predicted[i]), acc])
    return rows


# ----------------------------------------------------------------------------- plots
def _figure(figsize: tuple[float, float], **subplots: Any) -> tuple[Any, Any]:
    """A figure on its own Agg canvas, and its axes: matplotlib's object API, so the user's
    backend and pyplot's figure list are never touched."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
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
    support, correct = cm.sum(1), np.diag(cm)
    present = [i for i in range(len(names)) if support[i] > 0]
    acc = {i: correct[i] / support[i] for i in present}
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
        mean = float(np.mean([acc[i] for i in present]))
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
    from matplotlib.ticker import MaxNLocator
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


def _draw_joints(layout: str, joints: Sequence[int], out_dir: Path) -> Path | None:
    """The skeleton with ``joints`` highlighted (the visualisation room's drawing), cached by
    joint set; None when that drawing is not available or fails."""
    try:
        from ..visualization.skeleton import draw_critical_joints
    except Exception:  # noqa: BLE001 - not there yet: the joints are listed by name
        return None
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


# ----------------------------------------------------------------------------- HTML
#: The whole page, one Jinja2 template; autoescaping escapes every value (LLM replies too).
PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8">
<title>Report: {{ title }}</title>
<style>
body { font-family: sans-serif; margin: 1.5em; max-width: 1400px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.num { text-align: right; }
pre { white-space: pre-wrap; background: #f7f7f7; padding: 6px; margin: 2px 0; }
img { max-width: 100%; border: 1px solid #ddd; }
details { margin: 0.3em 0 0.8em; }
.failed { color: #b00; }
.note { color: #666; }
</style></head><body>
<h1>Evaluation report: {{ title }}</h1>
<ul>{% for line in summary %}<li>{{ line }}</li>{% endfor %}</ul>
{% for note in notes %}<p class="note">{{ note }}</p>
{% endfor %}
{%- if run_info %}<h2>What this run used</h2>
<table>{% for key, value in run_info.items() %}<tr><td>{{ key }}</td><td>{{ value }}</td></tr>{% endfor %}</table>
{% endif %}
{%- if images.curves %}<h2>Training curves</h2>
<img src="{{ images.curves }}">
{% endif %}
{%- if images.agent_effect %}<h2>Effect of the agent rounds</h2>
<p>For each round, the validation confusions of the pairs it asked the LLM about (true class
predicted as the class named), before its texts were installed and after, beside every other
pair.</p>
<ul>{% for line in effect_lines %}<li>{{ line }}</li>{% endfor %}</ul>
<img src="{{ images.agent_effect }}">
{% endif %}
{%- if images.confusion %}<h2>Confusion matrix</h2>
<p><a href="confusion.csv">confusion.csv</a> (rows: true class, columns: predicted class)</p>
<img src="{{ images.confusion }}">
{% endif %}
{%- if pairs %}<h2>Most confused pairs (top {{ pairs|length }} of {{ num_pairs }})</h2>
<p><a href="confused_pairs.csv">confused_pairs.csv</a></p>
<table><tr><th>true class</th><th>predicted as</th><th>count</th><th>share of the true class</th></tr>
{% for actual, predicted, count, share in pairs %}<tr><td>{{ actual }}</td><td>{{ predicted }}</td><td class="num">{{ count }}</td><td class="num">{{ '%.3f' % share }}</td></tr>
{% endfor %}</table>
{% endif %}
{%- if per_class is not none %}<h2>Per-class accuracy</h2>
<p><a href="per_class_accuracy.csv">per_class_accuracy.csv</a></p>
{% if images.accuracy %}<img src="{{ images.accuracy }}">
{% endif %}<details><summary>table</summary>
<table><tr><th>index</th><th>class</th><th>samples</th><th>correct</th><th>predicted</th><th>accuracy</th></tr>
{% for index, name, samples, correct, predicted, acc in per_class %}<tr><td class="num">{{ index }}</td><td>{{ name }}</td><td class="num">{{ samples }}</td><td class="num">{{ correct }}</td><td class="num">{{ predicted }}</td><td class="num">{{ acc }}</td></tr>
{% endfor %}</table></details>
{% endif %}
{%- if rounds %}<h2>Agent rounds ({{ rounds|length }})</h2>
{% for r in rounds %}<h3>Round {{ r.round }} <span class="note">({{ r.file }})</span></h3>
<p>backend {{ r.backend }}; {{ r.chats }} chats, {{ r.requests }} requests, {{ r.failed }} failed
{%- if r.failures %} ({% for kind, n in r.failures.items() %}{{ kind }} {{ n }}{{ ', ' if not loop.last else '' }}{% endfor %}){% endif -%}
; {{ r.updated }} classes updated; state v{{ r.version_before }} → v{{ r.version_after }}; {{ r.seconds }} s</p>
{% for c in r.classes %}<details><summary>{{ c.index }}: {{ c.name }}
{%- if c.error is not none %} <span class="failed">failed: {{ c.error }} {{ c.detail }}</span>{% endif %}</summary>
<p><b>Confused with:</b> {{ c.confused or '-' }}</p>
<p><b>Prompt</b></p><pre>{{ c.prompt }}</pre>
{% if c.reply is not none %}<p><b>Reply</b></p><pre>{{ c.reply }}</pre>
{% endif %}<p><b>Joints named:</b> {{ c.joints or 'none' }}{{ ' (applied to the mask)' if c.mask_changed else '' }}</p>
{% if c.image %}<img src="{{ c.image }}" alt="{{ c.joints }}" style="max-width:320px">
{% endif %}{% if c.description %}<p><b>Description</b> ({{ 'changed' if c.description_changed else 'unchanged' }}): {{ c.description }}</p>
{% endif %}</details>
{% endfor %}{% endfor %}{% endif %}</body></html>
"""  # noqa: E501 - the template's lines are the page's


def _round_context(report: dict, names: Sequence[str], layout: str, out_dir: Path) -> dict:
    """What the page shows of one agent round (values only; the template formats them)."""
    stats = report.get('stats') or {}
    classes = []
    for entry in report.get('classes', []):
        index = int(entry.get('index', -1))
        joints = entry.get('joints') or []
        joint_names = entry.get('joint_names') or [str(j) for j in joints]
        listed = ', '.join(f'{j + 1}-{n}' for j, n in zip(joints, joint_names))
        image = _draw_joints(layout, joints, out_dir / 'joints') if joints else None
        classes.append(dict(
            index=index, error=entry.get('error'), detail=entry.get('detail', ''),
            name=entry.get('name') or (names[index] if 0 <= index < len(names) else index),
            confused=', '.join(f"{c.get('name')} ({c.get('count')})"
                               if c.get('count') is not None else str(c.get('name'))
                               for c in entry.get('confused', [])),
            prompt=entry.get('prompt', ''), reply=entry.get('reply'), joints=listed,
            mask_changed=bool(entry.get('mask_changed')),
            image=image.relative_to(out_dir).as_posix() if image is not None else None,
            description=entry.get('description'),
            description_changed=bool(entry.get('description_changed'))))
    return dict(round=report.get('round', '?'), file=report.get('_file', ''),
                backend=report.get('backend', '?'), chats=stats.get('chats', 0),
                requests=stats.get('requests', 0), failed=len(report.get('failed') or []),
                failures=stats.get('failures') or {}, updated=len(report.get('updated') or []),
                version_before=report.get('version_before', '?'),
                version_after=report.get('version_after', '?'),
                seconds=report.get('seconds', 0), classes=classes)


def read_run_info(work_dir: PathLike) -> dict[str, str]:
    """What the run used (``run_info.json``, written at the start of training by
    ``RunInfoHook``): label -> text, or empty when the run wrote none."""
    path = Path(work_dir) / 'run_info.json'
    if not path.is_file():
        return {}
    try:
        return {str(k): str(v) for k, v in json.loads(path.read_text(encoding='utf-8'))['lines'].items()}
    except (OSError, ValueError, KeyError, AttributeError):
        return {}


def _write_html(out_dir: Path, inputs: ReportInputs, summary: list[str],
                pairs: Sequence[tuple], per_class: list | None, images: dict,
                rounds: Sequence[dict], top_n: int, run_info: dict | None = None) -> Path:
    """Render :data:`PAGE` into ``out_dir/index.html``."""
    import jinja2
    names = inputs.class_names
    page = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True).from_string(PAGE)
    text = page.render(
        title=inputs.work_dir.name, summary=summary, notes=inputs.notes,
        run_info=run_info or {}, num_pairs=len(pairs),
        images={k: images.get(k) for k in ('curves', 'agent_effect', 'confusion', 'accuracy')},
        effect_lines=[r['effect']['line'] for r in rounds
                      if isinstance(r.get('effect'), dict) and r['effect'].get('line')],
        pairs=[(f'{i}: {names[i]}', f'{j}: {names[j]}', c, r) for i, j, c, r in pairs[:top_n]],
        per_class=per_class,
        rounds=[_round_context(r, names, inputs.layout or 'nturgb+d', out_dir) for r in rounds])
    path = out_dir / 'index.html'
    path.write_text(text, encoding='utf-8')
    return path


# ----------------------------------------------------------------------------- entry point
def write_report(work_dir: PathLike, pred: PathLike | None = None,
                 ann: PathLike | None = None, split: str | None = None,
                 top_n: int = 20, out_dir: PathLike | None = None,
                 class_names: Sequence[str] | None = None,
                 layout: str | None = None) -> Path:
    """Write the report of ``work_dir`` into ``out_dir`` (default ``work_dir/report``).

    Args:
        pred: the predictions pickle (default: ``best_pred.pkl``, else ``last_pred.pkl``;
            a relative name is looked up in the work dir too).
        ann, split: an annotation file and split to read the labels from (default: the
            confusion matrix dumped beside the predictions).
        top_n: how many confused pairs the page lists and, above
            :data:`FULL_MATRIX_MAX` classes, how many classes the confusion plot shows.
        class_names, layout: override what the dumped config says.

    Returns the path of ``index.html``.
    """
    inputs = load_inputs(work_dir, pred, ann, split, class_names, layout)
    out = Path(out_dir) if out_dir is not None else inputs.work_dir / REPORT_SUBDIR
    out.mkdir(parents=True, exist_ok=True)
    names = inputs.class_names
    images: dict[str, str] = {}
    summary: list[str] = []
    if inputs.pred_file is not None:
        summary.append(f'predictions: {inputs.pred_file.name} '
                       f'({0 if inputs.scores is None else len(inputs.scores)} samples, '
                       f'{inputs.num_classes} classes)')
    if inputs.config_file is not None:
        summary.append(f'config: {inputs.config_file.name}; layout {inputs.layout}')

    pairs: list[tuple] = []
    per_class = None
    cm = inputs.confusion
    if cm is not None:
        total = int(cm.sum())
        support = cm.sum(1)
        present = support > 0
        top1 = float(np.trace(cm) / total) if total else 0.0
        mean1 = float((np.diag(cm)[present] / support[present]).mean()) if present.any() else 0.
        summary.append(f'top-1 accuracy {top1:.4f}, mean class accuracy {mean1:.4f} '
                       f'({total} test samples)')
        _write_csv(out / 'confusion.csv', ['true \\ predicted', *names],
                   [[names[i], *map(int, cm[i])] for i in range(len(names))])
        per_class = _per_class_rows(cm, names)
        _write_csv(out / 'per_class_accuracy.csv',
                   ['index', 'class', 'samples', 'correct', 'predicted', 'accuracy'], per_class)
        pairs = confused_pairs(cm)
        _write_csv(out / 'confused_pairs.csv',
                   ['true_index', 'true_class', 'predicted_index', 'predicted_class', 'count',
                    'share_of_true_class'],
                   [[i, names[i], j, names[j], c, f'{r:.6f}'] for i, j, c, r in pairs])
        plot_confusion(cm, names, out / 'confusion.png', top_n)
        images['confusion'] = 'confusion.png'
        plot_accuracy(cm, names, out / 'per_class_accuracy.png')
        images['accuracy'] = 'per_class_accuracy.png'
    records = read_scalars(inputs.work_dir)
    if plot_curves(records, out / 'curves.png') is not None:
        images['curves'] = 'curves.png'
    else:
        inputs.notes.append('no JSON scalars log (*/vis_data/scalars.json): no training curves')
    rounds = read_rounds(inputs.work_dir)
    if plot_agent_effect(rounds, out / 'agent_effect.png') is not None:
        images['agent_effect'] = 'agent_effect.png'
    return _write_html(out, inputs, summary, pairs, per_class, images, rounds, int(top_n),
                       read_run_info(inputs.work_dir))
