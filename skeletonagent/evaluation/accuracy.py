"""The evaluator the configs name: top-k, mean class accuracy, confusion, prediction dump."""
from __future__ import annotations

import io
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from ..registry import METRICS
from ..utils.fileio import atomic_write_bytes
from .functional import confusion_matrix, mean_class_accuracy, top_k_accuracy

_ALIASES = {'top_k_accuracy': 'top_k_accuracy', 'mean_class_accuracy': 'mean_class_accuracy'}


@METRICS.register_module()
class SkeletonAccuracy(BaseMetric):
    """Accuracy of clip-averaged scores.

    Args:
        metrics: any of ``'top_k_accuracy'`` and ``'mean_class_accuracy'`` (PYSKL names).
        topk: the k of top-k accuracy.
        out_file: when set, the per-sample score arrays (in dataset order, gathered over
            ranks) are pickled there as a list of ``float32`` arrays — the format PYSKL's
            fusion helpers read. The confusion matrix goes beside it as ``*_confusion.npy``.
        confusion: also return the confusion matrix (int64, rows true class, columns
            predicted) under ``confusion`` (``acc/confusion`` with the prefix): the engine
            asks for it in validation, to keep every validation's matrix
            (:mod:`skeletonagent.evaluation.val_confusion`). mmengine logs only the scalars.
    """

    default_prefix = 'acc'

    def __init__(self,
                 metrics: Sequence[str] | str = ('top_k_accuracy', 'mean_class_accuracy'),
                 topk: Sequence[int] = (1, 5),
                 out_file: str | None = None,
                 confusion: bool = False,
                 collect_device: str = 'cpu',
                 prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        unknown = [m for m in metrics if m not in _ALIASES]
        if unknown:
            raise ValueError(f'unknown metric(s) {unknown}; choose from {sorted(_ALIASES)}')
        # mean class accuracy is cheap and always worth reporting
        self.metrics = list(dict.fromkeys(metrics + ['mean_class_accuracy']))
        self.topk = tuple(topk)
        self.out_file = out_file
        self.confusion = bool(confusion)

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            if 'feature' in sample:   # test_cfg feat_ext / score_ext: nothing to score
                self.results.append((np.asarray(sample['feature']), None))
                continue
            score = sample['pred_score']
            score = score.detach().cpu().numpy() if hasattr(score, 'detach') else np.asarray(score)
            label = sample.get('gt_label')
            self.results.append((score.astype(np.float32), -1 if label is None else int(label)))

    def compute_metrics(self, results: list) -> dict:
        if results and results[0][1] is None:
            return self._dump_features([r[0] for r in results])
        scores = np.stack([r[0] for r in results])
        labels = np.array([r[1] for r in results], dtype=np.int64)
        if self.out_file:
            self._dump(scores, labels)
        out: dict[str, float] = {}
        if (labels < 0).any():
            return out  # unlabeled test set: predictions only
        if 'top_k_accuracy' in self.metrics:
            for k, acc in zip(self.topk, top_k_accuracy(scores, labels, self.topk)):
                out[f'top{k}'] = acc
        if 'mean_class_accuracy' in self.metrics:
            out['mean1'] = mean_class_accuracy(scores, labels)
        if self.confusion:
            out['confusion'] = confusion_matrix(scores.argmax(1), labels, scores.shape[1])
        return out

    def _dump_features(self, features: list) -> dict:
        """Feature extraction (``test_cfg.feat_ext`` / ``score_ext``): the per-sample arrays
        go to ``out_file`` as PYSKL writes them (a pickled list, dataset order); no metric."""
        if self.out_file:
            atomic_write_bytes(Path(self.out_file), pickle.dumps(list(features), protocol=4))
            print_log(f'feature extraction: {len(features)} arrays of shape '
                      f'{tuple(features[0].shape)} written to {self.out_file}', logger='current')
        else:
            print_log('feature extraction: no --out file given, the features are not kept',
                      logger='current', level=30)
        return {}

    def _dump(self, scores: np.ndarray, labels: np.ndarray) -> None:
        path = Path(self.out_file)
        atomic_write_bytes(path, pickle.dumps(list(scores), protocol=4))
        if (labels >= 0).all():
            cm = confusion_matrix(scores.argmax(1), labels, scores.shape[1])
            cm_path = path.with_name(path.stem + '_confusion.npy')
            buf = io.BytesIO()
            np.save(buf, cm)
            atomic_write_bytes(cm_path, buf.getvalue())
