"""PYSKL's ST-GCN++ baseline (``STGCN`` + ``GCNHead``) and loading checkpoints for test.

The expected state_dict is written out here from PYSKL's structure (``STGCN``, ``STGCNBlock``,
``unit_gcn``, ``mstcn``, ``unit_tcn``, ``GCNHead``), independently of our implementation, so a
PYSKL checkpoint loads with no renaming. Checkpoints go through ``tools/test.py``'s ``main``
(in this process; ``tests/tools/test_e2e_tools.py`` runs the scripts themselves).
"""
from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from skeletonagent.agent.settings import agent_settings
from skeletonagent.engine import RunOptions, load_config
from skeletonagent.engine.checkpoint import CheckpointMismatchError, load_model_weights
from skeletonagent.engine.translate import to_runner_kwargs
from skeletonagent.models.gcn.pyskl_units import GraphConv, MultiScaleTCN
from skeletonagent.registry import MODELS

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / 'configs' / 'stgcn++' / 'ntu60_xsub'
MS_CFG = [(3, 1), (3, 2), (3, 3), (3, 4), ('max', 3), '1x1']

#: PYSKL's light ST-GCN++ gesture model (demo/stgcnpp_gesture.py: HaGRID, 40 classes, handmp)
GESTURE_MODEL = dict(
    type='RecognizerGCN',
    backbone=dict(type='STGCN', in_channels=2, gcn_adaptive='init', gcn_with_res=True,
                  tcn_type='mstcn', num_stages=6, down_stages=[6], inflate_stages=[6],
                  graph_cfg=dict(layout='handmp', mode='spatial')),
    cls_head=dict(type='GCNHead', num_classes=40, in_channels=128))


pytestmark = pytest.mark.usefixtures('single_thread')


def stgcnpp_model_cfg(stream: str = 'j') -> dict:
    return load_config(CONFIGS / f'{stream}.py').model.to_dict()


# -- PYSKL's state_dict, written out from its structure ------------------------------------------
def pyskl_state_shapes(in_channels=3, base=64, num_stages=10, inflate=(5, 8), down=(5, 8), V=25, K=3,
                       num_classes=60, data_bn='VC', num_person=2, adaptive='init', with_res=True,
                       tcn='mstcn') -> dict[str, tuple]:
    shapes: dict[str, tuple] = {}

    def bn(prefix, c):
        for name in ('weight', 'bias', 'running_mean', 'running_var'):
            shapes[f'{prefix}.{name}'] = (c,)
        shapes[f'{prefix}.num_batches_tracked'] = ()

    def conv(prefix, cout, cin, kt=1):
        shapes[f'{prefix}.weight'] = (cout, cin, kt, 1)
        shapes[f'{prefix}.bias'] = (cout,)

    bn('backbone.data_bn', (num_person if data_bn == 'MVC' else 1) * in_channels * V)
    plan = [(in_channels, base, 1, False)] if in_channels != base else []
    channels, inflated = base, 0
    for stage in range(2, num_stages + 1):
        inflated += stage in inflate
        out = int(base * 2 ** inflated + 1e-4)
        plan.append((channels, out, 2 if stage in down else 1, True))
        channels = out
    for b, (cin, cout, stride, residual) in enumerate(plan):
        p = f'backbone.gcn.{b}'
        shapes[f'{p}.gcn.A'] = (K, V, V)
        if adaptive in ('offset', 'importance'):
            shapes[f'{p}.gcn.PA'] = (K, V, V)
        conv(f'{p}.gcn.conv', cout * K, cin)
        bn(f'{p}.gcn.bn', cout)
        if with_res and cin != cout:
            conv(f'{p}.gcn.down.0', cout, cin)
            bn(f'{p}.gcn.down.1', cout)
        if tcn == 'mstcn':
            mid = cout // 6
            first = cout - 5 * mid
            for j, branch in enumerate(MS_CFG):
                ch, q = (first if j == 0 else mid), f'{p}.tcn.branches.{j}'
                if branch == '1x1':
                    conv(q, ch, cout)
                    continue
                conv(f'{q}.0', ch, cout)
                bn(f'{q}.1', ch)
                if branch[0] != 'max':
                    conv(f'{q}.3.conv', ch, ch, branch[0])
            bn(f'{p}.tcn.transform.0', cout)
            conv(f'{p}.tcn.transform.2', cout, cout)
            bn(f'{p}.tcn.bn', cout)
        else:
            conv(f'{p}.tcn.conv', cout, cout, 9)
            bn(f'{p}.tcn.bn', cout)
        if residual and (cin != cout or stride != 1):
            conv(f'{p}.residual.conv', cout, cin)
            bn(f'{p}.residual.bn', cout)
    shapes['cls_head.fc_cls.weight'] = (num_classes, channels)
    shapes['cls_head.fc_cls.bias'] = (num_classes,)
    return shapes


