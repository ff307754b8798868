"""What a report is made of, found in a work dir: predictions, labels, class names, layout,
the JSON scalars log, the agent's round reports and what the run used.

Predictions are ``{best,last}_pred.pkl`` (per-sample score arrays in dataset order); the labels
come from the confusion matrix dumped beside them (``*_pred_confusion.npy``) or from an
annotation file (``ann`` and ``split``); class names and the layout from the config dumped
into the work dir (``<name>.py``: the agent's ``label_map``), else from the agent rounds, the
annotation file, or ``class N``. Any part may be missing: the report shows what there is and
says in ``notes`` what was not found.
"""
from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
from mmengine.config import Config

from ...datasets import PoseDataset
from ...datasets.config_view import config_class_names, config_layout
from ..functional import confusion_matrix

__all__ = ['ReportInputs', 'load_inputs', 'read_scalars', 'read_rounds', 'read_run_info']

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]


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


def _read_config(config_file: Path | None, inputs: ReportInputs) -> Any:
    """The dumped config, or None (with a note when it cannot be read)."""
    if config_file is None:
        return None
    try:
        return Config.fromfile(str(config_file))
    except Exception as exc:  # noqa: BLE001 - a report without names beats no report
        inputs.notes.append(f'could not read the config {config_file.name}: '
                            f'{type(exc).__name__}: {exc}')
        return None


def _labels_from_ann(ann: PathLike, split: str | None) -> tuple[np.ndarray, Any]:
    """Labels (dataset order) and class names of ``split`` of an annotation file."""
    dataset = PoseDataset(str(ann), pipeline=[], split=split, test_mode=True)
    dataset.full_init()
    labels = np.array([int(info['label']) for info in dataset.video_infos], dtype=np.int64)
    return labels, dataset.classes


def load_inputs(work_dir: PathLike, pred: PathLike | None = None,
                ann: PathLike | None = None, split: str | None = None,
                class_names: Sequence[str] | None = None,
                layout: str | None = None) -> ReportInputs:
    """Gather predictions, the confusion matrix, class names and the layout of a work dir."""
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
    cfg = _read_config(inputs.config_file, inputs)
    inputs.layout = layout or (config_layout(cfg) if cfg is not None else None) or 'nturgb+d'
    num_classes = inputs.num_classes
    names: list[str] | None = list(class_names) if class_names is not None else None
    if names is None and cfg is not None:       # the config's, as every reader finds them
        found = config_class_names(cfg, num_classes or None)
        names = list(found.names) if found is not None else None
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
