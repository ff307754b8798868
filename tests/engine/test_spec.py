"""A config becomes a run in one pass: the RunSpec is resolved once, read-only, and what it
holds is not worked out again by the checks, the Runner or the agent's hook."""
import dataclasses
from pathlib import Path

import pytest

from skeletonagent.engine.config import RunOptions, load_config
from skeletonagent.engine.spec import resolve_run

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / 'configs' / 'demo' / 'j.py'


def test_the_spec_is_read_only(tmp_path):
    spec = resolve_run(load_config(DEMO, {'work_dir': str(tmp_path)}), RunOptions(validate=True))
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.mode = 'test'
    with pytest.raises(TypeError):
        spec.runner_kwargs['work_dir'] = 'elsewhere'
    copy = spec.new_runner_kwargs()
    copy['train_dataloader']['batch_size'] = 1
    assert spec.runner_kwargs['train_dataloader']['batch_size'] == 32
    assert [h['type'] for h in copy['custom_hooks']][-1] == 'AgentHook'
    assert 'AgentHook' not in [h['type'] for h in spec.runner_kwargs['custom_hooks']]


def test_what_the_spec_holds(tmp_path):
    spec = resolve_run(load_config(DEMO, {'work_dir': str(tmp_path)}),
                       RunOptions(validate=True), 'train', ['train', 'val', 'test'])
    assert spec.legacy and spec.splits == ('train', 'val', 'test')
    assert [(d.split, d.path) for d in spec.datasets] == [
        ('train', 'data.train'), ('val', 'data.val'), ('test', 'data.test')]
    assert spec.num_classes == 12 and len(spec.class_names.names) == 12
    assert spec.class_names.source == 'agent.label_map' and spec.layout == 'nturgb+d'
    assert spec.work_dir == str(tmp_path) and spec.options.launcher == 'none'
    assert spec.plugin('agent').settings['label_map'] == 'demo'
    assert not spec.plugin('agent').is_resolved
    test = resolve_run(load_config(DEMO, {'work_dir': str(tmp_path)}), RunOptions(), 'test')
    assert test.plugins == () and test.work_dir == str(tmp_path / 'test')


def test_checks_runner_and_hook_resolve_the_agent_sources_once(tmp_path, monkeypatch):
    """The agent's texts, masks and prompts are resolved by the checks before the run and
    handed to the hook; neither build_runner nor the hook resolves them again."""
    from skeletonagent.agent import initial, plugin
    from skeletonagent.datasets.synthetic import ensure_demo_data
    from skeletonagent.engine.preflight import preflight
    from skeletonagent.engine.runner import build_runner
    ensure_demo_data(ROOT / 'data' / 'demo' / 'demo_3danno.pkl')
    calls = []
    real = plugin.resolve_sources

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)
    monkeypatch.setattr(plugin, 'resolve_sources', counted)
    monkeypatch.setattr(initial, 'resolve_sources', counted)
    spec = preflight(resolve_run(load_config(DEMO, {'work_dir': str(tmp_path)}), RunOptions()))
    assert len(calls) == 1 and spec.plugin('agent').is_resolved
    runner = build_runner(spec)
    (hook,) = [h for h in runner.hooks if type(h).__name__ == 'AgentHook']
    assert hook._sources is spec.plugin('agent').resolved
    agent = initial.build_initial_agent(hook._settings, 12, 'nturgb+d', 'j', tmp_path,
                                        sources=hook._sources)
    assert agent.sources is spec.plugin('agent').resolved
    assert len(calls) == 1
