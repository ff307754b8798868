"""Metrics: top-k, mean class accuracy, confusion, prediction dump."""
import pickle

import numpy as np
import pytest
import torch

from skeletonagent.evaluation import SkeletonAccuracy, confusion_matrix, mean_class_accuracy, top_k_accuracy


def test_top_k_and_mean_class_on_known_scores():
    scores = np.array([[.1, .9, 0.], [.8, .1, .1], [.2, .3, .5], [.6, .3, .1]])
    labels = [1, 0, 1, 1]
    top1, top2 = top_k_accuracy(scores, labels, (1, 2))
    assert top1 == pytest.approx(0.5) and top2 == pytest.approx(1.0)
    # class 0: 1/1, class 1: 1/3 -> mean 2/3 (class 2 absent)
    assert mean_class_accuracy(scores, labels) == pytest.approx(2 / 3)


def test_confusion_matrix_counts():
    cm = confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), 3)
    assert cm.tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert cm.sum() == 4


def test_metric_dumps_scores_in_order(tmp_path):
    out = tmp_path / 'pred.pkl'
    metric = SkeletonAccuracy(out_file=str(out))
    # top-1 right on samples 0, 1 and 4; sample 2's label is second, sample 3's last
    scores = np.array([[.7, .1, .1, .1], [.1, .6, .2, .1], [.1, .1, .3, .5],
                       [.1, .4, .3, .2], [.5, .2, .2, .1], [.4, .3, .2, .1]], np.float32)
    labels = [0, 1, 2, 3, 0, 1]
    metric.process({}, [dict(pred_score=torch.from_numpy(s), gt_label=y)
                        for s, y in zip(scores[:3], labels[:3])])
    metric.process({}, [dict(pred_score=torch.from_numpy(s), gt_label=y)
                        for s, y in zip(scores[3:], labels[3:])])
    res = metric.evaluate(6)
    assert res['acc/top1'] == pytest.approx(3 / 6)
    assert res['acc/top5'] == pytest.approx(1.0)          # 4 classes: every label is in the top 5
    # per class: 0 -> 2/2, 1 -> 1/2 (sample 5 predicted 0), 2 -> 0/1, 3 -> 0/1
    assert res['acc/mean1'] == pytest.approx((1 + 0.5 + 0 + 0) / 4)
    dumped = pickle.loads(out.read_bytes())
    assert isinstance(dumped, list) and len(dumped) == 6
    np.testing.assert_allclose(np.stack(dumped), scores)
    cm = np.load(tmp_path / 'pred_confusion.npy')          # rows: true class, columns: predicted
    assert cm.tolist() == [[2, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 1], [0, 1, 0, 0]]


def test_unknown_metric_named():
    with pytest.raises(ValueError, match='banana'):
        SkeletonAccuracy(metrics=['banana'])