def n_params(shapes: dict[str, tuple], adaptive='init') -> int:
    buffers = ('running_mean', 'running_var', 'num_batches_tracked')
    total = 0
    for key, shape in shapes.items():
        if key.endswith(buffers) or (key.endswith('gcn.A') and adaptive != 'init'):
            continue
        total += int(np.prod(shape))
    return total


def _shapes(model) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


# -- structure -----------------------------------------------------------------------------------
@pytest.mark.parametrize('stream', ['j', 'b'])
def test_stgcnpp_state_dict_is_pyskls(stream):
    model = MODELS.build(stgcnpp_model_cfg(stream))
    got = _shapes(model)
    expected = pyskl_state_shapes()
    assert set(got) - set(expected) == set(), 'keys PYSKL does not have'
    assert set(expected) - set(got) == set(), 'PYSKL keys we lack'
    assert got == expected
    spot = {   # literal, from reading PYSKL
        'backbone.data_bn.weight': (75,), 'backbone.gcn.0.gcn.A': (3, 25, 25),
        'backbone.gcn.0.gcn.conv.weight': (192, 3, 1, 1), 'backbone.gcn.0.gcn.down.0.weight': (64, 3, 1, 1),
        'backbone.gcn.0.tcn.branches.0.0.weight': (14, 64, 1, 1),
        'backbone.gcn.0.tcn.branches.0.3.conv.weight': (14, 14, 3, 1),
        'backbone.gcn.0.tcn.branches.4.1.running_var': (10,), 'backbone.gcn.0.tcn.branches.5.weight': (10, 64, 1, 1),
        'backbone.gcn.0.tcn.transform.2.weight': (64, 64, 1, 1),
        'backbone.gcn.4.residual.conv.weight': (128, 64, 1, 1), 'backbone.gcn.4.gcn.down.1.weight': (128,),
        'backbone.gcn.9.tcn.bn.num_batches_tracked': (), 'cls_head.fc_cls.weight': (60, 256),
    }
    assert {k: got[k] for k in spot} == spot
    assert 'backbone.gcn.0.residual.conv.weight' not in got     # first block: no residual
    assert 'backbone.gcn.1.gcn.down.0.weight' not in got        # 64 → 64: identity residual
    assert len(model.backbone.gcn) == 10 and model.backbone.out_channels == 256
    assert isinstance(model.backbone.gcn[0].gcn.A, torch.nn.Parameter)   # 'init': A is learned


def test_stgcnpp_parameter_count():
    model = MODELS.build(stgcnpp_model_cfg())
    backbone = sum(p.numel() for p in model.backbone.parameters())
    total = sum(p.numel() for p in model.parameters())
    # PYSKL's ST-GCN++ NTU-60: 1.39M in the backbone, + 256·60 + 60 in the head
    assert backbone == 1_387_724 and round(backbone / 1e6, 2) == 1.39
    assert total == 1_387_724 + 15_420 == n_params(pyskl_state_shapes())


@pytest.mark.parametrize('kwargs,extra', [
    (dict(), dict(adaptive='importance', with_res=False, tcn='unit_tcn')),          # ST-GCN defaults
    (dict(gcn_adaptive='offset', tcn_type='mstcn'), dict(adaptive='offset', with_res=False)),
    (dict(gcn_adaptive='init', gcn_with_res=True, tcn_type='mstcn', data_bn_type='MVC'),
     dict(data_bn='MVC')),
])
def test_other_pyskl_variants_keys(kwargs, extra):
    cfg = dict(type='STGCN', graph_cfg=dict(layout='nturgb+d', mode='spatial'), **kwargs)
    backbone = MODELS.build(cfg)
    got = {'backbone.' + k: tuple(v.shape) for k, v in backbone.state_dict().items()}
    expected = {k: v for k, v in pyskl_state_shapes(**extra).items() if not k.startswith('cls_head')}
    assert got == expected
    adaptive = extra.get('adaptive', 'init')
    assert sum(p.numel() for p in backbone.parameters()) == n_params(expected, adaptive)
    if adaptive == 'importance':
        assert 'A' in dict(backbone.gcn[0].gcn.named_buffers()) and backbone.gcn[0].gcn.PA.eq(1).all()
    if extra.get('data_bn') == 'MVC':
        assert got['backbone.data_bn.weight'] == (150,)


