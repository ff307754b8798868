"""Keys kept only so that official / PYSKL configs load: the one table of them.

Each :class:`~skeletonagent.plugin.CompatKey` says what the run uses instead and, when the
config sets the key to something the run does not do, one warning line
(:func:`compat_warnings`, logged by the translation). The engine's knobs are
:data:`COMPAT_KEYS`; the run plugins add theirs (:func:`all_compat_keys`; the agent's are
``model.backbone.llm_model`` and ``model.cls_head.interval_epoch``). docs/interfaces.md shows
the table.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Callable

from mmengine.config import Config

from ..datasets.config_view import config_value
from ..plugin import CompatKey, RunPlugin
from .plugins import run_plugins

__all__ = ['CompatKey', 'COMPAT_KEYS', 'all_compat_keys', 'compat_warnings']


def _written_work_dir(cfg) -> str | None:
    """The config file's own ``work_dir``, before ``--cfg-options`` / ``--work-dir``."""
    filename = getattr(cfg, 'filename', None)
    if not filename:
        return None
    try:
        return Config.fromfile(filename).get('work_dir')
    except Exception:  # noqa: BLE001 - unreadable: no exemption
        return None


def _check_head_work_dir(cfg, ctx) -> str | None:
    """Warns when ``cls_head.work_dir`` names another folder than the run's, unless it is the
    config file's own work_dir (the official configs repeat it there) and only the documented
    ``work_dir=`` / ``--work-dir`` override moved the run."""
    given, used = config_value(cfg, 'model.cls_head.work_dir'), cfg.get('work_dir')
    if given is None or used is None:
        return None

    def same(a, b) -> bool:
        return Path(str(a)).expanduser().resolve() == Path(str(b)).expanduser().resolve()
    if same(given, used):
        return None
    written = _written_work_dir(cfg)
    if written is not None and same(given, written):
        return None
    return f'this run writes to {used} (work_dir)'


def _check_workflow(cfg, ctx) -> str | None:
    phases = [w[0] for w in cfg.get('workflow') or () if isinstance(w, (list, tuple)) and w]
    if any(p != 'train' for p in phases):
        return 'validation runs with --validate, every evaluation.interval epochs'
    return None


def _check_dist_params(cfg, ctx) -> str | None:
    backend = config_value(cfg, 'dist_params.backend')
    used = ctx.get('dist_backend')
    if backend and used and ctx.get('launcher', 'none') != 'none' and backend != used:
        return f'this run uses the {used} backend'
    return None


def _flag_check(key: str, bad: Callable[[Any], bool], message: str):
    def check(cfg, ctx) -> str | None:
        return message if bad(config_value(cfg, key)) else None
    return check


_BEST_NAMES = (None, 'auto', 'top1_acc', 'top_k_accuracy', 'acc/top1', 'top1')

#: The engine's table of compatibility knobs; the run plugins add theirs
#: (:func:`all_compat_keys`, the table docs/interfaces.md shows).
COMPAT_KEYS: tuple[CompatKey, ...] = (
    CompatKey('model.cls_head.work_dir', "the run's work_dir (work_dir or --work-dir)",
              _check_head_work_dir),
    CompatKey('workflow', "mmengine's loops: training, and validation with --validate",
              _check_workflow),
    CompatKey('dist_params', 'the launcher (torchrun, tools/dist_train.sh): nccl on GPUs, '
              'gloo on CPU', _check_dist_params),
    CompatKey('find_unused_parameters', 'SkeletonDDP with find_unused_parameters=False',
              _flag_check('find_unused_parameters', bool,
                          'every parameter gets a gradient, so DDP does not look for unused ones')),
    CompatKey('checkpoint_config.by_epoch', 'checkpoints every checkpoint_config.interval epochs',
              _flag_check('checkpoint_config.by_epoch', lambda v: v is False,
                          'checkpoints are saved by epoch')),
    CompatKey('checkpoint_config.create_symlink', 'latest.pth always links the newest checkpoint'),
    CompatKey('evaluation.save_best', 'with --validate, the best checkpoint by val top-1 '
              '(acc/top1)', _flag_check('evaluation.save_best', lambda v: v not in _BEST_NAMES,
                                        'the best checkpoint is the one of the best val top-1')),
    CompatKey('evaluation.rule', "'greater' (of val top-1)",
              _flag_check('evaluation.rule', lambda v: v not in (None, 'greater'),
                          "the best checkpoint is the one of the greatest val top-1")),
)


def all_compat_keys(plugins: Sequence[RunPlugin] | None = None) -> tuple[CompatKey, ...]:
    """:data:`COMPAT_KEYS` and the knobs the run plugins (default: every registered one)
    decide."""
    plugins = run_plugins() if plugins is None else plugins
    return COMPAT_KEYS + tuple(k for p in plugins for k in p.compat_keys())


def compat_warnings(cfg: Mapping, context: dict | None = None,
                    plugins: Sequence[RunPlugin] | None = None) -> list[str]:
    """One line per compatibility knob the config sets and that disagrees with what the run
    uses. ``context``: ``launcher``, ``dist_backend``, and each plugin's settings under its
    section name (``agent``)."""
    ctx = dict(context or {})
    lines = []
    for compat in all_compat_keys(plugins):
        sentinel = object()
        value = config_value(cfg, compat.key, sentinel)
        if value is sentinel or compat.check is None:
            continue
        why = compat.check(cfg, ctx)
        if why:
            lines.append(f'{compat.key}={value!r} is kept for official compatibility only and '
                         f'not used: {why}')
    return lines
