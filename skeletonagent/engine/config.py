"""Translate the PYSKL / official SkeletonAgent config schema onto mmengine's Runner.

Users keep writing configs the way PYSKL and the official SkeletonAgent do: ``model``,
``data`` (``videos_per_gpu``, ``workers_per_gpu``, ``train``/``val``/``test``), ``optimizer``,
``optimizer_config``, ``lr_config``, ``total_epochs``, ``checkpoint_config``, ``evaluation``,
``log_config``, ``work_dir``, ``load_from``, ``resume_from``, ``memcached``.
:func:`to_runner_kwargs` maps those onto the arguments of :class:`mmengine.runner.Runner`;
configs already written for mmengine (with a ``train_dataloader``) pass through. Every key is
used, translated or reported (:mod:`skeletonagent.engine.config_keys`).
"""
from __future__ import annotations

import ast
import copy
import importlib
import logging
from argparse import ArgumentParser, Namespace
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmengine.config import Config, DictAction

from .checkpoint import ATOMIC_BACKEND_ARGS
from .config_keys import COMPAT_KEYS, LOGGER_HOOKS, check_config, compat_warnings, explain_unexpected_arguments
from .errors import ConfigError

__all__ = ['ConfigError', 'RunOptions', 'CfgOptionsAction', 'load_config', 'is_legacy',
           'to_runner_kwargs', 'resolve_resume', 'lr_scaling', 'agent_settings',
           'check_config', 'compat_warnings', 'COMPAT_KEYS', 'explain_unexpected_arguments',
           'run_work_dir', 'dataset_configs']


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
    from .config_keys import config_files
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


def _leaf_datasets(ds: dict, path: str) -> Iterator[tuple[str, dict]]:
    """(config path, dict) of the datasets that read files, inside wrappers
    (``RepeatDataset(dataset=...)``, ``ConcatDataset(datasets=[...])``)."""
    if isinstance(ds.get('dataset'), dict):
        yield from _leaf_datasets(ds['dataset'], f'{path}.dataset')
    elif isinstance(ds.get('datasets'), (list, tuple)):
        for i, sub in enumerate(ds['datasets']):
            if isinstance(sub, dict):
                yield from _leaf_datasets(sub, f'{path}.datasets[{i}]')
    else:
        yield path, ds


def dataset_configs(cfg: Config, split: str) -> list[tuple[str, dict]]:
    """(config path, dataset dict) of the datasets of ``data.<split>`` that read files."""
    data = cfg.get('data') or {}
    return list(_leaf_datasets(data[split], f'data.{split}')) if split in data else []


def _dataset_cfg(cfg: Config, split: str) -> dict:
    data = cfg.get('data') or {}
    if split not in data:
        raise ConfigError(f'config has no data.{split}')
    ds = copy.deepcopy(dict(data[split]))
    for _, leaf in _leaf_datasets(ds, split):
        if cfg.get('memcached'):
            leaf.setdefault('memcached', True)
            if cfg.get('mc_cfg'):
                leaf.setdefault('mc_cfg', cfg.mc_cfg)
        if split != 'train':
            leaf.setdefault('test_mode', True)
    return ds


def _loader(cfg: Config, split: str, shuffle: bool) -> dict:
    data = cfg.data
    override = dict(data.get(f'{split}_dataloader', {}) or {})

    def setting(key, default):
        return override.get(key, data.get(key, default))
    workers = setting('workers_per_gpu', 1)
    return dict(
        batch_size=setting('videos_per_gpu', 1),
        num_workers=workers,
        persistent_workers=bool(workers > 0 and setting('persistent_workers', split == 'train')),
        pin_memory=setting('pin_memory', False),
        drop_last=override.get('drop_last', False),
        sampler=dict(type='DefaultSampler', shuffle=shuffle),
        collate_fn=dict(type='pose_collate'),
        dataset=_dataset_cfg(cfg, split))


#: ``lr_config`` keys each policy reads (besides policy, by_epoch and the warmup keys).
_POLICY_KEYS = {'CosineAnnealing': ('min_lr', 'min_lr_ratio'), 'step': ('step', 'gamma'),
                'fixed': ()}


