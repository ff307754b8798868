"""Backbones, units, head and recognizer: numerics against literal re-statements of the
official forward passes, parameter count and state_dict keys, mixup, agent state, text cache."""
from __future__ import annotations

import copy
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import skeletonagent.models  # noqa: F401  (registers the models)
from skeletonagent.models.gcn.units import GCNUnit, MSTCNUnit
from skeletonagent.models.recognizers.mixup import skeleton_part_mix
from skeletonagent.models.text.base import TextEncoder
from skeletonagent.registry import MODELS, TEXT_ENCODERS
from skeletonagent.skeleton import get_layout

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'bench'))
from reference_model import official_mix  # noqa: E402  (the official mixup, restated in plain torch)

pytestmark = pytest.mark.usefixtures('single_thread')


MS_CFG = [(3, 1), (3, 2), (3, 3), (3, 4), ('max', 3), '1x1']
GRAPH = dict(layout='nturgb+d', mode='random', num_filter=8, init_off=.04, init_std=.02)


# -- literal reference of the official unit forwards (plain, loop-free, unoptimised) ------------
def reference_gcn_unit(m: GCNUnit, x: torch.Tensor) -> torch.Tensor:
    n, c, t, v = x.shape
    res = x if m.down is None else m.down(x)
    A = m.A[None, :, None, None]                                          # 1 K 1 1 V V
    pre_x = m.pre(x).reshape(n, m.num_subsets, m.mid_channels, t, v)      # N K C T V
    x1 = m.conv1(x).reshape(n, m.num_subsets, m.mid_channels, -1, v).mean(dim=-2, keepdim=True)
    x2 = m.conv2(x).reshape(n, m.num_subsets, m.mid_channels, -1, v).mean(dim=-2, keepdim=True)
    inter = torch.tanh(x1.unsqueeze(-1) - x2.unsqueeze(-2)) * m.alpha[0]  # N K C 1 V V
    A = inter + A
    intra = torch.einsum('nkctv,nkctw->nktvw', x1, x2)[:, :, None]       # N K 1 1 V V
    A = torch.softmax(intra, -2) * m.beta[0] + A
    y = torch.einsum('nkctv,nkcvw->nkctw', pre_x, A.squeeze(3)).reshape(n, -1, t, v)
    return torch.relu(m.bn(m.post(y)) + res)


def reference_mstcn_unit(m: MSTCNUnit, x: torch.Tensor) -> torch.Tensor:
    v = x.shape[-1]
    x = torch.cat([x, x.mean(-1, keepdim=True)], -1)                     # N C T V+1
    out = torch.cat([branch(x) for branch in m.branches], dim=1)
    feat = out[..., :v] + torch.einsum('nct,v->nctv', out[..., v], m.add_coeff[:v])
    return m.bn(m.transform(feat))


def _randomize(module: nn.Module) -> None:
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.split('.')[-1] in ('alpha', 'beta', 'add_coeff'):
                p.normal_()
        for mod in module.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.weight.uniform_(.5, 1.5)
                mod.bias.normal_(0, .1)
                mod.running_mean.normal_(0, .1)
                mod.running_var.uniform_(.5, 2)


