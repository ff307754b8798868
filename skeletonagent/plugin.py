"""The engine's extension point: run plugins.

The engine turns a config into a run and knows nothing of what a plugin adds (the LLM agent
is one). A plugin owns one top-level config section, says which keys it takes, decides from
the config whether it is on, checks what it needs before the run writes anything, and adds
its hooks. It is registered in :data:`skeletonagent.registry.RUN_PLUGINS`, whose
``locations=`` name the modules that define plugins; the engine finds them only there, so a
run whose config switches no plugin on imports nothing of the plugin's package beyond that
module.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ['CompatKey', 'RunPlugin']


@dataclass(frozen=True)
class CompatKey:
    """A key kept only so that official / PYSKL configs load: ``instead`` is what the run
    uses; ``check(cfg, context)`` returns the disagreement to warn about, or None. The
    ``context`` holds ``launcher``, ``dist_backend`` and each plugin's settings under its
    section name."""
    key: str
    instead: str
    check: Callable[[Any, dict], str | None] | None = None


class RunPlugin:
    """What a plugin contributes to a run; every method has a do-nothing default.

    Attributes:
        section: the top-level config key the plugin owns (``'agent'``).
        section_keys: the keys that section may hold, each with what it sets.
        description: what the section is, in the table of top-level keys.
    """

    section: str = ''
    section_keys: Mapping[str, str] = {}
    description: str = ''

    def settings(self, cfg: Mapping[str, Any]) -> dict | None:
        """The plugin's settings for ``cfg``, or None when the run does without it. Raises a
        user error (``ValueError``) for settings that contradict the model."""
        return None

    def resolve(self, settings: Mapping[str, Any], config_file: str | None) -> Any:
        """Resolve what the settings name (files, folders): cheap, no network. Returns what
        :meth:`hooks` needs; raises a user error naming what is missing."""
        return None

    def check(self, cfg: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
        """Checks before a training run writes anything (arguments, credentials, weights that
        must be at hand); raise the first problem."""

    def hooks(self, settings: Mapping[str, Any], resolved: Any) -> list[dict]:
        """Hook configs (``dict(type=...)``) the training run registers."""
        return []

    def compat_keys(self) -> tuple[CompatKey, ...]:
        """Compatibility knobs of the official configs that the plugin's settings decide."""
        return ()