def test_block_argument_routing_and_errors():
    cfg = dict(type='STGCN', graph_cfg=dict(layout='nturgb+d', mode='spatial'), gcn_adaptive='init',
               tcn_type='mstcn', tcn_dropout=0.3, tcn_ms_cfg=[(5, 1), ('max', 3), '1x1'],
               gcn_with_res=(False,) * 9 + (True,))
    bb = MODELS.build(cfg)
    assert bb.gcn[0].tcn.drop.p == 0 and bb.gcn[1].tcn.drop.p == 0.3     # none on the first stage
    assert len(bb.gcn[0].tcn.branches) == 3 and bb.gcn[0].tcn.branches[0][3].conv.kernel_size == (5, 1)
    assert [blk.gcn.with_res for blk in bb.gcn] == [False] * 9 + [True]  # per-stage tuple
    with pytest.raises(TypeError, match='unexpected keyword'):
        MODELS.build(dict(type='STGCN', graph_cfg=dict(layout='nturgb+d'), bogus=1))
    with pytest.raises(ValueError, match='tcn_type'):
        MODELS.build(dict(type='STGCN', graph_cfg=dict(layout='nturgb+d'), tcn_type='tcn'))
    with pytest.raises(ValueError, match='adaptive'):
        MODELS.build(dict(type='STGCN', graph_cfg=dict(layout='nturgb+d'), gcn_adaptive='yes'))
    with pytest.raises(ValueError, match='joints'):
        bb(torch.randn(1, 2, 8, 17, 3))
    bad = dict(type='RecognizerGCN', backbone=dict(type='STGCN', graph_cfg=dict(layout='nturgb+d')),
               cls_head=dict(type='GCNHead', num_classes=60, in_channels=128))
    with pytest.raises(ValueError, match='256 channels'):
        MODELS.build(bad)


# -- numerics ------------------------------------------------------------------------------------
def reference_unit_gcn(m: GraphConv, x):
    """PYSKL's unit_gcn.forward, restated."""
    n, _, t, v = x.shape
    res = (m.down(x) if m.down is not None else x) if m.with_res else 0
    A = {None: m.A, 'init': m.A}
    if hasattr(m, 'PA'):
        A.update(offset=m.A + m.PA, importance=m.A * m.PA)
    A = A[m.adaptive]
    if m.conv_pos == 'pre':
        y = torch.einsum('nkctv,kvw->nctw', m.conv(x).view(n, m.num_subsets, -1, t, v), A)
    else:
        y = m.conv(torch.einsum('nctv,kvw->nkctw', x, A).reshape(n, -1, t, v))
    return m.act(m.bn(y) + res)


def reference_mstcn(m: MultiScaleTCN, x):
    return m.drop(m.bn(m.transform(torch.cat([b(x) for b in m.branches], 1))))


@pytest.mark.parametrize('adaptive,conv_pos,with_res,cin', [
    ('init', 'pre', True, 3), ('importance', 'pre', False, 16), ('offset', 'post', True, 16), (None, 'post', True, 8)])
def test_units_compute_pyskl_functions(adaptive, conv_pos, with_res, cin):
    torch.manual_seed(0)
    A = torch.rand(3, 25, 25)
    unit = GraphConv(cin, 16, A, adaptive=adaptive, conv_pos=conv_pos, with_res=with_res).eval()
    if hasattr(unit, 'PA'):
        with torch.no_grad():
            unit.PA.normal_()
    x = torch.randn(2, cin, 6, 25)
    torch.testing.assert_close(unit(x), reference_unit_gcn(unit, x))
    tcn = MultiScaleTCN(16, 16, stride=2).eval()
    y = torch.randn(2, 16, 8, 25)
    out = tcn(y)
    assert out.shape == (2, 16, 4, 25)
    torch.testing.assert_close(out, reference_mstcn(tcn, y))