@pytest.mark.parametrize('cin,cout,stride,channels_last', [(16, 16, 1, True), (16, 32, 2, True), (8, 16, 1, False)])
def test_units_match_official_forward_and_gradients(cin, cout, stride, channels_last):
    torch.manual_seed(0)
    A = torch.randn(8, 25, 25) * .02 + .04
    gcn, tcn = GCNUnit(cin, cout, A), MSTCNUnit(cout, cout, stride=stride)
    _randomize(gcn)
    _randomize(tcn)
    gcn_ref, tcn_ref = copy.deepcopy(gcn), copy.deepcopy(tcn)
    x = torch.randn(3, cin, 12, 25)
    x_ours = (x.contiguous(memory_format=torch.channels_last) if channels_last else x.clone()).requires_grad_()
    x_ref = x.clone().requires_grad_()

    ours = tcn(gcn(x_ours))
    ref = reference_mstcn_unit(tcn_ref, reference_gcn_unit(gcn_ref, x_ref))
    assert ours.shape == (3, cout, 12 // stride, 25)
    torch.testing.assert_close(ours, ref, atol=2e-5, rtol=1e-4)
    grad = torch.randn_like(ref)
    ours.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(x_ours.grad, x_ref.grad, atol=2e-5, rtol=1e-4)
    ref_params = list(gcn_ref.parameters()) + list(tcn_ref.parameters())
    # biases right before a BN have (numerically) zero gradient: compare on the global scale
    scale = max(p.grad.abs().max().item() for p in ref_params)
    for (name, p), p_ref in zip(list(gcn.named_parameters()) + list(tcn.named_parameters()), ref_params):
        torch.testing.assert_close(p.grad, p_ref.grad, atol=1e-5 * scale, rtol=1e-3, msg=name)
    for (name, b), b_ref in zip(list(gcn.named_buffers()) + list(tcn.named_buffers()),
                                list(gcn_ref.buffers()) + list(tcn_ref.buffers())):
        torch.testing.assert_close(b, b_ref, atol=1e-6, rtol=1e-5, msg=name)

    for m in (gcn, tcn, gcn_ref, tcn_ref):
        m.eval()
    with torch.no_grad():
        ours = tcn(gcn(x_ours))
        ref = reference_mstcn_unit(tcn_ref, reference_gcn_unit(gcn_ref, x_ref))
    torch.testing.assert_close(ours, ref, atol=2e-5, rtol=1e-4)


def test_units_with_other_norm_layers_match_official_forward():
    """Units whose BNs are not plain BatchNorm2d (e.g. converted to SyncBN) run the same
    forward, with batch statistics, and match the official code."""
    class OtherBN(nn.BatchNorm2d):
        pass

    torch.manual_seed(0)
    gcn, tcn = GCNUnit(8, 8, torch.rand(3, 25, 25)), MSTCNUnit(8, 8)
    for unit in (gcn, tcn):
        for _, mod in list(unit.named_modules()):
            for child_name, child in list(mod.named_children()):
                if type(child) is nn.BatchNorm2d:
                    setattr(mod, child_name, OtherBN(child.num_features))
    _randomize(gcn)
    _randomize(tcn)
    gcn_ref, tcn_ref = copy.deepcopy(gcn), copy.deepcopy(tcn)
    x = torch.randn(2, 8, 6, 25, requires_grad=True)
    ours = tcn(gcn(x))
    ref = reference_mstcn_unit(tcn_ref, reference_gcn_unit(gcn_ref, x))
    torch.testing.assert_close(ours, ref, atol=2e-5, rtol=1e-4)


def test_units_support_double_backward():
    """No once-differentiable kernel in the units: a gradient penalty (grad of a grad) works
    and equals the official forward's (in float64: second-order terms through batch norm are
    too ill-conditioned for a float32 comparison)."""
    torch.manual_seed(0)
    gcn, tcn = GCNUnit(8, 16, torch.rand(3, 25, 25) * .1), MSTCNUnit(16, 16)
    _randomize(gcn)
    _randomize(tcn)
    gcn, tcn = gcn.double(), tcn.double()
    gcn_ref, tcn_ref = copy.deepcopy(gcn), copy.deepcopy(tcn)
    x = torch.randn(2, 8, 6, 25, dtype=torch.float64)

    def penalty(g, t, forward):
        xr = x.clone().requires_grad_()
        (gx,) = torch.autograd.grad(forward(g, t, xr).square().sum(), xr, create_graph=True)
        gx.square().sum().backward()
        return [p.grad for p in list(g.parameters()) + list(t.parameters())]

    ours = penalty(gcn, tcn, lambda g, t, xr: t(g(xr)))
    ref = penalty(gcn_ref, tcn_ref, lambda g, t, xr: reference_mstcn_unit(t, reference_gcn_unit(g, xr)))
    assert [o is None for o in ours] == [r is None for r in ref]
    ours, ref = [o for o in ours if o is not None], [r for r in ref if r is not None]
    scale = max(r.abs().max().item() for r in ref)
    assert scale > 0
    for o, r in zip(ours, ref):
        torch.testing.assert_close(o, r, atol=1e-8 * scale, rtol=1e-6)


def _kept_for_backward(fn, *args) -> list[torch.Tensor]:
    """The tensors autograd keeps for the backward of ``fn(*args)``, one per storage."""
    kept = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        kept.setdefault(t.untyped_storage().data_ptr(), t)
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*args)
    return list(kept.values())


