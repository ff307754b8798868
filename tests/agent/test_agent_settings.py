"""The agent section of a config: every key known, typos named with the nearest keys."""
from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from skeletonagent.agent.hook import AgentHook
from skeletonagent.agent.settings import AGENT_KEYS
from skeletonagent.engine import load_config
from skeletonagent.engine.config import ConfigError
from skeletonagent.engine.config_keys import check_config

ROOT = Path(__file__).resolve().parents[2]


def test_every_hook_argument_is_a_known_agent_key():
    # ``sources`` is no config key: the agent plugin passes what the run's checks resolved
    arguments = set(inspect.signature(AgentHook.__init__).parameters) - {'self', 'agent_cfg',
                                                                          'sources'}
    assert arguments <= set(AGENT_KEYS)
    assert 'sources' not in AGENT_KEYS


def test_agent_key_typo_is_named_with_the_nearest_key():
    cfg = load_config(ROOT / 'configs/demo/j.py', {'agent.trancripts': 'x'})
    with pytest.raises(ConfigError, match=r'unknown config key agent\.trancripts; did you mean '
                                          r'transcripts\?'):
        check_config(cfg)
    check_config(load_config(ROOT / 'configs/ntu60_xsub/j.py'))     # the paper config is clean
