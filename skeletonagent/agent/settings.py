"""The agent settings of a config: ``cfg.agent`` completed by what the model config implies.

A config of ours says what its agent does in ``agent=dict(...)``. A config of the official
repository has no ``agent`` section: its head's arguments (``interval_epoch``,
``joint_cfg``), its backbone's ``llm_modality`` and the model's type say it all, and it means
the official recipe: the official GPT-4o dialogues, masks and prompts (imported with
``tools/agent/import_official.py``), the official agent loop and follow-ups to gpt-4o with the
API's default request settings. The official "semi" models (``RecognizerGCN_Semi`` /
``SimpleHead_Semi``) train from those fixed texts and never ask again (``interval=0``).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skeletonagent.registry import MODELS

from ..datasets.label_map import DEFAULT_LABEL_MAPS

__all__ = ['agent_settings', 'OFFICIAL_AGENT_DEFAULTS', 'OFFICIAL_LLM', 'AGENT_KEYS']

#: Every key of a config's ``agent`` section, with what it sets (the hook's loop, the start).
AGENT_KEYS: dict[str, str] = {
    'interval': 'epochs between rounds (0: fixed texts)',
    'layout': "skeleton layout (default: the head's joint_cfg)",
    'modality': "stream of the masks (default: the backbone's llm_modality)",
    'num_classes': "number of classes (default: the head's)",
    'top_k': 'confused classes named per follow-up',
    'pad_to_k': 'name k classes even where fewer were confused',
    'update_masks': 'rebuild masks from follow-up replies',
    'background': 'run rounds in a background thread',
    'final_wait': 'seconds to wait at the end for a round in flight',
    'official': 'the official agent loop',
    'round_nice': "the round threads' CPU priority: 'idle' (SCHED_IDLE) or a nice increment",
    'label_map': 'class names (a label map name or file)',
    'transcripts': "dialogues to start from (a folder, or 'official')",
    'masks': "masks to start from (a .npy, or 'official')",
    'prompts': "prompt templates (overrides, or 'official')",
    'official_dir': "where 'official' points (default data/agent/<label map>)",
    'llm': 'the LLM backend',
    'max_words': 'description budget in words (0: none)',
    'row_index': "mask rows of bones ('pair' official, or 'joint')",
}

#: The follow-up requests of the official code: gpt-4o, the API's own temperature and length.
OFFICIAL_LLM = dict(type='OpenAIChat', model='gpt-4o', api_key_env='OPENAI_API_KEY',
                    temperature=None, max_tokens=None)
#: What an official config (no ``agent`` section) trains from.
OFFICIAL_AGENT_DEFAULTS = dict(transcripts='official', masks='official', prompts='official',
                               official=True)


def _trains_from_fixed_texts(model: Mapping[str, Any]) -> bool:
    """Whether the model config names one of the official semi classes (``fixed_texts``)."""
    for part in (model, model.get('cls_head') or {}):
        name = part.get('type')
        cls = MODELS.get(name) if isinstance(name, str) else None
        if cls is not None and getattr(cls, 'fixed_texts', False):
            return True
    return False


def agent_settings(cfg: Mapping[str, Any]) -> dict | None:
    """The settings of the ``AgentHook`` a config trains with, or None for a model without
    the agent (e.g. a plain ST-GCN++ baseline).

    ``cfg.agent`` keys win; missing ones come from the model config (``interval`` from
    ``cls_head.interval_epoch``, ``layout`` from ``cls_head.joint_cfg``, ``modality`` from
    ``backbone.llm_modality``, ``num_classes``, ``label_map`` from the number of classes); a
    config without an ``agent`` section gets :data:`OFFICIAL_AGENT_DEFAULTS` and
    :data:`OFFICIAL_LLM`; a semi model gets ``interval=0``. ``agent = None`` trains without
    the agent (no texts, masks or LLM; the ablation ``configs/ablation/no_agent.py``): the
    head's ``weight_1`` and ``weight_2`` must then be 0.

    Raises:
        ValueError: for ``agent = None`` with a non-zero ``weight_1`` or ``weight_2``.
    """
    model = cfg.get('model') or {}
    head = model.get('cls_head') or {}
    backbone = model.get('backbone') or {}
    if 'agent' in cfg and cfg.get('agent') is None:
        used = [f'model.cls_head.{k}={head[k]}' for k in ('weight_1', 'weight_2')
                if float(head.get(k, 0) or 0) != 0]
        if used:
            raise ValueError(f'agent=None trains without the agent, but {" and ".join(used)} '
                             'asks for its joint masks / texts: set them to 0 too')
        return None
    if 'weight_2' not in head and 'agent' not in cfg:
        return None
    official_config = 'agent' not in cfg
    agent = dict(cfg.get('agent') or {})
    if _trains_from_fixed_texts(model):
        agent['interval'] = 0
    agent.setdefault('interval', head.get('interval_epoch', 5))
    agent.setdefault('layout', head.get('joint_cfg', 'nturgb+d'))
    agent.setdefault('modality', backbone.get('llm_modality', 'j'))
    agent.setdefault('num_classes', head.get('num_classes'))
    if agent.get('num_classes') in DEFAULT_LABEL_MAPS:
        agent.setdefault('label_map', DEFAULT_LABEL_MAPS[agent['num_classes']])
    if official_config:
        for key, value in OFFICIAL_AGENT_DEFAULTS.items():
            agent.setdefault(key, value)
        agent.setdefault('llm', dict(OFFICIAL_LLM))
    agent.setdefault('llm', dict(type='Offline'))
    return agent