def test_units_keep_each_activation_once_for_backward():
    """Backward keeps no second copy of an activation: the TCN's entry convolutions keep the
    unit's input itself (the joints' mean is appended after them, not to a copy of the input),
    and the joint mixing's product keeps the activated tensor that the activation keeps (no
    copy of it in another memory layout)."""
    torch.manual_seed(0)
    gcn, tcn = GCNUnit(8, 16, torch.rand(3, 25, 25)), MSTCNUnit(16, 16)
    _randomize(gcn)
    _randomize(tcn)
    x = torch.randn(2, 16, 12, 25).contiguous(memory_format=torch.channels_last).requires_grad_()
    kept = _kept_for_backward(tcn, x)
    assert any(t.untyped_storage().data_ptr() == x.untyped_storage().data_ptr() for t in kept)
    assert not [tuple(t.shape) for t in kept if tuple(t.shape) == (2, 16, 12, 26)], \
        'a copy of the input with the mean column is kept'

    x = torch.randn(2, 8, 12, 25).contiguous(memory_format=torch.channels_last).requires_grad_()
    kept = _kept_for_backward(lambda inp: tcn(gcn(inp)), x)
    values = [torch.sort(t.detach().flatten()).values for t in kept if t.numel() > 1000]
    assert len(values) > 10
    for i, a in enumerate(values):
        for b in values[i + 1:]:
            assert not (a.shape == b.shape and torch.equal(a, b)), \
                f'two kept tensors of {a.numel()} elements hold the same values'


@pytest.mark.parametrize('sign', [1.0, -1.0])
def test_tcn_fuse_with_either_bn_sign(sign):
    """``fuse()`` folds the branch-entry BNs and the last BN into their convolutions (the
    transform BN stays: a ReLU separates it from any convolution) and matches the official
    forward whatever the sign of the BN scales."""
    torch.manual_seed(1)
    tcn = MSTCNUnit(24, 24, stride=2)
    _randomize(tcn)
    with torch.no_grad():
        tcn.transform[0].weight.mul_(sign)
        tcn.branches[4][1].weight.mul_(sign)
    tcn.eval()
    ref = copy.deepcopy(tcn)
    tcn.fuse()
    assert sum(isinstance(m, nn.BatchNorm2d) for m in tcn.modules()) == 1
    x = torch.randn(2, 24, 10, 25).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(tcn(x), reference_mstcn_unit(ref, x), atol=2e-5, rtol=1e-4)


def _small_backbone(backbone: str) -> tuple[nn.Module, torch.Tensor]:
    """A small backbone in eval mode with random BN statistics, and an input N×M×T×V×C."""
    torch.manual_seed(0)
    if backbone == 'STGCN':
        cfg = dict(type='STGCN', graph_cfg=dict(layout='nturgb+d', mode='spatial'), base_channels=16,
                   num_stages=4, inflate_stages=[3], down_stages=[3], gcn_adaptive='init', gcn_with_res=True,
                   tcn_type='mstcn')
    else:
        cfg = dict(type=backbone, num_classes=10, text_dim=8, tcn_ms_cfg=MS_CFG, graph_cfg=GRAPH, **SMALL)
    model = MODELS.build(cfg)
    _randomize(model)
    return model.eval(), torch.randn(2, 2, 12, 25, 3)


def _features(out):
    return out[0] if isinstance(out, tuple) else out


@pytest.mark.parametrize('backbone', ['GCN_Module_LLM', 'GCN_Module_LLM_K400', 'STGCN'])
def test_fuse_folds_conv_bn_once_with_the_same_outputs(backbone):
    model, x = _small_backbone(backbone)
    keys = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    with torch.no_grad():
        ref = _features(model(x))
        with pytest.raises(RuntimeError, match='eval'):
            model.train().fuse()
        model.eval().fuse()
        out = _features(model(x))
    fused_keys = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert fused_keys.items() < keys.items()                  # BN entries gone; nothing renamed or reshaped
    gone = {k.rsplit('.', 1)[0] for k in set(keys) - set(fused_keys)}
    assert len(gone) == n_bn - sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    # left: every TCN's transform[0] (a ReLU separates it from the conv), and STGCN's graph-unit
    # BN (the joint mixing sits between it and the conv)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == len(model.gcn) * (
        2 if backbone == 'STGCN' else 1)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())
    model.fuse()                                              # once: a second call changes nothing
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == fused_keys
    with pytest.raises(RuntimeError, match='fuse'):
        model.train()


