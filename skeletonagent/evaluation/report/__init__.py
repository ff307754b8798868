"""The evaluation report of a work dir: confusion, per-class accuracy, curves, agent rounds.

:func:`write_report` reads what training and testing left in a work dir (:mod:`.inputs`) and
writes ``WORK_DIR/report/``:

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
  ``effect`` the agent writes into each round's JSON, :mod:`..agent_effect`).
- ``index.html``: all of the above with the agent's rounds (``agent/rounds/round_*.json``):
  per class the confused classes, the prompt, the reply and the joints it names, drawn on the
  skeleton when ``skeletonagent.visualization.skeleton.draw_critical_joints`` is available.

The rooms: :mod:`.inputs` finds the run's files, :mod:`.tables` computes the tables (with
:mod:`skeletonagent.evaluation.functional`) and writes the CSVs, :mod:`.figures` draws the
plots, :mod:`.page` renders ``template.html``.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .figures import (
    CURVES_FIGSIZE,
    DPI,
    FULL_MATRIX_MAX,
    accuracy_figsize,
    confusion_figsize,
    plot_accuracy,
    plot_agent_effect,
    plot_confusion,
    plot_curves,
)
from .inputs import PathLike, ReportInputs, load_inputs, read_rounds, read_run_info, read_scalars
from .page import write_html
from .tables import accuracy_line, confused_pairs, confusion_block, write_tables

__all__ = ['write_report', 'ReportInputs', 'load_inputs', 'read_scalars', 'read_rounds',
           'read_run_info', 'plot_agent_effect',
           'confused_pairs', 'confusion_block', 'confusion_figsize', 'accuracy_figsize',
           'CURVES_FIGSIZE', 'DPI', 'FULL_MATRIX_MAX', 'REPORT_SUBDIR']

#: Where, under the work dir, the report goes.
REPORT_SUBDIR = 'report'


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
        summary.append(accuracy_line(cm))
        per_class, pairs = write_tables(out, cm, names)
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
    return write_html(out, inputs, summary, pairs, per_class, images, rounds, int(top_n),
                      read_run_info(inputs.work_dir))
