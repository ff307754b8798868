"""The run plugins a run uses (:mod:`skeletonagent.plugin`), found through the registry.

The engine names no plugin: it imports the modules of ``RUN_PLUGINS``'s ``locations=`` and
builds each registered class once. A location whose package is not installed is skipped with
a debug line, so the engine runs without it (a config that needs it then fails on its own
section: an unknown key).
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from mmengine.logging import print_log

from ..plugin import RunPlugin
from ..registry import RUN_PLUGINS

__all__ = ['run_plugins', 'PluginUse', 'plugin_uses']

_PLUGINS: tuple[RunPlugin, ...] | None = None


def run_plugins() -> tuple[RunPlugin, ...]:
    """Every registered plugin, built once per process."""
    global _PLUGINS
    if _PLUGINS is None:
        for location in RUN_PLUGINS._locations:
            try:
                import_module(location)
            except ModuleNotFoundError as exc:
                print_log(f'run plugin {location} is not installed ({exc}); running without '
                          'it', logger='current', level=logging.DEBUG)
        RUN_PLUGINS._imported = True
        _PLUGINS = tuple(cls() for cls in RUN_PLUGINS.module_dict.values())
    return _PLUGINS


@dataclass(frozen=True)
class PluginUse:
    """A plugin a run uses: its settings and, once resolved (:meth:`resolve`, by the checks
    before the run, after the data files), what they name."""
    plugin: RunPlugin
    settings: Mapping[str, Any]
    resolved: Any = None
    is_resolved: bool = False

    @property
    def section(self) -> str:
        return self.plugin.section

    def resolve(self, config_file: str | None) -> PluginUse:
        """This use with what its settings name resolved (itself when already done); raises
        the plugin's user error for a missing file."""
        if self.is_resolved:
            return self
        return dataclasses.replace(self, resolved=self.plugin.resolve(self.settings, config_file),
                                   is_resolved=True)

    def hooks(self) -> list[dict]:
        """The hook configs the plugin adds to a training run."""
        return self.plugin.hooks(self.settings, self.resolved)


def plugin_uses(cfg: Mapping[str, Any]) -> tuple[PluginUse, ...]:
    """The plugins ``cfg`` switches on, each with its settings (not yet resolved)."""
    uses = []
    for plugin in run_plugins():
        settings = plugin.settings(cfg)
        if settings is not None:
            uses.append(PluginUse(plugin, settings))
    return tuple(uses)