def test_fuse_for_inference_through_the_recognizer():
    from skeletonagent.models.gcn import fuse_for_inference
    model = build(small_cfg())
    _randomize(model)
    x = torch.randn(2, 3, 2, 16, 25, 3)
    model.eval()
    with torch.no_grad():
        ref = model(x, mode='tensor')
        assert fuse_for_inference(model) is model and model.backbone.fused
        torch.testing.assert_close(model(x, mode='tensor'), ref, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize('with_cp', [True, 'selective'])
@pytest.mark.parametrize('backbone', ['GCN_Module_LLM', 'STGCN'])
def test_with_cp_same_step_as_without(backbone, with_cp):
    """Checkpointed blocks: the same output, gradients and BN running statistics (updated once
    although each block's forward runs twice)."""
    model, x = _small_backbone(backbone)
    cp = copy.deepcopy(model)
    for block in cp.gcn:
        block.with_cp = with_cp
    results = []
    for m in (model, cp):
        m.train()
        calls = []
        hook = m.gcn[1].tcn.register_forward_hook(lambda *args, calls=calls: calls.append(1))
        out = _features(m(x))
        out.square().mean().backward()
        hook.remove()
        assert len(calls) == (2 if m is cp else 1)              # recomputed in backward
        results.append((out.detach(), {n: p.grad for n, p in m.named_parameters()}, m.state_dict()))
    (out_a, grads_a, state_a), (out_b, grads_b, state_b) = results
    torch.testing.assert_close(out_b, out_a)
    for name, g in grads_a.items():
        assert g is not None or grads_b[name] is None, name
        if g is not None:
            torch.testing.assert_close(grads_b[name], g, msg=name)
    for name, b in state_a.items():
        torch.testing.assert_close(state_b[name], b, msg=name)
    assert state_b['gcn.1.tcn.bn.num_batches_tracked'].item() == 1


def test_with_cp_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match="GCN_Module_LLM: with_cp must be False, True or 'selective', got 'all'"):
        cfg = small_cfg()
        cfg['backbone']['with_cp'] = 'all'
        build(cfg)


# -- configs -------------------------------------------------------------------------------------
def ntu_cfg(head_in: int = 384, num_classes: int = 60, **backbone) -> dict:
    """The official configs/ntu60_xsub/j.py model (text_dim 512)."""
    bb = dict(type='GCN_Module_LLM', llm_model='gpt4o', llm_modality='j', num_classes=num_classes,
              tcn_ms_cfg=MS_CFG, graph_cfg=GRAPH)
    bb.update(backbone)
    return dict(type='RecognizerGCN', backbone=bb,
                cls_head=dict(type='SimpleHead', joint_cfg='nturgb+d', num_classes=num_classes,
                              in_channels=head_in, work_dir='./work_dirs/x', interval_epoch=5,
                              weight_1=0.2, weight_2=0.5),
                train_cfg=None, test_cfg=None)


SMALL = dict(base_channels=8, num_stages=4, inflate_stages=[3, 4], down_stages=[3])


def small_cfg(layout: str = 'nturgb+d', num_classes: int = 60, backbone_type: str = 'GCN_Module_LLM',
              in_channels: int = 3, text_dim: int = 8, encoder: str = 'CountingEncoder') -> dict:
    cfg = dict(type='RecognizerGCN',
               backbone=dict(type=backbone_type, num_classes=num_classes, in_channels=in_channels, tcn_ms_cfg=MS_CFG,
                             graph_cfg=dict(GRAPH, layout=layout), text_dim=text_dim, text_key='count', **SMALL),
               cls_head=dict(type='SimpleHead', joint_cfg=layout, num_classes=num_classes, in_channels=32,
                             work_dir=None, interval_epoch=5, weight_1=0.2, weight_2=0.5),
               text_encoder=dict(type=encoder, dim=text_dim))
    return cfg


@TEXT_ENCODERS.register_module(force=True)
class CountingEncoder(TextEncoder):
    """Deterministic test encoder: a bag of hashed characters; counts its calls."""

    key = 'count'

    def __init__(self, dim: int = 8, trainable: bool = False) -> None:
        super().__init__(trainable=trainable)
        self.dim = dim
        self.proj = nn.Linear(64, dim)
        self.calls = 0
        self.encoded: list[list[str]] = []
        self._freeze()

    def _encode_batch(self, texts):
        self.calls += 1
        self.encoded.append(list(texts))
        feats = torch.zeros(len(texts), 64)
        for i, t in enumerate(texts):
            for ch in t:
                feats[i, ord(ch) % 64] += 1
        return self.proj(feats.to(self.device))


def build(cfg: dict, descriptions: bool = True):
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    if descriptions:
        nc = model.num_classes
        model.set_agent_state([f'action number {i} ' + 'x' * (i % 7) for i in range(nc)], None)
    return model


