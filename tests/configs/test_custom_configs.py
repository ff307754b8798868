"""configs/custom: the number of classes comes from the user's label map, and the agent's
initial dialogue asks the configured LLM about the user's class names, on the config's layout
(COCO-17 bodies, MediaPipe hands). Offline by default, without a key; an OpenAI-compatible
backend is the local test server, never a real API. Needs no video extra."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import tool_env

ROOT = Path(__file__).resolve().parents[2]
BODY = ['wave both arms', 'kick with the left foot', 'bow']
HANDS = ['thumbs up', 'pinch with the index finger', 'open palm', 'fist']
CASES = [('j.py', 'data/custom/label_map.txt', BODY, 'coco', 17),
         ('hand_j.py', 'data/custom_hands/label_map.txt', HANDS, 'handmp', 21)]


def _settings(config: str, label_map: str, names: list[str], where: Path, monkeypatch):
    from skeletonagent.agent.settings import agent_settings
    from skeletonagent.engine.config import load_config
    (where / label_map).parent.mkdir(parents=True, exist_ok=True)
    (where / label_map).write_text(''.join(f'{n}\n' for n in names) + '\n')   # a blank line too
    monkeypatch.chdir(where)              # the configs read data/... relative to the run's folder
    cfg = load_config(str(ROOT / 'configs' / 'custom' / config))
    return cfg, agent_settings(cfg)


@pytest.mark.parametrize('config,label_map,names,layout,joints', CASES)
def test_classes_and_layout_come_from_the_label_map(tmp_path, monkeypatch, config, label_map, names,
                                                    layout, joints):
    cfg, settings = _settings(config, label_map, names, tmp_path, monkeypatch)
    assert cfg.model.backbone.num_classes == cfg.model.cls_head.num_classes == len(names)
    assert settings['label_map'] == label_map and settings['layout'] == layout
    assert settings['llm'] == {'type': 'Offline'} and settings['num_classes'] == len(names)
    # without the label map (before extract_poses ran) the config still loads, with 2 classes
    (tmp_path / label_map).unlink()
    from skeletonagent.engine.config import load_config
    assert load_config(str(ROOT / 'configs' / 'custom' / config)).model.backbone.num_classes == 2


@pytest.mark.parametrize('config,label_map,names,layout,joints', CASES)
def test_initial_dialogue_asks_the_llm_about_the_users_classes(tmp_path, monkeypatch, config, label_map,
                                                               names, layout, joints):
    from skeletonagent.agent.initial import build_initial_agent
    from skeletonagent.skeleton import get_layout
    from skeletonagent.testing import FakeLLMServer, asks_about
    _, settings = _settings(config, label_map, names, tmp_path, monkeypatch)
    with FakeLLMServer(layout=layout) as server:
        settings['llm'] = dict(type='OpenAIChat', model='fake-llm', base_url=server.base_url,
                               api_key_env=None)
        agent = build_initial_agent(settings, settings['num_classes'], settings['layout'],
                                    settings['modality'], tmp_path / 'work')
        bodies = list(server.requests)        # the parsed request bodies
    assert agent.class_names == names
    for name in names:                      # every class had its own dialogue, by its name
        assert sum(asks_about(name)(b) for b in bodies) >= 3, name
    # the joint question lists the config's layout, numbered from 1
    first_joint = get_layout(layout).joint_names[0]
    assert any(f'{joints} joints' in m['content'] and f'1-{first_joint}' in m['content']
               for b in bodies for m in b['messages'] if m['role'] == 'user')
    state = agent.state
    assert state.masks.shape == (len(names), joints, joints)
    assert len(state.descriptions) == len(names)
    for i, picked in enumerate(state.critical_joints):
        assert picked and all(0 <= j < joints for j in picked), (names[i], picked)
        rows_on = np.flatnonzero(state.masks[i].any(axis=1))      # joint stream: a critical
        assert rows_on.tolist() == sorted(picked)                    # joint's row is all ones
        assert np.all(state.masks[i][rows_on] == 1)
    files = sorted(p.name for p in (tmp_path / 'work' / 'agent' / 'transcripts').iterdir())
    assert len(files) == len(names) and files[0].startswith('001_')


def test_offline_without_a_key_names_the_joints_of_the_users_action(tmp_path, monkeypatch):
    """The default backend: no key, no network; 'kick with the left foot' gets the left leg."""
    from skeletonagent.agent.initial import build_initial_agent
    from skeletonagent.skeleton import get_layout
    monkeypatch.delenv('OPENAI_API_KEY', raising=False)
    _, settings = _settings('j.py', 'data/custom/label_map.txt', BODY, tmp_path, monkeypatch)
    agent = build_initial_agent(settings, 3, 'coco', 'j', tmp_path / 'work')
    names = get_layout('coco').joint_names
    kick = {names[j] for j in agent.state.critical_joints[BODY.index('kick with the left foot')]}
    assert {'left knee', 'left ankle'} <= kick and not any(n.startswith('right') for n in kick)
    assert 'kick with the left foot' in agent.state.descriptions[1].lower()


def test_describe_tool_with_a_custom_config(tmp_path):
    """tools/agent/describe.py --config configs/custom/j.py (README, "Your own actions")."""
    (tmp_path / 'data' / 'custom').mkdir(parents=True)
    (tmp_path / 'data' / 'custom' / 'label_map.txt').write_text(''.join(f'{n}\n' for n in BODY))
    env = {k: v for k, v in tool_env().items() if k != 'OPENAI_API_KEY'}
    proc = subprocess.run([sys.executable, str(ROOT / 'tools' / 'agent' / 'describe.py'), '--config',
                           str(ROOT / 'configs' / 'custom' / 'j.py'), '--out', 'transcripts'],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'describe: 3 classes with Offline' in proc.stdout
    assert sorted(os.listdir(tmp_path / 'transcripts')) == [
        '001_wave_both_arms.txt', '002_kick_with_the_left_foot.txt', '003_bow.txt']
    text = (tmp_path / 'transcripts' / '002_kick_with_the_left_foot.txt').read_text()
    assert "'kick with the left foot'" in text and 'A skeleton of 17 joints' in text
