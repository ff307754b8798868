"""The agent as a run plugin (:mod:`skeletonagent.plugin`): the engine's only way to it.

The engine lists the plugins of :data:`~skeletonagent.registry.RUN_PLUGINS` and asks each for
its settings; this one owns the config's ``agent`` section (and, for an official config
without one, what the model config implies: :func:`.settings.agent_settings`). It resolves the
texts, masks and prompts the settings name once (:func:`.sources.resolve_sources`), checks the
LLM backend's arguments and the text encoder's weights before the run writes anything, and
adds :class:`~.hook.AgentHook` with the resolved sources.
"""
from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from typing import Any

from ..datasets.config_view import config_value
from ..errors import ConfigError
from ..models.recognizers.recognizer_gcn import DEFAULT_TEXT_ENCODER
from ..models.text.availability import check_text_encoder
from ..plugin import CompatKey, RunPlugin
from ..registry import LLM_BACKENDS, RUN_PLUGINS
from .hook import AgentHook
from .llm import backend_arguments
from .settings import AGENT_KEYS, agent_settings
from .sources import AgentSources, resolve_sources

__all__ = ['AgentPlugin', 'check_llm']


def _norm_name(value: Any) -> str:
    return re.sub(r'[^a-z0-9]', '', str(value).lower())


def _check_llm_model(cfg: Mapping, ctx: dict) -> str | None:
    agent = ctx.get('agent')
    if agent is None:              # a model without the agent asks no LLM
        return None
    llm = agent.get('llm') or {}
    if not isinstance(llm, Mapping):
        return None
    if 'model' in llm:
        if _norm_name(llm['model']) != _norm_name(config_value(cfg, 'model.backbone.llm_model')):
            return f"the agent asks agent.llm.model={llm['model']!r}"
        return None
    return f"the agent's LLM is agent.llm.type={llm.get('type')!r}"


def _check_interval(cfg: Mapping, ctx: dict) -> str | None:
    section = cfg.get('agent') or {}
    if isinstance(section, Mapping) and 'interval' in section and ctx.get('agent') is not None:
        used = ctx['agent'].get('interval')
        if used != config_value(cfg, 'model.cls_head.interval_epoch'):
            return f'the agent asks every agent.interval={used} epochs'
    return None


def check_llm(settings: Mapping[str, Any]) -> None:
    """The agent's LLM backend (``agent.llm``) can be built from its arguments and the
    environment (nothing is built, no server called): a missing argument is a config error
    naming ``agent.llm.<argument>``; a missing API key the backend's own error."""
    llm = settings.get('llm')
    if not isinstance(llm, Mapping):
        return
    try:
        cls, args = backend_arguments(dict(llm))
    except TypeError as exc:
        cls_name = llm.get('type')
        cls = LLM_BACKENDS.get(cls_name) if isinstance(cls_name, str) else None
        missing = [] if cls is None else [
            name for name, p in list(inspect.signature(cls.__init__).parameters.items())[1:]
            if p.default is inspect.Parameter.empty and name not in llm
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if not missing:
            raise ConfigError(f'agent.llm ({cls_name}) cannot be built: {exc}') from exc
        keys = ', '.join(f'agent.llm.{name}' for name in missing)
        example = ' '.join(f'agent.llm.{name}=' + ('gpt-4o' if name == 'model' else '...')
                           for name in missing)
        raise ConfigError(f'agent.llm: {cls_name} needs {keys}, which the config does not set; '
                          f'give it, e.g. --cfg-options {example}') from exc
    if hasattr(cls, 'check_arguments') and int(settings.get('interval') or 0) > 0:
        cls.check_arguments(args)      # rounds will ask it: e.g. the API key's variable is set


@RUN_PLUGINS.register_module()
class AgentPlugin(RunPlugin):
    """The LLM agent: texts, masks and rounds (see the module docstring)."""

    section = 'agent'
    section_keys = AGENT_KEYS
    description = "the agent's settings (AgentHook); None: no agent (ablation)"

    def settings(self, cfg: Mapping[str, Any]) -> dict | None:
        try:
            return agent_settings(cfg)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def resolve(self, settings: Mapping[str, Any], config_file: str | None) -> AgentSources:
        return resolve_sources(settings, settings.get('modality', 'j'), config=config_file)

    def check(self, cfg: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
        check_llm(settings)
        head = config_value(cfg, 'model.cls_head') or {}
        if float(head.get('weight_2', 1) or 0) != 0:   # text alignment: a text encoder
            check_text_encoder(config_value(cfg, 'model.text_encoder') or DEFAULT_TEXT_ENCODER)

    def hooks(self, settings: Mapping[str, Any], resolved: Any) -> list[dict]:
        agent_hook = dict(type=AgentHook.__name__, **settings)
        if resolved is not None:       # the hook uses these rather than resolving again
            agent_hook['sources'] = resolved
        return [agent_hook]

    def compat_keys(self) -> tuple[CompatKey, ...]:
        return (
            CompatKey('model.backbone.llm_model', 'agent.llm (the LLM the agent asks; the '
                      "official texts are GPT-4o's)", _check_llm_model),
            CompatKey('model.cls_head.interval_epoch', 'agent.interval, which is taken from it '
                      'when the agent section does not set it', _check_interval),
        )