# -- structure -----------------------------------------------------------------------------------
def test_official_ntu_parameter_count_and_keys():
    model = MODELS.build(ntu_cfg())
    trainable = lambda m: sum(p.numel() for p in m.parameters() if p.requires_grad)  # noqa: E731
    # backbone alone: 3,876,667; the 60-way classifier adds 384*60 + 60 = 23,100
    assert trainable(model.backbone) == 3_876_667
    assert trainable(model) == 3_876_667 + 23_100
    sd = model.state_dict()
    expected = {
        'backbone.gcn.0.gcn.A': (8, 25, 25), 'backbone.gcn.0.gcn.alpha': (8,), 'backbone.gcn.0.gcn.beta': (8,),
        'backbone.gcn.0.gcn.pre.0.weight': (96, 96, 1, 1), 'backbone.gcn.0.gcn.pre.1.running_var': (96,),
        'backbone.gcn.0.gcn.conv1.weight': (96, 96, 1, 1), 'backbone.gcn.0.gcn.conv2.bias': (96,),
        'backbone.gcn.0.gcn.post.weight': (96, 96, 1, 1), 'backbone.gcn.0.gcn.bn.weight': (96,),
        'backbone.gcn.0.tcn.add_coeff': (25,), 'backbone.gcn.0.tcn.branches.0.0.weight': (16, 96, 1, 1),
        'backbone.gcn.0.tcn.branches.0.1.num_batches_tracked': (),
        'backbone.gcn.0.tcn.branches.3.3.conv.weight': (16, 16, 3, 1),
        'backbone.gcn.0.tcn.branches.4.0.weight': (16, 96, 1, 1),
        'backbone.gcn.0.tcn.branches.5.weight': (16, 96, 1, 1),
        'backbone.gcn.0.tcn.transform.0.weight': (96,), 'backbone.gcn.0.tcn.transform.2.weight': (96, 96, 1, 1),
        'backbone.gcn.0.tcn.bn.running_mean': (96,),
        'backbone.gcn.3.gcn.down.0.weight': (192, 96, 1, 1), 'backbone.gcn.3.gcn.down.1.weight': (192,),
        'backbone.gcn.3.residual.conv.weight': (192, 96, 1, 1), 'backbone.gcn.3.residual.bn.running_var': (192,),
        'backbone.gcn.8.tcn.transform.2.weight': (384, 384, 1, 1),
        'backbone.examplar': (60, 25, 25), 'backbone.linear_head.ViT-B/32.weight': (512, 384),
        'backbone.linear_head.ViT-B/32.bias': (512,), 'backbone.logit_scale': (1, 1),
        'backbone.pos_embedding': (1, 25, 96), 'backbone.to_joint_embedding.weight': (96, 3),
        'backbone.to_joint_embedding.bias': (96,), 'backbone.direct_fc.weight': (1, 384, 1, 1),
        'backbone.direct_fc.bias': (1,), 'backbone.data_bn.weight': (4800,), 'backbone.data_bn.running_mean': (4800,),
        'cls_head.fc_cls.weight': (60, 384), 'cls_head.fc_cls.bias': (60,),
    }
    for key, shape in expected.items():
        assert tuple(sd[key].shape) == shape, key
    assert len(model.backbone.gcn) == 9 and 'backbone.gcn.9.gcn.A' not in sd
    assert not model.backbone.examplar.requires_grad and not model.backbone.examplar.any()
    assert not any(k.startswith('text_encoder') or 'model_text_dict' in k for k in sd)
    assert abs(model.backbone.logit_scale.item() - np.log(1 / 0.07)) < 1e-6


def test_narrow_variant_channels_and_head_mismatch():
    cfg = ntu_cfg(head_in=64, base_channels=32, num_stages=6, inflate_stages=[4], down_stages=[4])
    model = MODELS.build(cfg)
    assert model.backbone.out_channels == 64
    assert model.backbone.direct_fc.weight.shape == (1, 64, 1, 1)
    assert model.backbone.linear_head['ViT-B/32'].weight.shape == (512, 64)
    with torch.no_grad():
        scores = model(torch.randn(2, 1, 2, 32, 25, 3), mode='tensor')
    assert scores.shape == (2, 60)
    bad = ntu_cfg(head_in=128, base_channels=32, num_stages=6, inflate_stages=[4], down_stages=[4])
    with pytest.raises(ValueError, match='64 channels'):
        MODELS.build(bad)