def test_backbone_forward_matches_pyskl_layout():
    """Data BN over V·C per person (VC), then the blocks on (N·M)×C×T×V (PYSKL's forward)."""
    torch.manual_seed(1)
    bb = MODELS.build(stgcnpp_model_cfg()['backbone']).eval()
    with torch.no_grad():
        bb.data_bn.running_mean.normal_()
        bb.data_bn.running_var.uniform_(.5, 2)
    x = torch.randn(2, 2, 16, 25, 3)
    with torch.no_grad():
        feat = bb(x)
        n, m, t, v, c = x.shape
        ref = bb.data_bn(x.permute(0, 1, 3, 4, 2).reshape(n * m, v * c, t))
        ref = ref.view(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)
        for block in bb.gcn:
            ref = block(ref)
    assert feat.shape == (2, 2, 256, 4, 25)
    torch.testing.assert_close(feat, ref.reshape(feat.shape))


# -- recognizer: CE training and prediction ------------------------------------------------------
def test_ce_training_step_and_prediction():
    torch.manual_seed(0)
    model = MODELS.build(stgcnpp_model_cfg())
    assert not model.with_agent and model.init_text_encoder() is None and model.text_encoder is None
    with pytest.raises(RuntimeError, match='no agent'):
        model.set_agent_state(['x'] * 60, None)
    keypoint, label = torch.randn(4, 1, 2, 16, 25, 3), torch.tensor([0, 5, 59, 5])
    model.train()
    losses = model(keypoint, label, mode='loss')
    assert set(losses) == {'loss_cls', 'top1_acc', 'top5_acc', 'predictions'}
    with torch.no_grad():   # the loss is the plain CE of the head on the backbone (no mixup)
        expected = F.cross_entropy(model.cls_head(model.backbone(keypoint[:, 0])), label)
    torch.testing.assert_close(losses['loss_cls'], expected, rtol=1e-3, atol=1e-4)
    before = model.backbone.gcn[0].gcn.A.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    opt.zero_grad()
    losses['loss_cls'].backward()
    assert model.backbone.gcn[0].gcn.A.grad is not None and model.cls_head.fc_cls.weight.grad is not None
    opt.step()
    assert not torch.equal(before, model.backbone.gcn[0].gcn.A)
    # the step's clean predictions reach the hooks through parse_losses, not as a logged item
    _, log_vars = model.parse_losses(losses)
    assert 'predictions' not in log_vars and set(log_vars) == {'loss', 'loss_cls', 'top1_acc', 'top5_acc'}
    assert log_vars.predictions.logits.shape == (4, 60) and not log_vars.predictions.logits.requires_grad
    assert log_vars.predictions.labels.tolist() == label.tolist()
    model.eval()
    with torch.no_grad():
        preds = model(torch.randn(2, 3, 2, 16, 25, 3), torch.tensor([1, 2]), mode='predict')
        scores = model(torch.randn(2, 3, 2, 16, 25, 3), mode='tensor')
    assert [p['gt_label'] for p in preds] == [1, 2] and preds[0]['pred_score'].shape == (60,)
    torch.testing.assert_close(preds[0]['pred_score'].sum(), torch.tensor(1.0))
    assert scores.shape == (2, 60)
    assert not any('text' in k for k in model.state_dict())


def test_pyskl_gesture_model_on_handmp():
    model = MODELS.build(GESTURE_MODEL)
    got = _shapes(model)
    expected = pyskl_state_shapes(in_channels=2, num_stages=6, inflate=(6,), down=(6,), V=21,
                                  num_classes=40)
    assert got == expected
    assert got['backbone.data_bn.weight'] == (42,) and got['cls_head.fc_cls.weight'] == (40, 128)
    assert len(model.backbone.gcn) == 6
    assert sum(p.numel() for p in model.parameters()) == n_params(expected) == 197_478
    model.train()
    losses = model(torch.randn(3, 1, 1, 10, 21, 2), torch.tensor([0, 39, 7]), mode='loss')
    losses['loss_cls'].backward()
    model.eval()
    with torch.no_grad():
        feat = model.backbone(torch.randn(2, 1, 10, 21, 2))
        scores = model(torch.randn(2, 1, 1, 10, 21, 2), mode='tensor')
    assert feat.shape == (2, 1, 128, 5, 21) and scores.shape == (2, 40)


