"""Ablations as switches (``configs/ablation/``): each config differs from the paper config
in its component only; a zero loss weight turns its branch off in the model; ``agent=None``
trains without the agent; the start block says what is off."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT, data_options, tool_env

from skeletonagent.agent.settings import agent_settings
from skeletonagent.engine.config import load_config
from skeletonagent.engine.config_keys import check_config

PAPER = 'configs/ntu60_xsub/j.py'
#: ablation config -> (its base, the keys it changes besides work_dir, cls_head.work_dir and
#: the 'ablation' note)
ABLATIONS = {
    'no_agent': (PAPER, {'model.cls_head.weight_1': 0, 'model.cls_head.weight_2': 0,
                         'agent': None}),
    'descriptions_only': (PAPER, {'model.cls_head.weight_1': 0}),
    'masks_only': (PAPER, {'model.cls_head.weight_2': 0, 'model.cls_head.interval_epoch': 0,
                           'agent.interval': 0}),
    'no_rounds': (PAPER, {'model.cls_head.interval_epoch': 0, 'agent.interval': 0}),
    'other_llm': (PAPER, {'model.backbone.llm_model': 'deepseek-chat', 'agent.transcripts': None,
                          'agent.masks': None, 'agent.llm.model': 'deepseek-chat',
                          'agent.llm.base_url': 'https://api.deepseek.com',
                          'agent.llm.api_key_env': 'DEEPSEEK_API_KEY'}),
    'demo_hard_no_agent': ('configs/demo/hard_j.py', {'model.cls_head.weight_1': 0,
                                                      'model.cls_head.weight_2': 0,
                                                      'agent': None}),
}


def _flat(d: dict, prefix: str = '') -> dict:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f'{prefix}{key}.'))
        else:
            out[f'{prefix}{key}'] = value
    return out


@pytest.mark.parametrize('name', sorted(ABLATIONS))
def test_ablation_config_changes_only_its_component(name):
    base_file, changes = ABLATIONS[name]
    cfg = load_config(ROOT / 'configs' / 'ablation' / f'{name}.py')
    check_config(cfg)                                        # every key known
    base, mine = _flat(load_config(ROOT / base_file).to_dict()), _flat(cfg.to_dict())
    work_dir = f'./work_dirs/ablation/{name}'
    expected = dict(changes, work_dir=work_dir, ablation=cfg.ablation)
    expected['model.cls_head.work_dir'] = work_dir
    if expected.get('agent', 0) is None:                     # the whole agent section goes
        base = {k: v for k, v in base.items() if not k.startswith('agent.')}
    differing = {k for k in set(base) | set(mine) if base.get(k, '-') != mine.get(k, '-')}
    assert differing == set(expected)
    assert all(mine[k] == v for k, v in expected.items())
    assert isinstance(cfg.ablation, str) and len(cfg.ablation) > 20
    text = (ROOT / 'docs' / 'ablation.md').read_text(encoding='utf-8')
    assert f'configs/ablation/{name}.py' in text


def test_agent_none_needs_zero_weights():
    cfg = load_config(ROOT / 'configs' / 'ablation' / 'no_agent.py',
                      {'model.cls_head.weight_2': 0.5})
    with pytest.raises(ValueError, match=r'^agent=None trains without the agent, but '
                                         r'model\.cls_head\.weight_2=0\.5 asks for its joint '
                                         r'masks / texts: set them to 0 too$'):
        agent_settings(cfg)
    assert agent_settings(load_config(ROOT / 'configs' / 'ablation' / 'no_agent.py')) is None


def _demo_model(weight_1: float, weight_2: float):
    from skeletonagent.models import RecognizerGCN  # noqa: F401 - registers the classes
    from skeletonagent.registry import MODELS
    cfg = load_config(ROOT / 'configs' / 'demo' / 'j.py', {'model.cls_head.weight_1': weight_1,
                                                           'model.cls_head.weight_2': weight_2})
    return MODELS.build(cfg.model)


@pytest.mark.parametrize('weight_1,weight_2,terms,frozen', [
    (0, 0, {'loss_cls', 'loss_mix'}, {'direct_fc', 'linear_head', 'logit_scale'}),
    (0, 0.5, {'loss_cls', 'loss_mix', 'loss_align'}, {'direct_fc'}),
    (0.2, 0, {'loss_cls', 'loss_mix', 'loss_constraint'}, {'linear_head', 'logit_scale'}),
])
def test_zero_weight_turns_its_branch_off(weight_1, weight_2, terms, frozen):
    torch.manual_seed(0)
    model = _demo_model(weight_1, weight_2)
    assert model.uses_masks == bool(weight_1) and model.uses_texts == bool(weight_2)
    encoder = model.init_text_encoder()
    assert (encoder is None) == (weight_2 == 0)
    model.set_agent_state(['a person moves'] * 12, None)
    keypoint = torch.randn(4, 1, 2, 16, 25, 3)        # N x clips x M x T x V x C
    losses = model(keypoint, torch.tensor([0, 1, 2, 3]), mode='loss')
    assert {k for k in losses if k.startswith('loss')} == terms
    loss, _ = model.parse_losses(losses)
    loss.backward()
    for name, param in model.backbone.named_parameters():
        part = name.split('.')[0]
        if part in frozen:
            assert not param.requires_grad and param.grad is None, name
    assert all(p.grad is not None for p in model.backbone.gcn.parameters() if p.requires_grad)
    text = model.loss_terms()
    assert ('OFF' in text) == (not weight_1 or not weight_2)
    assert ('joint constraint (weight_1=0' in text) == (weight_1 == 0)


def test_no_agent_run_says_what_is_off(demo_data, tmp_path):
    """One epoch of the hard demo's no-agent ablation on tiny data: no text encoder, no agent
    folder, and the start block (run_info.json) names the seed, the loss terms and what is
    off."""
    work_dir = tmp_path / 'run'
    config = ROOT / 'configs' / 'ablation' / 'demo_hard_no_agent.py'
    opts = [f'work_dir={work_dir}', 'total_epochs=1', 'data.workers_per_gpu=0',
            *data_options(demo_data)]
    proc = subprocess.run([sys.executable, 'tools/train.py', str(config), '--seed', '3',
                           '--cfg-options', *opts], cwd=ROOT, env=tool_env(),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = json.loads((work_dir / 'run_info.json').read_text())['lines']
    assert lines['seed'] == '3'
    assert lines['ablation'].startswith('no agent: cross-entropy + mixup only')
    assert lines['losses'] == ('cross-entropy + mixup; OFF: joint constraint (weight_1=0: masks '
                               'unused), text alignment (weight_2=0: no text encoder)')
    assert lines['agent'] == 'OFF: no texts, masks or LLM rounds (agent=None)'
    assert 'text encoder' not in lines and 'agent texts' not in lines
    assert not (work_dir / 'agent').exists()
    assert 'loss_align' not in proc.stdout and 'loss_cls' in proc.stdout
    assert Path(work_dir / 'epoch_1.pth').is_file()