@pytest.mark.parametrize('layout,num_classes,backbone,in_channels,joints', [
    ('nturgb+d', 60, 'GCN_Module_LLM', 3, 25),
    ('nturgb+d', 120, 'GCN_Module_LLM', 3, 25),
    ('coco_new', 400, 'GCN_Module_LLM_K400', 3, 20),
    ('coco_new', 99, 'GCN_Module_LLM', 3, 20),
    ('uav', 155, 'GCN_Module_LLM', 3, 17),
])
def test_shapes_losses_and_predictions_per_dataset(layout, num_classes, backbone, in_channels, joints):
    model = build(small_cfg(layout, num_classes, backbone, in_channels))
    model.set_agent_state(None, np.random.default_rng(0).random((num_classes, joints, joints)).astype(np.float32))
    model.train()
    keypoint = torch.randn(4, 1, 2, 16, joints, in_channels)
    label = torch.tensor([0, 1, num_classes - 1, 1])
    losses = model(keypoint, label, mode='loss')
    predictions = losses.pop('predictions')
    assert set(losses) == {'loss_cls', 'loss_mix', 'loss_constraint', 'loss_align', 'top1_acc', 'top5_acc'}
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert model.backbone.gcn[0].gcn.pre[0].weight.grad is not None
    assert predictions.logits.shape == (4, num_classes) and not predictions.logits.requires_grad
    assert predictions.labels.tolist() == label.tolist()
    model.eval()
    with torch.no_grad():
        preds = model(torch.randn(3, 2, 2, 16, joints, in_channels), torch.tensor([2, 0, 1]), mode='predict')
    assert len(preds) == 3 and [p['gt_label'] for p in preds] == [2, 0, 1]
    assert preds[0]['pred_score'].shape == (num_classes,) and preds[0]['pred_score'].device.type == 'cpu'
    torch.testing.assert_close(preds[1]['pred_score'].sum(), torch.tensor(1.0))


def test_predict_average_clips_modes():
    model = build(small_cfg()).eval()
    x = torch.randn(2, 3, 2, 16, 25, 3)
    with torch.no_grad():
        feats = model.backbone.extract_features(x.reshape(6, 2, 16, 25, 3))
        logits = model.cls_head(feats).reshape(2, 3, 60)
        prob = model(x, mode='tensor')
        model.test_cfg['average_clips'] = 'score'
        score = model(x, mode='tensor')
        model.test_cfg['average_clips'] = None
        raw = model(x, mode='tensor')
        preds = model(x, mode='predict')
    torch.testing.assert_close(prob, logits.softmax(2).mean(1))
    torch.testing.assert_close(score, logits.mean(1))
    assert raw.shape == (2, 3, 60)
    assert preds[0]['gt_label'] is None
    model.test_cfg['average_clips'] = 'median'
    with pytest.raises(ValueError, match='average_clips'):
        model(x, mode='tensor')


