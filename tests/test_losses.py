"""Loss functions on hand-made tiny inputs against their direct formulas."""
from __future__ import annotations

import math

import pytest
import torch

from skeletonagent.models.losses import (AlignmentLoss, CrossEntropyLoss, KLLoss, SoftCrossEntropyLoss,
                                         create_logits, same_label_matrix)
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


def test_kl_loss_and_bidirectional_alignment():
    pred = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    target = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    q = torch.softmax(target * 10, 1)
    p = torch.log_softmax(pred, 1)
    expected = (q * (q.log() - p)).sum() / 2
    torch.testing.assert_close(KLLoss()(pred, target), expected)

    labels = torch.tensor([1, 1, 0])
    torch.testing.assert_close(same_label_matrix(labels),
                               torch.tensor([[1., 1., 0.], [1., 1., 0.], [0., 0., 1.]]))
    skel = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    text = torch.tensor([[1.0, 1.0], [1.0, 1.0], [0.0, 2.0]])
    loss = AlignmentLoss()(skel, text, 3.0, labels)
    s_n, t_n = skel / skel.norm(dim=1, keepdim=True), text / text.norm(dim=1, keepdim=True)
    gt = same_label_matrix(labels)
    expected = (KLLoss()(3.0 * s_n @ t_n.t(), gt) + KLLoss()(3.0 * t_n @ s_n.t(), gt)) / 2
    torch.testing.assert_close(loss, expected)
    with pytest.raises(ValueError, match='same N×D shape'):
        AlignmentLoss()(skel, text[:, :1], 1.0, labels)
