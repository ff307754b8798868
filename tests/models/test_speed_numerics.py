"""Our training path computes what the plain official model computes.

The reference is ``bench/reference_model.py``: the official SkeletonAgent model restated in
plain torch, step by step (full-length ``conv1``/``conv2``, ``einsum`` joint mixing, one
convolution per TCN branch, branches on the whole doubled batch, the text tower on every label
of the batch padded to CLIP's 77 tokens), holding our state_dict. From the same weights, inputs
and random draws (the mixup), one training step of ``RecognizerGCN`` must give the same loss
terms, the same gradient for every parameter and the same batch-norm running statistics, with
and without ``with_cp`` (float64, within 1e-9 relative); in float32 the whole gradient stays
within 1% of the float64 truth; the fused model scores test clips as the reference does.
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'bench'))

import _common as C  # noqa: E402
from reference_model import reference_from  # noqa: E402

#: a CLIP-shaped text tower small enough for a test (random weights, the bench's tokenizer)
TINY_CLIP = dict(vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=4, max_position_embeddings=77, projection_dim=16)
NUM_CLASSES = 10


pytestmark = pytest.mark.usefixtures('single_thread')


def _model(text: str, dtype: torch.dtype, **backbone):
    """A narrow official-plan recognizer (8 base channels, 10 classes) with ``text``: 'clip'
    (a trained CLIP-shaped tower) or 'frozen' (the same tower, frozen)."""
    import skeletonagent.models  # noqa: F401
    from skeletonagent.registry import MODELS

    cfg = dict(type='RecognizerGCN',
               backbone=dict(C.NTU_J_BACKBONE, num_classes=NUM_CLASSES, base_channels=8, text_dim=16,
                             text_key='ViT-B/32', **backbone),
               cls_head=dict(C.NTU_J_HEAD, num_classes=NUM_CLASSES, in_channels=32),
               text_encoder=dict(type='CLIP', config=TINY_CLIP, tokenizer=C.HashTokenizer(),
                                 trainable=text == 'clip'))
    torch.manual_seed(0)
    np.random.seed(0)                  # the graph's 'random' adjacency draws from numpy
    model = MODELS.build(cfg)
    rng = np.random.default_rng(0)
    masks = (rng.random((NUM_CLASSES, 25, 25)) > .7).astype(np.float32)
    model.set_agent_state(C.class_descriptions(NUM_CLASSES), masks)
    model.init_text_encoder('cpu')
    _randomize(model)
    return model.to(dtype).train()


def _randomize(model) -> None:
    """Non-zero alpha, beta and add_coeff (zero at init, which would hide their terms)."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.rsplit('.', 1)[-1] in ('alpha', 'beta', 'add_coeff'):
                p.copy_(torch.randn(p.shape, generator=gen) * .5)


def _inputs(dtype: torch.dtype):
    gen = torch.Generator().manual_seed(2)
    keypoint = torch.randn(4, 1, 2, 100, 25, 3, generator=gen).to(dtype)
    label = torch.tensor([3, 7, 3, 1])             # a repeated label: the text tower sees it once
    return keypoint, label


def _ours(model, keypoint, label, seed: int = 5):
    torch.manual_seed(seed)
    random.seed(seed)
    losses = model(keypoint, label, mode='loss')
    terms = {k: v for k, v in losses.items() if k.startswith('loss')}
    sum(terms.values()).backward()
    return {k: v.detach() for k, v in terms.items()}


def _reference(ref, keypoint, label, seed: int = 5):
    torch.manual_seed(seed)
    random.seed(seed)
    out = ref.forward_train(keypoint, label)
    out['loss'].backward()
    return {k: v.detach() for k, v in out.items() if k != 'loss'}


def _grads(module) -> dict[str, torch.Tensor]:
    return {name: p.grad.detach().double() for name, p in module.named_parameters()
            if p.requires_grad and p.grad is not None}