# -- configs -------------------------------------------------------------------------------------
@pytest.mark.parametrize('stream', ['j', 'b'])
def test_baseline_configs(stream):
    cfg = load_config(CONFIGS / f'{stream}.py')
    assert agent_settings(cfg) is None          # no AgentHook, no text encoder
    kw = to_runner_kwargs(cfg, RunOptions(), 'train')
    assert not any(h['type'] == 'AgentHook' for h in kw['custom_hooks'])
    assert kw['optim_wrapper']['optimizer'] == dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=0.0005,
                                                    nesterov=True)
    assert kw['train_cfg']['max_epochs'] == 16 and kw['train_dataloader']['batch_size'] == 16
    train = cfg.data.train
    assert train.type == 'RepeatDataset' and train.times == 5              # 16 × 5 = 80 epochs
    assert train.dataset.ann_file == 'data/nturgbd/ntu60_3danno.pkl' and train.dataset.split == 'xsub_train'
    assert cfg.data.test.split == 'xsub_val'
    feats = [t for t in train.dataset.pipeline if t['type'] == 'GenSkeFeat'][0]['feats']
    assert feats == [stream]
    assert cfg.model.backbone.gcn_adaptive == 'init' and cfg.model.backbone.tcn_type == 'mstcn'


# -- checkpoints through tools/test.py's loading path ----------------------------------------------
@pytest.fixture(scope='module')
def demo_data(tmp_path_factory):
    from skeletonagent.datasets.synthetic import ensure_demo_data
    path = tmp_path_factory.mktemp('stgcn_demo') / 'demo.pkl'
    return ensure_demo_data(path, num_train_per_class=1, num_val_per_class=1, num_test_per_class=1)


def _demo_options(data: Path, work_dir: Path) -> dict:
    """The ST-GCN++ j config on the 12-class demo test split, 2 clips of 16 frames."""
    return {'work_dir': str(work_dir), 'model.cls_head.num_classes': 12, 'data.test.ann_file': str(data),
            'data.test.split': 'test', 'data.workers_per_gpu': 0,
            'data.test.pipeline.2.clip_len': 16, 'data.test.pipeline.2.num_clips': 2}


