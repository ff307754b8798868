"""Loss functions on hand-made tiny inputs against their direct formulas."""
from __future__ import annotations

import math

import pytest
import torch

from skeletonagent.models.losses import (
    AlignmentLoss,
    CrossEntropyLoss,
    KLLoss,
    SoftCrossEntropyLoss,
    create_logits,
    same_label_matrix,
)
from skeletonagent.registry import MODELS


def test_cross_entropy_hard_soft_and_weights():
    scores = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    label = torch.tensor([0, 2])
    lse = [math.log(math.exp(2) + 1 + math.exp(-1)), math.log(2 + math.e)]
    expected = ((lse[0] - 2.0) + (lse[1] - 0.0)) / 2
    assert CrossEntropyLoss()(scores, label).item() == pytest.approx(expected, rel=1e-6)
    assert CrossEntropyLoss(loss_weight=0.5)(scores, label).item() == pytest.approx(expected / 2, rel=1e-6)
    soft = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    expected_soft = (0.5 * (lse[0] - 2.0) + 0.5 * (lse[0] - 0.0) + (lse[1] - 0.0)) / 2
    assert CrossEntropyLoss()(scores, soft).item() == pytest.approx(expected_soft, rel=1e-6)
    assert SoftCrossEntropyLoss()(scores, soft).item() == pytest.approx(expected_soft, rel=1e-6)
    weighted = CrossEntropyLoss(class_weight=[1.0, 1.0, 3.0])(scores, label)
    assert weighted.item() == pytest.approx(((lse[0] - 2.0) + 3 * lse[1]) / 4, rel=1e-6)
    built = MODELS.build(dict(type='CrossEntropyLoss', loss_weight=2.0))
    assert built(scores, label).item() == pytest.approx(2 * expected, rel=1e-6)
    with pytest.raises(ValueError, match='same N×K shape'):
        SoftCrossEntropyLoss()(scores, soft[:, :2])


def test_create_logits_uses_raw_scale():
    a = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    b = torch.tensor([[0.0, 2.0]])
    per_a, per_b = create_logits(a, b, torch.tensor(2.0))
    torch.testing.assert_close(per_a, torch.tensor([[1.6], [0.0]]))
    torch.testing.assert_close(per_b, torch.tensor([[1.6, 0.0]]))


def kl_by_hand(pred, target, scale=10.0):
    """sum over rows of KL(softmax(scale * target row) || softmax(pred row)), divided by the
    number of columns, in plain Python."""
    total = 0.0
    for p_row, t_row in zip(pred, target):
        q = [math.exp(scale * t) for t in t_row]
        q = [v / sum(q) for v in q]
        log_norm = math.log(sum(math.exp(v) for v in p_row))
        total += sum(qi * (math.log(qi) - (pi - log_norm)) for qi, pi in zip(q, p_row) if qi > 0)
    return total / len(pred[0])


def test_kl_loss_and_bidirectional_alignment():
    pred = [[1.0, 0.0, 0.5], [0.0, 0.0, 0.0]]               # 2 rows, 3 columns
    target = [[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]
    assert KLLoss()(torch.tensor(pred), torch.tensor(target)).item() == \
        pytest.approx(kl_by_hand(pred, target), rel=1e-5)

    labels = torch.tensor([1, 1, 0])
    torch.testing.assert_close(same_label_matrix(labels),
                               torch.tensor([[1., 1., 0.], [1., 1., 0.], [0., 0., 1.]]))
    skel = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])   # unit rows
    text = torch.tensor([[1.0, 1.0], [1.0, 1.0], [0.0, 2.0]])   # unit: (1, 1) / sqrt 2, (0, 1)
    loss = AlignmentLoss()(skel, text, 3.0, labels)
    r = 1 / math.sqrt(2)
    s_n = [[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]
    t_n = [[r, r], [r, r], [0.0, 1.0]]
    same = [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    s2t = [[3.0 * sum(a * b for a, b in zip(si, tj)) for tj in t_n] for si in s_n]
    t2s = [list(col) for col in zip(*s2t)]                       # the transpose
    expected = (kl_by_hand(s2t, same) + kl_by_hand(t2s, same)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match='same N×D shape'):
        AlignmentLoss()(skel, text[:, :1], 1.0, labels)