def _check_step(model, ref, rtol: float) -> None:
    """float64: one step of ours and of the reference give the same loss terms, gradients and
    running statistics within ``rtol`` (the same math, summed in another order)."""
    keypoint, label = _inputs(torch.float64)
    ours = _ours(model, keypoint, label)
    theirs = _reference(ref, keypoint, label)
    for key, value in theirs.items():
        torch.testing.assert_close(ours[key], value, rtol=rtol, atol=0, msg=key)
    grads, expected = _grads(model), _grads(ref)
    assert set(grads) == {n for n, p in ref.named_parameters() if p.requires_grad}
    # biases right before a batch norm have a gradient that is zero in exact arithmetic:
    # rounding noise there is measured against the largest gradient
    floor = rtol * 1e-3 * max(float(g.abs().max()) for g in expected.values())
    for name, grad in grads.items():
        err = float((grad - expected[name]).norm())
        assert err <= rtol * float(expected[name].norm()) + floor, \
            f'{name}: |diff| {err:.3g}, |grad| {float(expected[name].norm()):.3g}'
    ours_buffers = dict(model.named_buffers())
    for name, value in ref.named_buffers():
        if name in ours_buffers:
            torch.testing.assert_close(ours_buffers[name], value.to(ours_buffers[name].dtype),
                                       rtol=rtol, atol=rtol * 1e-3, msg=name)


@pytest.mark.parametrize('text', ['clip', 'frozen'])
def test_training_step_matches_the_reference(text):
    model = _model(text, torch.float64)
    ref = reference_from(model).to(torch.float64).train()
    _check_step(model, ref, 1e-9)


@pytest.mark.parametrize('with_cp', [True, 'selective'])
def test_checkpointed_step_matches_the_reference(with_cp):
    model = _model('clip', torch.float64, with_cp=with_cp)
    ref = reference_from(model).to(torch.float64).train()
    _check_step(model, ref, 1e-9)


@pytest.mark.parametrize('text', ['clip', 'frozen'])
def test_float32_step_stays_close_to_the_exact_gradient(text):
    """float32: rounding error is amplified through ten blocks and their batch norms, in the
    reference too (its gradient of all parameters is ~0.02-0.1% off the float64 value, some
    single parameters by 5%; ours, in channels-last memory, ~0.1-0.5%). Against the float64
    reference as the truth: the loss terms within 1e-5, the whole gradient within 1%."""
    model = _model(text, torch.float64)
    truth_model = reference_from(model).to(torch.float64).train()
    model = model.to(torch.float32)
    keypoint, label = _inputs(torch.float64)
    truth = _reference(truth_model, keypoint, label)
    ours = _ours(model, keypoint.float(), label)
    for key, value in truth.items():
        torch.testing.assert_close(ours[key].double(), value, rtol=1e-5, atol=0, msg=key)
    exact, grads = _grads(truth_model), _grads(model)
    assert set(grads) == set(exact)
    norm = torch.cat([g.flatten() for g in exact.values()]).norm()
    err = torch.cat([(grads[name] - g).flatten() for name, g in exact.items()]).norm()
    assert err <= 1e-2 * norm, f'float32 gradient off by {float(err / norm):.2%} of its norm'


def test_reference_holds_our_state_dict():
    model = _model('clip', torch.float32)
    ref = reference_from(model)
    ours, theirs = model.state_dict(), ref.state_dict()
    assert set(ours) == set(theirs)
    for key, value in ours.items():
        assert torch.equal(value, theirs[key]), key


def test_fused_inference_matches_the_reference():
    """As the official test runs it: clips through the backbone, softmax, mean over clips."""
    from skeletonagent.models.gcn import fuse_for_inference

    model = _model('frozen', torch.float64)
    keypoint, label = _inputs(torch.float64)
    _ours(model, keypoint, label)            # one training step: non-trivial BN statistics
    ref = reference_from(model).to(torch.float64).eval()
    clips = torch.randn(2, 3, 2, 100, 25, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    fuse_for_inference(model)
    with torch.no_grad():
        ours = model(clips, mode='tensor')
        theirs = ref.forward_test(clips)
    torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize('with_cp', [False, 'selective'])
def test_every_gradient_has_its_parameters_layout(with_cp):
    """The blocks run channels-last: each parameter's gradient must come back with the
    parameter's own strides (DDP copies each gradient into a bucket view laid out like its
    parameter; on a mismatch it warned and copied every step, and 2-process gloo runs aborted
    at exit now and then)."""
    model = _model('clip', torch.float32, with_cp=with_cp)
    keypoint, label = _inputs(torch.float32)
    _ours(model, keypoint, label)
    params = [(name, p) for name, p in model.named_parameters() if p.grad is not None]
    assert any(p.dim() == 4 and p.shape[2:] != (1, 1) for _, p in params)   # temporal convs are in
    mismatched = [(name, tuple(p.stride()), tuple(p.grad.stride())) for name, p in params
                  if p.stride() != p.grad.stride()]
    assert not mismatched, f'gradient strides differ from their parameters: {mismatched[:5]}'