def test_local_branch_and_global_branch_match_official_formulas():
    model = build(small_cfg())
    bb = model.backbone
    with torch.no_grad():
        bb.examplar.copy_(torch.rand_like(bb.examplar))
        bb.direct_fc.bias.fill_(0.3)
    feat = torch.randn(3, 2, 32, 4, 25)
    n, m, c, t, v = feat.shape
    x1 = feat.reshape(n * m, c, t, v).mean(2)
    x1 = torch.einsum('nmv,cvu->nmcu', x1, bb.examplar)
    ref_local = bb.direct_fc(x1).squeeze(1).mean(2).reshape(n, m, -1).mean(1)
    ref_global = bb.linear_head['count'](feat.reshape(n, m, c, -1).mean(3).mean(1))
    torch.testing.assert_close(bb.local_logits(feat), ref_local, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(bb.global_embedding(feat), ref_global)
    bb.compute_aux = False
    out = bb(torch.randn(2, 2, 8, 25, 3))
    assert out[1] is None and out[2] is None


# -- losses of the head -----------------------------------------------------------------------
def test_head_loss_terms_sum_to_official_total():
    model = build(small_cfg())
    head = model.cls_head
    torch.manual_seed(1)
    cls, mix, local = torch.randn(4, 60), torch.randn(4, 60), torch.randn(4, 60)
    mix_label = torch.softmax(torch.randn(4, 60), 1)
    glob, text = torch.randn(4, 8), torch.randn(4, 8)
    label = torch.tensor([3, 5, 3, 7])
    scale = torch.full((1, 1), 2.5)
    losses = head.loss(cls, label, mix, mix_label, local, glob, text, scale)

    ce = F.cross_entropy(cls, label)
    cls_mix = -torch.mean(torch.sum(F.log_softmax(mix, 1) * mix_label, 1))
    g, tx = glob / glob.norm(dim=1, keepdim=True), text / text.norm(dim=1, keepdim=True)
    gt = (label[:, None] == label[None]).float()

    def kl(pred):  # KLDivLoss(sum)(log_softmax(pred), softmax(10 gt)) / columns
        q = torch.softmax(gt * 10, 1)
        return (q * (q.log() - F.log_softmax(pred, 1))).sum() / pred.shape[1]
    align = (kl(2.5 * g @ tx.t()) + kl(2.5 * tx @ g.t())) / 2
    official_total = ce + cls_mix + 0.2 * F.cross_entropy(local, label) + 0.5 * align
    torch.testing.assert_close(losses['loss_cls'], ce)
    torch.testing.assert_close(losses['loss_mix'], cls_mix)
    torch.testing.assert_close(losses['loss_align'], 0.5 * align)
    torch.testing.assert_close(sum(v for k, v in losses.items() if 'loss' in k), official_total)
    top1 = (cls.argmax(1) == label).float().mean()
    torch.testing.assert_close(losses['top1_acc'], top1)


# -- mixup ----------------------------------------------------------------------------------------



@pytest.mark.parametrize('seed', range(6))
def test_mixup_matches_official_rng_order(seed):
    parts = get_layout('nturgb+d').mix_parts
    keypoint = torch.randn(5, 2, 100, 25, 3)
    label = torch.tensor([0, 4, 2, 9, 4])
    torch.manual_seed(seed)
    random.seed(seed)
    ref_data, ref_label = official_mix(keypoint, label, 10, parts)
    torch.manual_seed(seed)
    random.seed(seed)
    data, mix_label, info = skeleton_part_mix(keypoint, label, 10, parts)
    torch.testing.assert_close(data, ref_data, rtol=0, atol=0)
    torch.testing.assert_close(mix_label, ref_label, rtol=0, atol=0)
    torch.testing.assert_close(mix_label.sum(1), torch.ones(5))


def test_mixup_parts_come_from_partner():
    parts = get_layout('uav').mix_parts
    keypoint = torch.randn(4, 2, 100, 17, 3)
    label = torch.tensor([1, 2, 3, 4])
    random.seed(3)
    torch.manual_seed(3)
    data, mix_label, info = skeleton_part_mix(keypoint, label, 5, parts, p=0.9)
    assert info.swapped and 2 <= sum(set(p) <= set(info.joints) for p in parts) <= 3
    joints = torch.tensor(info.joints)
    other = torch.tensor([j for j in range(17) if j not in info.joints])
    for i in range(4):
        src = keypoint[info.partner[i]][:, info.src_frames][:, :, joints]
        torch.testing.assert_close(data[i][:, info.dst_frames][:, :, joints], src, rtol=0, atol=0)
        torch.testing.assert_close(data[i][:, :, other], keypoint[i][:, :, other], rtol=0, atol=0)
        outside = torch.tensor([f for f in range(100) if f not in info.dst_frames.tolist()])
        torch.testing.assert_close(data[i][:, outside], keypoint[i][:, outside], rtol=0, atol=0)
    lam = len(info.joints) * len(info.dst_frames) / 4 / (25 * 17)
    for i in range(4):
        assert mix_label[i, label[i]].item() == pytest.approx(1 - lam, abs=1e-6)
        assert mix_label[i, label[info.partner[i]]].item() == pytest.approx(lam, abs=1e-6)
    torch.testing.assert_close(mix_label.sum(1), torch.ones(4))
    # blend branch, short clips (the demo's 32 frames) and the no-partner batch of two
    data, mix_label, info = skeleton_part_mix(keypoint[:, :, :32], label, 5, parts, p=0.1)
    assert not info.swapped
    lam = info.lam.item()
    torch.testing.assert_close(data, keypoint[:, :, :32] * (1 - lam) + keypoint[info.partner][:, :, :32] * lam)
    _, _, info = skeleton_part_mix(keypoint[:2, :, :32], label[:2], 5, parts, p=0.9)
    assert info.partner.tolist() == [0, 1] and len(info.dst_frames) <= 32


# -- agent state and text ----------------------------------------------------------------------
def test_frozen_text_embeddings_cached_and_invalidated():
    model = build(small_cfg())
    model.train()
    encoder = model.init_text_encoder()
    keypoint, label = torch.randn(3, 1, 2, 16, 25, 3), torch.tensor([0, 5, 5])
    for _ in range(3):
        model(keypoint, label, mode='loss')
    assert encoder.calls == 1 and len(encoder.encoded[0]) == 60
    model.set_agent_state(model.descriptions, None)              # same texts: cache kept
    model(keypoint, label, mode='loss')
    assert encoder.calls == 1
    new = [f'new description {i}' for i in range(60)]
    model.set_agent_state(new, None)
    model(keypoint, label, mode='loss')
    assert encoder.calls == 2 and encoder.encoded[-1] == new
    expected = encoder.encode([new[0], new[5], new[5]])
    torch.testing.assert_close(model.text_embeddings(label), expected)
    assert not any(k.startswith('text_encoder') for k in model.state_dict())


def test_trainable_text_encoder_encodes_batch_labels_with_grad():
    cfg = small_cfg()
    cfg['text_encoder']['trainable'] = True
    model = build(cfg)
    model.train()
    encoder = model.init_text_encoder()
    losses = model(torch.randn(3, 1, 2, 16, 25, 3), torch.tensor([4, 2, 4]), mode='loss')
    assert encoder.encoded[-1] == [model.descriptions[2], model.descriptions[4]]
    losses['loss_align'].backward()
    assert encoder.proj.weight.grad is not None and encoder.proj.weight.grad.abs().sum() > 0


def test_agent_state_validation_and_errors():
    model = build(small_cfg(), descriptions=False)
    model.train()
    with pytest.raises(RuntimeError, match='set_agent_state'):
        model(torch.randn(3, 1, 2, 16, 25, 3), torch.tensor([0, 1, 2]), mode='loss')
    with pytest.raises(ValueError, match=r'\(60, 25, 25\)'):
        model.set_agent_state(None, np.zeros((60, 17, 17)))
    with pytest.raises(ValueError, match='60 class descriptions'):
        model.set_agent_state(['a', 'b'], None)
    masks = np.random.default_rng(1).random((60, 25, 25)).astype(np.float32)
    model.set_agent_state(None, masks)
    np.testing.assert_allclose(model.backbone.examplar.detach().numpy(), masks)
    cfg = small_cfg()
    cfg['text_encoder']['dim'] = 16
    with pytest.raises(ValueError, match='text_dim'):
        build(cfg).init_text_encoder()


def test_state_dict_roundtrip_and_official_checkpoint_keys(tmp_path):
    model = build(small_cfg())
    model.init_text_encoder()
    model.set_agent_state(None, np.random.default_rng(2).random((60, 25, 25)).astype(np.float32))
    model.train()
    model(torch.randn(4, 1, 2, 16, 25, 3), torch.tensor([0, 1, 2, 3]), mode='loss')  # moves BN stats
    model.eval()
    path = tmp_path / 'ckpt.pth'
    torch.save(model.state_dict(), path)
    state = torch.load(path, weights_only=True)
    assert not any(k.startswith('text_encoder') for k in state)

    fresh = build(small_cfg(), descriptions=False)
    fresh.init_text_encoder()                    # its keys are absent from the checkpoint: fine
    fresh.load_state_dict(state, strict=True)
    fresh.eval()
    x = torch.randn(2, 2, 2, 16, 25, 3)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x, mode='tensor'), model(x, mode='tensor'))
    # an official checkpoint also carries the CLIP text tower inside the backbone
    official = dict(state)
    official['backbone.model_text_dict.ViT-B/32.model.token_embedding.weight'] = torch.zeros(3, 4)
    build(small_cfg(), descriptions=False).load_state_dict(official, strict=True)


def test_forward_argument_handling():
    model = build(small_cfg())
    with pytest.raises(ValueError, match='mode'):
        model(torch.randn(1, 1, 2, 16, 25, 3), mode='bogus')
    with pytest.raises(ValueError, match='N×1×M×T×V×C'):
        model(torch.randn(2, 2, 2, 16, 25, 3), torch.tensor([0, 1]), mode='loss')
    with pytest.raises(ValueError, match='joints'):
        model.backbone(torch.randn(1, 2, 16, 17, 3))
    model.eval()
    with torch.no_grad():
        preds = model([torch.randn(1, 2, 16, 25, 3)] * 2, [4, 5], mode='predict')
    assert [p['gt_label'] for p in preds] == [4, 5]