def _schedulers(cfg: Config, max_epochs: int) -> list[dict]:
    lr_config = dict(cfg.get('lr_config') or {})
    policy = lr_config.pop('policy', None)
    by_epoch = lr_config.pop('by_epoch', True)
    scheds: list[dict] = []
    warmup = lr_config.pop('warmup', None)
    warmup_keys = {k: lr_config.pop(k) for k in ('warmup_iters', 'warmup_ratio', 'warmup_by_epoch')
                   if k in lr_config}
    if warmup:
        if warmup != 'linear':
            raise ConfigError(f"lr_config.warmup={warmup!r} is not supported; use 'linear'")
        warm_by_epoch = warmup_keys.get('warmup_by_epoch', False)
        scheds.append(dict(type='LinearLR', start_factor=warmup_keys.get('warmup_ratio', 0.1),
                           by_epoch=warm_by_epoch, begin=0,
                           end=warmup_keys.get('warmup_iters', 0),
                           convert_to_iter_based=warm_by_epoch))
    elif warmup_keys:
        raise ConfigError(f'lr_config.{next(iter(warmup_keys))} is not used without '
                          "lr_config.warmup='linear'")
    if policy not in _POLICY_KEYS and policy is not None:
        raise ConfigError(f"lr_config.policy={policy!r} is not supported; use 'CosineAnnealing', "
                          "'step' or 'fixed', or write an mmengine param_scheduler list")
    unused = [k for k in lr_config if k not in _POLICY_KEYS.get(policy, ())]
    if unused:
        raise ConfigError(f'lr_config.{unused[0]} is not used by lr_config.policy={policy!r}'
                          + (f' (it reads {", ".join(_POLICY_KEYS[policy])})'
                             if _POLICY_KEYS.get(policy) else ''))
    if policy == 'CosineAnnealing':
        # a ratio stays a ratio of the (possibly batch-scaled) lr
        floor = (dict(eta_min_ratio=lr_config.pop('min_lr_ratio')) if 'min_lr_ratio' in lr_config
                 else dict(eta_min=lr_config.pop('min_lr', 0.)))
        # PYSKL's by_epoch=False anneals every iteration over the whole run; mmengine does the
        # same when an epoch-based scheduler is converted to iterations.
        scheds.append(dict(type='CosineAnnealingLR', T_max=max_epochs, **floor,
                           by_epoch=True, begin=0, end=max_epochs,
                           convert_to_iter_based=not by_epoch))
    elif policy == 'step':
        steps = lr_config.pop('step')
        steps = [steps] if isinstance(steps, int) else list(steps)
        scheds.append(dict(type='MultiStepLR', milestones=steps,
                           gamma=lr_config.pop('gamma', 0.1), by_epoch=True,
                           begin=0, end=max_epochs, convert_to_iter_based=not by_epoch))
    return scheds


def lr_scaling(cfg: Config) -> dict:
    """mmengine's ``auto_scale_lr``: the lr follows the total batch linearly.

    The official configs give the lr for one GPU of ``videos_per_gpu`` samples ("4 GPU 64 0.1
    -> 1 GPU 16 0.025"), so a config without ``auto_scale_lr`` scales from that batch; the
    paper configs say so explicitly (``dict(enable=True, base_batch_size=16)``) and
    ``auto_scale_lr=dict(enable=False)`` keeps the lr as written whatever the GPU count.
    """
    given = cfg.get('auto_scale_lr')
    if given is None:
        batch = (cfg.get('data') or {}).get('videos_per_gpu', 1)
        return dict(enable=True, base_batch_size=int(batch))
    scale = dict(given)
    scale.setdefault('enable', True)
    if scale['enable'] and not scale.get('base_batch_size'):
        raise ConfigError('auto_scale_lr needs base_batch_size (the total batch the config lr '
                          'is for), or enable=False')
    return scale


def agent_settings(cfg: Config) -> dict | None:
    """The settings of the config's ``AgentHook``
    (:func:`skeletonagent.agent.settings.agent_settings`)."""
    from ..agent.settings import agent_settings as settings_of
    return settings_of(cfg)


def _dist_backend() -> str:
    import torch
    return 'nccl' if torch.cuda.is_available() else 'gloo'


_TENSORBOARD_WARNED = False


def _tensorboard_available() -> bool:
    """Whether mmengine's TensorboardVisBackend can write (``torch.utils.tensorboard``)."""
    global _TENSORBOARD_WARNED
    try:
        importlib.import_module('torch.utils.tensorboard')
        return True
    except Exception as exc:  # noqa: BLE001 - a missing or broken install: log without it
        if not _TENSORBOARD_WARNED:
            _TENSORBOARD_WARNED = True
            from mmengine.logging import print_log
            print_log(f'TensorBoard logging is off ({type(exc).__name__}: {exc}); '
                      '`pip install tensorboard` to turn it on. The JSON scalars log is '
                      'written as before.', logger='current', level=logging.WARNING)
        return False