def tools_test_main(argv: list[str]) -> None:
    """``tools/test.py``'s ``main`` (the command line, run in this process)."""
    spec = importlib.util.spec_from_file_location('_tools_test', ROOT / 'tools' / 'test.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main([*argv, '--debug'])   # errors as raised, not as the one-line exit


def _pyskl_checkpoint(model, path: Path) -> Path:
    """A checkpoint as PYSKL (mmcv) writes it: meta, state_dict and optimizer."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    meta = dict(mmcv_version='1.5.0', time='Fri Jun 10 12:00:00 2022', epoch=16, iter=12345,
                hook_msgs=dict(last_ckpt='work_dirs/x/epoch_16.pth'))
    torch.save(dict(meta=meta, state_dict=model.state_dict(), optimizer=opt.state_dict()), path)
    return path


def _trained_like(model):
    """Weights and BN statistics unlike a fresh build, so a failed load would show."""
    torch.manual_seed(3)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand_like(t) * .5 + .75 if name.endswith('running_var') else
                        t + .05 * torch.randn_like(t))
    return model.eval()


def test_pyskl_checkpoint_through_tools_test(demo_data, tmp_path):
    options = _demo_options(demo_data, tmp_path / 'work')
    cfg = load_config(CONFIGS / 'j.py', options)
    model = _trained_like(MODELS.build(cfg.model))
    ckpt = _pyskl_checkpoint(model, tmp_path / 'stgcn++_j.pth')
    out = tmp_path / 'result.pkl'
    tools_test_main([str(CONFIGS / 'j.py'), str(ckpt), '--out', str(out),
                     '--cfg-options', *[f'{k}={v}' for k, v in options.items()]])
    dumped = np.stack(pickle.loads(out.read_bytes()))
    # the same scores as the saved model gives on the same clips: the weights were loaded
    from skeletonagent.datasets import PoseDataset
    ds = PoseDataset(**{k: v for k, v in cfg.data.test.items() if k != 'type'}, test_mode=True)
    with torch.no_grad():
        ours = model(torch.stack([ds[i]['keypoint'] for i in range(len(ds))]), mode='tensor').numpy()
    assert dumped.shape == (12, 12)
    np.testing.assert_allclose(dumped, ours, rtol=1e-4, atol=1e-5)


def test_mismatched_checkpoint_names_missing_and_unexpected_keys(demo_data, tmp_path):
    cfg = load_config(CONFIGS / 'j.py', _demo_options(demo_data, tmp_path / 'work'))
    state = MODELS.build(cfg.model).state_dict()
    state['backbone.gcn.3.tcn.bn.gamma'] = state.pop('backbone.gcn.3.tcn.bn.weight')
    path = tmp_path / 'renamed.pth'
    torch.save(dict(meta=dict(epoch=1), state_dict=state), path)
    with pytest.raises(CheckpointMismatchError) as info:
        tools_test_main([str(CONFIGS / 'j.py'), str(path), '--cfg-options',
                         *[f'{k}={v}' for k, v in _demo_options(demo_data, tmp_path / 'work').items()]])
    msg = str(info.value)
    assert 'missing keys' in msg and 'unexpected keys' in msg and str(path) in msg
    assert 'backbone.gcn.3.tcn.bn.weight' in msg and 'backbone.gcn.3.tcn.bn.gamma' in msg
    assert info.value.missing_keys == ['backbone.gcn.3.tcn.bn.weight']
    assert info.value.unexpected_keys == ['backbone.gcn.3.tcn.bn.gamma']
    # a checkpoint of another backbone family lists what it lacks
    other = MODELS.build(GESTURE_MODEL)
    with pytest.raises(CheckpointMismatchError, match='size mismatch') as info:
        load_model_weights(other, dict(state_dict=MODELS.build(cfg.model).state_dict()), name='ntu.pth')
    assert 'ntu.pth' in str(info.value)
    with pytest.raises(CheckpointMismatchError, match='cls_head.fc_cls.bias'):
        load_model_weights(other, dict(state_dict={k: v for k, v in other.state_dict().items()
                                                   if k != 'cls_head.fc_cls.bias'}))


def test_official_skeletonagent_checkpoint_loads_into_our_model(demo_data, tmp_path):
    """An official checkpoint: GCN_Module_LLM + SimpleHead, with the CLIP text tower stored
    inside the backbone (``backbone.model_text_dict.*``) and no separate text encoder."""
    from skeletonagent.engine.runner import test as run_test_tool
    options = {'work_dir': str(tmp_path / 'work'), 'data.test.ann_file': str(demo_data),
               'data.workers_per_gpu': 0, 'data.test.pipeline.2.num_clips': 1,
               'data.test.demo_cfg': dict(num_train_per_class=1, num_val_per_class=1, num_test_per_class=1)}
    cfg = load_config(ROOT / 'configs' / 'demo' / 'j.py', options)
    model = _trained_like(MODELS.build(cfg.model))
    with torch.no_grad():
        model.backbone.examplar.copy_(torch.rand_like(model.backbone.examplar))
    state = dict(model.state_dict())
    state['backbone.model_text_dict.ViT-B/32.positional_embedding'] = torch.zeros(77, 512)
    state['backbone.model_text_dict.ViT-B/32.token_embedding.weight'] = torch.zeros(49408, 8)
    state['backbone.model_text_dict.ViT-B/32.transformer.resblocks.0.attn.in_proj_weight'] = torch.zeros(4, 4)
    path = tmp_path / 'official_j.pth'
    torch.save(dict(meta=dict(epoch=150), state_dict=state), path)

    fresh = MODELS.build(cfg.model)
    load_model_weights(fresh, str(path))
    for key, value in model.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[key], value, msg=key)
    assert fresh.text_encoder is None
    metrics = run_test_tool(cfg, str(path), RunOptions(), str(tmp_path / 'pred.pkl'))
    assert 'acc/top1' in metrics and len(pickle.loads((tmp_path / 'pred.pkl').read_bytes())) == 12
