"""Reading a config file, and what the command line adds to it (:class:`RunOptions`).

A config is a PYSKL / official SkeletonAgent one (``data=dict(train=...)``) or an mmengine
one (``train_dataloader=...``); :func:`is_legacy` tells which. Its keys are checked by
:mod:`.config_keys`, it is translated by :mod:`.translate`, and a run resolves it once into a
:class:`~.spec.RunSpec` (:mod:`.spec`).
"""
from __future__ import annotations

import ast
from argparse import ArgumentParser, Namespace
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmengine.config import Config, DictAction

from .config_keys import config_files
from .errors import ConfigError

__all__ = ['ConfigError', 'RunOptions', 'CfgOptionsAction', 'load_config', 'is_legacy']


@dataclass
class RunOptions:
    """What the command line adds to a config."""
    validate: bool = False
    seed: int | None = None
    deterministic: bool = False
    resume: str | None = None        # 'auto', a path, or None
    amp: bool | str = False      # True (device default), 'float16' or 'bfloat16'
    compile: bool = False
    launcher: str = 'none'
    load_from: str | None = None     # checkpoint for test
    work_dir: str | None = None      # test: where its logs go (default work_dir/test)
    workers: int | None = None       # DataLoader workers per process at most (None: config's)
    workers_line: str | None = None  # how ``workers`` was chosen, for the log
    extra_hooks: list = field(default_factory=list)
    metrics: list | None = None      # test: the metrics to report (``--eval``)
    out_file: str | None = None      # test: the per-sample scores file (``--out``)


class CfgOptionsAction(DictAction):
    """mmengine's ``--cfg-options`` action; an item without ``=`` is a :class:`ConfigError`
    naming it (mmengine's own fails with "not enough values to unpack")."""

    def __call__(self, parser: ArgumentParser, namespace: Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None):
        for item in [values] if isinstance(values, str) else list(values or []):
            key = str(item).split('=', 1)[0]
            if '=' not in str(item) or not key:
                raise ConfigError(f'--cfg-options {item!r}: give KEY=VALUE, e.g. '
                                  f'{key or "total_epochs"}=6')
        super().__call__(parser, namespace, values, option_string)


def _syntax_error(path: Path, exc: SyntaxError) -> ConfigError:
    """The config file (or inherited ``_base_`` file) and line of a syntax error: mmengine
    parses the text without a file name, so Python's message says ``<unknown>``."""
    for file in config_files(str(path)) or [path]:
        try:
            ast.parse(file.read_text(encoding='utf-8'), filename=str(file))
        except SyntaxError as found:
            exc = found
            path = file
            break
        except (OSError, ValueError):
            continue
    line = (exc.text or '').strip()
    return ConfigError(f'syntax error in config {path}, line {exc.lineno}: {exc.msg}'
                       + (f'\n    {line}' if line else ''))


def load_config(path: str | Path, cfg_options: dict | None = None) -> Config:
    """Read a config file and apply ``--cfg-options`` overrides (dotted keys)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'config file not found: {path}')
    try:
        cfg = Config.fromfile(str(path))
    except FileNotFoundError as exc:  # a missing _base_ (or other file the config reads)
        raise FileNotFoundError(f'config {path} references a missing file: {exc}') from exc
    except SyntaxError as exc:
        raise _syntax_error(path, exc) from None
    except (NameError, TypeError, ValueError, AttributeError, ImportError) as exc:
        raise ConfigError(f'config {path} cannot be read: {type(exc).__name__}: {exc}') from exc
    if cfg_options:
        try:
            cfg.merge_from_dict(cfg_options)
        except (TypeError, KeyError, AttributeError) as exc:
            raise ConfigError(f'--cfg-options cannot be applied to {path}: {exc}') from exc
    if not cfg.get('work_dir'):
        cfg.work_dir = str(Path('work_dirs') / path.parent.name / path.stem)
    return cfg


def is_legacy(cfg: Config) -> bool:
    """True for the PYSKL schema (``data=dict(train=...)``), False for mmengine configs."""
    return 'train_dataloader' not in cfg and 'data' in cfg