def _logger_settings(cfg: Config) -> tuple[int, bool, dict | None]:
    """(interval, ignore_last, TensorBoard backend or None) from ``log_config``.

    ``log_config.hooks`` are mmcv's logger hooks: TextLoggerHook is mmengine's logger (its
    ``interval`` wins over ``log_config.interval``), TensorboardLoggerHook a TensorBoard
    backend of the visualizer (``log_dir`` becomes its folder). TensorBoard is on unless
    ``log_config.tensorboard=False`` (or not installed); key checks are in config_keys."""
    log_config = dict(cfg.get('log_config') or {})
    interval = log_config.get('interval', 50)
    ignore_last = True
    tensorboard: dict | None = None
    if log_config.get('tensorboard', True):
        tensorboard = dict(type='TensorboardVisBackend')
    for hook in log_config.get('hooks') or []:
        kind = hook.get('type')
        if kind not in LOGGER_HOOKS:
            raise ConfigError(f'log_config.hooks: {kind!r} is not a supported logger hook '
                              f'({", ".join(LOGGER_HOOKS)})')
        if kind == 'TextLoggerHook':
            interval = hook.get('interval', interval)
            ignore_last = hook.get('ignore_last', ignore_last)
        elif kind == 'TensorboardLoggerHook':
            tensorboard = dict(type='TensorboardVisBackend')
            if hook.get('log_dir'):
                tensorboard['save_dir'] = str(hook['log_dir'])
    return int(interval), bool(ignore_last), tensorboard


def _vis_backends(cfg: Config) -> list[dict]:
    """The visualizer's backends: the JSON scalars log (``vis_data/scalars.json``) always,
    TensorBoard event files beside it unless ``log_config.tensorboard=False`` or TensorBoard
    is not installed."""
    backends = [dict(type='LocalVisBackend')]
    tensorboard = _logger_settings(cfg)[2]
    if tensorboard is not None and _tensorboard_available():
        backends.append(tensorboard)
    return backends


def run_work_dir(cfg: Config, opts: RunOptions, mode: str = 'train') -> str:
    """Where a run writes: training in ``work_dir``; a test run's logs in ``--work-dir``
    when given (``opts.work_dir``), else in ``work_dir/test``, so the training work dir does
    not collect a timestamped folder and a dumped config per test."""
    if mode == 'train':
        return str(cfg.work_dir)
    return str(opts.work_dir) if opts.work_dir else str(Path(cfg.work_dir) / 'test')


def resolve_resume(cfg: Config, opts: RunOptions) -> RunOptions:
    """``resume_from`` in the config means ``--resume PATH``; the command line wins."""
    if not opts.resume and cfg.get('resume_from'):
        opts.resume = str(cfg.resume_from)
    return opts


def _log(message: str, level: int = logging.INFO) -> None:
    from mmengine.dist import get_rank
    from mmengine.logging import print_log
    if get_rank() == 0:
        print_log(message, logger='current', level=level)


def _mmengine_kwargs(cfg: Config, opts: RunOptions) -> dict[str, Any]:
    """An mmengine-style config: its Runner arguments as they are."""
    import inspect

    from mmengine.runner import Runner
    names = set(inspect.signature(Runner.__init__).parameters) - {'self', 'model', 'cfg'}
    kwargs = {k: cfg.get(k) for k in names if cfg.get(k) is not None}
    kwargs['launcher'] = opts.launcher
    kwargs['cfg'] = cfg
    return kwargs


