"""A config becomes a run in one pass: :func:`resolve_run` → a frozen :class:`RunSpec`.

The loaded config is checked (:func:`.config_keys.check_config`), its run plugins' settings
taken (:func:`.plugins.plugin_uses`; what they name is resolved by the checks before the run,
after the data files: :meth:`RunSpec.with_plugins_resolved`), the command line's options
completed (``resume_from``, ``--resume auto``, the launcher), the config translated onto the
Runner's arguments (:func:`.translate.translate`), and its datasets and class names read
(:mod:`skeletonagent.datasets.config_view`), each once. Every later reader takes the spec:
the checks before the run (:mod:`.preflight`), the Runner (:mod:`.runner`), the memcached
server (:mod:`.memcached_server`), the report. Nothing reads the config again.
"""
from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from mmengine.config import Config

from ..datasets.config_view import (
    ClassNames,
    DatasetEntry,
    config_class_names,
    config_datasets,
    config_layout,
    config_num_classes,
)
from .checkpoint import find_resume_checkpoint
from .config import RunOptions, is_legacy
from .config_keys import check_config
from .dist import launched_by_torchrun
from .plugins import PluginUse, plugin_uses, run_plugins
from .translate import run_work_dir, translate

__all__ = ['RunSpec', 'resolve_run', 'as_spec', 'default_splits']

MODES = ('train', 'test')


@dataclass(frozen=True)
class RunSpec:
    """Everything a run needs to know about its config, resolved once.

    Attributes:
        cfg: the config as loaded, with ``--cfg-options`` and ``--work-dir`` applied (the
            Runner dumps it); nothing changes it after :func:`resolve_run`.
        legacy: whether the config is in the PYSKL schema (else mmengine's).
        mode: ``'train'`` or ``'test'``.
        options: the command line's options, completed: ``resume`` is a checkpoint path or
            None (``'auto'`` and ``resume_from`` resolved), ``launcher`` is known.
        resume_requested: what ``--resume`` / ``resume_from`` asked (``'auto'``, a path, None).
        splits: the data splits the run reads.
        work_dir: where the run writes.
        datasets: the datasets of ``splits`` that read files.
        num_classes: the classes the model predicts (None when the config does not say).
        class_names: the config's class names and their source, or None.
        layout: the skeleton layout the model is built on (None when the config does not say).
        plugins: the run plugins the config switches on, with their settings (and, after
            :meth:`with_plugins_resolved`, what those name).
        runner_kwargs: mmengine Runner's arguments (without ``model``), read-only: the
            mmengine-schema config of the run (:meth:`new_runner_kwargs` gives a copy).
    """
    cfg: Config
    legacy: bool
    mode: str
    options: RunOptions
    resume_requested: str | None
    splits: tuple[str, ...]
    work_dir: str
    datasets: tuple[DatasetEntry, ...]
    num_classes: int | None
    class_names: ClassNames | None
    layout: str | None
    plugins: tuple[PluginUse, ...]
    runner_kwargs: Mapping[str, Any]

    @property
    def config_file(self) -> str | None:
        return getattr(self.cfg, 'filename', None)

    def plugin(self, section: str) -> PluginUse | None:
        """The use of the plugin owning config section ``section``, or None when off."""
        return next((use for use in self.plugins if use.section == section), None)

    def with_plugins_resolved(self) -> RunSpec:
        """This spec with what its plugins' settings name resolved (each once); raises the
        plugin's user error for a missing file."""
        if all(use.is_resolved for use in self.plugins):
            return self
        return dataclasses.replace(
            self, plugins=tuple(use.resolve(self.config_file) for use in self.plugins))

    def new_runner_kwargs(self) -> dict[str, Any]:
        """A copy of :attr:`runner_kwargs` to build a Runner from, with the hooks of the
        (resolved) plugins of a training run. The config itself is shared, not copied:
        mmengine copies what it changes."""
        kwargs = copy.deepcopy({k: v for k, v in self.runner_kwargs.items() if k != 'cfg'})
        kwargs['cfg'] = self.cfg
        if self.mode == 'train':
            kwargs['custom_hooks'] = list(kwargs.get('custom_hooks') or []) + [
                hook for use in self.plugins for hook in use.hooks()]
        return kwargs


def default_splits(mode: str, validate: bool) -> tuple[str, ...]:
    """The splits a run reads: train (and val with ``--validate``) for training, test for
    testing."""
    if mode == 'train':
        return ('train', 'val') if validate else ('train',)
    return ('test',)


def _options(cfg: Config, options: RunOptions, mode: str) -> tuple[RunOptions, str | None]:
    """``options`` completed: the launcher, and for training ``resume`` as a path or None."""
    launcher = options.launcher
    if launcher == 'none' and launched_by_torchrun():
        launcher = 'pytorch'
    requested = options.resume or (str(cfg.resume_from) if cfg.get('resume_from') else None)
    resume = requested if mode == 'train' else None
    if resume == 'auto':
        found = find_resume_checkpoint(cfg.work_dir)
        resume = str(found) if found else None
    return dataclasses.replace(options, launcher=launcher, resume=resume,
                               extra_hooks=list(options.extra_hooks)), requested


def resolve_run(cfg: Config, options: RunOptions | None = None, mode: str = 'train',
                splits: Sequence[str] | None = None) -> RunSpec:
    """Resolve a loaded config into the :class:`RunSpec` of a run in ``mode``.

    Raises:
        ConfigError: a key the run would not use, a setting that cannot be translated, or a
            command-line option an mmengine-schema config cannot honour.
    """
    if mode not in MODES:
        raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
    options = options or RunOptions()
    plugins = run_plugins()
    check_config(cfg, plugins)
    uses = plugin_uses(cfg, plugins) if mode == 'train' else ()
    resolved, requested = _options(cfg, options, mode)
    kwargs = translate(cfg, resolved, mode, uses)
    splits = tuple(splits) if splits is not None else default_splits(mode, resolved.validate)
    num_classes = config_num_classes(cfg)
    return RunSpec(
        cfg=cfg, legacy=is_legacy(cfg), mode=mode, options=resolved, resume_requested=requested,
        splits=splits, work_dir=run_work_dir(cfg, resolved, mode),
        datasets=tuple(e for split in splits for e in config_datasets(cfg, split)),
        num_classes=num_classes, class_names=config_class_names(cfg, num_classes),
        layout=config_layout(cfg),
        plugins=uses, runner_kwargs=MappingProxyType(kwargs))


def as_spec(spec: RunSpec | Config, options: RunOptions | None = None, mode: str = 'train',
            splits: Sequence[str] | None = None) -> RunSpec:
    """A spec as it is; a script's config (with its options) resolved first
    (:func:`resolve_run`)."""
    return spec if isinstance(spec, RunSpec) else resolve_run(spec, options, mode, splits)