def to_runner_kwargs(cfg: Config, opts: RunOptions, mode: str = 'train') -> dict[str, Any]:
    """Keyword arguments for :class:`mmengine.runner.Runner` (without ``model``).

    ``mode`` is ``'train'`` or ``'test'``; test builds only what testing needs. Raises
    :class:`ConfigError` for a key the run would not use (:func:`check_config`); logs a
    warning for a compatibility knob that disagrees with what is used."""
    check_config(cfg)
    if not is_legacy(cfg):
        return _mmengine_kwargs(cfg, opts)

    max_epochs = int(cfg.get('total_epochs', 0) or 0)
    if mode == 'train' and max_epochs <= 0:
        raise ConfigError('config needs total_epochs > 0 to train')
    evaluation = dict(cfg.get('evaluation') or {})
    metrics = evaluation.get('metrics', ['top_k_accuracy', 'mean_class_accuracy'])
    # a list: mmengine reads a dict with a 'metrics' key as an Evaluator config
    evaluator = [dict(type='SkeletonAccuracy', metrics=metrics,
                      topk=tuple(evaluation.get('topk', (1, 5))))]
    log_interval, ignore_last, _ = _logger_settings(cfg)
    ckpt = dict(cfg.get('checkpoint_config') or {})
    seed = opts.seed if opts.seed is not None else cfg.get('seed')

    kwargs: dict[str, Any] = dict(
        work_dir=run_work_dir(cfg, opts, mode),
        launcher=opts.launcher,
        default_scope='skeletonagent',
        env_cfg=dict(cudnn_benchmark=cfg.get('cudnn_benchmark', False),
                     mp_cfg=dict(mp_start_method=cfg.get('mp_start_method', 'fork'),
                                 opencv_num_threads=cfg.get('opencv_num_threads', 0)),
                     dist_cfg=dict(backend=_dist_backend())),
        # train/ and val/ tags for TensorBoard (PhaseVisualizer keeps the JSON log flat)
        log_processor=dict(type='PhaseLogProcessor', by_epoch=True, window_size=log_interval),
        visualizer=dict(type='PhaseVisualizer', vis_backends=_vis_backends(cfg)),
        log_level=cfg.get('log_level', 'INFO'),
        randomness=dict(seed=seed, deterministic=opts.deterministic),
        cfg=cfg,
    )
    logger = dict(type='LoggerHook', interval=log_interval, ignore_last=ignore_last)
    test_loader = dict(test_dataloader=_loader(cfg, 'test', shuffle=False),
                       test_cfg=dict(type='TestLoop'),
                       test_evaluator=copy.deepcopy(evaluator))
    kwargs.update(test_loader)
    if mode == 'test':
        kwargs['load_from'] = opts.load_from
        kwargs['default_hooks'] = dict(timer=dict(type='IterTimerHook'), logger=logger)
        kwargs['custom_hooks'] = [dict(type='ProgressBarHook'), dict(type='BroadcastBNBuffersHook')]
        return kwargs

    optimizer = copy.deepcopy(dict(cfg.get('optimizer') or {}))
    if not optimizer:
        raise ConfigError('config needs an optimizer to train')
    paramwise = optimizer.pop('paramwise_cfg', None)   # mmcv kept it in the optimizer dict
    grad_clip = (cfg.get('optimizer_config') or {}).get('grad_clip')
    # --amp: AmpOptimWrapper (float16) on CUDA, bfloat16 autocast on CPU (engine/optim.py)
    from .optim import amp_optim_wrapper_cfg
    optim_wrapper = amp_optim_wrapper_cfg(opts.amp, optimizer)
    if grad_clip:
        optim_wrapper['clip_grad'] = dict(grad_clip)
    if paramwise:
        optim_wrapper['paramwise_cfg'] = dict(paramwise)

    val_interval = int(evaluation.get('interval', 1))
    custom_hooks = [dict(type='QuietLogsHook'),
                    dict(type='LatestCheckpointLinkHook'), dict(type='ProgressBarHook'),
                    dict(type='RandomStateHook'), dict(type='BroadcastBNBuffersHook'),
                    dict(type='RunInfoHook')]
    custom_hooks += [copy.deepcopy(dict(h)) for h in cfg.get('custom_hooks') or []]
    kwargs.update(
        train_dataloader=_loader(cfg, 'train', shuffle=True),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs, val_interval=val_interval),
        optim_wrapper=optim_wrapper,
        param_scheduler=_schedulers(cfg, max_epochs) or None,
        default_hooks=dict(
            timer=dict(type='IterTimerHook'),
            logger=logger,
            param_scheduler=dict(type='ParamSchedulerHook'),
            checkpoint=dict(type='CheckpointHook', interval=ckpt.get('interval', 1),
                            by_epoch=True, max_keep_ckpts=ckpt.get('max_keep_ckpts', -1),
                            save_optimizer=ckpt.get('save_optimizer', True),
                            save_best='acc/top1' if opts.validate else None, rule='greater',
                            backend_args=ATOMIC_BACKEND_ARGS),
            sampler_seed=dict(type='DistSamplerSeedHook')),
        custom_hooks=custom_hooks + list(opts.extra_hooks),
        auto_scale_lr=lr_scaling(cfg),
    )
    agent = agent_settings(cfg)
    if agent is not None:
        kwargs['custom_hooks'].append(dict(type='AgentHook', **agent))
    if opts.validate:
        # validation also returns its confusion matrix (ValHistoryHook keeps every one)
        val_evaluator = [dict(evaluator[0], confusion=True)]
        kwargs.update(val_dataloader=_loader(cfg, 'val', shuffle=False),
                      val_cfg=dict(type='ValLoop'), val_evaluator=val_evaluator)
    if opts.resume:
        kwargs['resume'] = True
        kwargs['load_from'] = None if opts.resume == 'auto' else opts.resume
        if cfg.get('load_from'):
            _log(f'load_from {cfg.load_from} is not used: the run resumes from {opts.resume}')
    elif cfg.get('load_from'):   # fine-tuning: our partial load, after mmengine's init_weights
        kwargs['custom_hooks'].append(dict(type='LoadPretrainedHook',
                                           checkpoint=str(cfg.load_from)))
    for line in compat_warnings(cfg, dict(agent=agent, launcher=opts.launcher,
                                          dist_backend=_dist_backend())):
        _log(f'config: {line}', logging.WARNING)
    return kwargs
