"""Translate a config onto the arguments of mmengine's Runner (the mmengine-schema config).

Users keep writing configs the way PYSKL and the official SkeletonAgent do: ``model``,
``data`` (``videos_per_gpu``, ``workers_per_gpu``, ``train``/``val``/``test``), ``optimizer``,
``optimizer_config``, ``lr_config``, ``total_epochs``, ``checkpoint_config``, ``evaluation``,
``log_config``, ``work_dir``, ``load_from``, ``resume_from``, ``memcached``. :func:`translate`
maps those onto :class:`mmengine.runner.Runner`'s arguments. A config already written for
mmengine (with a ``train_dataloader``) keeps its arguments, and every command-line option is
applied to it as to a PYSKL one, or refused with a :class:`ConfigError` saying why
(:func:`_apply_options`). The hooks of the run plugins (the agent) are added to both.
"""
from __future__ import annotations

import copy
import importlib
import inspect
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from mmengine.config import Config
from mmengine.dist import get_rank
from mmengine.logging import print_log
from mmengine.runner import Runner

from ..datasets.config_view import dataset_leaves, split_dataset_cfg
from .checkpoint import ATOMIC_BACKEND_ARGS
from .compat import compat_warnings
from .config import RunOptions, is_legacy
from .config_keys import LOGGER_HOOKS, check_config
from .errors import ConfigError
from .optim import amp_optim_wrapper_cfg
from .plugins import PluginUse, plugin_uses

#: What a test reports unless ``--eval`` says otherwise.
TEST_METRICS = ('top_k_accuracy', 'mean_class_accuracy')

__all__ = ['TEST_METRICS', 'translate', 'to_runner_kwargs', 'lr_scaling', 'run_work_dir', 'dataset_cfg']


def dataset_cfg(cfg: Config, split: str) -> dict:
    """The dataset config of ``data.<split>`` the run builds: a copy, with the run-level
    settings its file-reading datasets take (``memcached``/``mc_cfg``; ``test_mode`` outside
    training)."""
    found = split_dataset_cfg(cfg, split)
    if found is None or not found[0].startswith('data.'):
        raise ConfigError(f'config has no data.{split}')
    ds = copy.deepcopy(dict(found[1]))
    for _, leaf in dataset_leaves(ds, f'data.{split}'):
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
        dataset=dataset_cfg(cfg, split))



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


def _dist_backend() -> str:
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


#: mmengine Runner arguments an mmengine-schema config may hold (``model`` is built apart).
_RUNNER_ARGS = frozenset(inspect.signature(Runner.__init__).parameters) - {'self', 'model', 'cfg'}
#: Optimizer wrappers ``--amp`` may replace (another type would lose what it does).
_PLAIN_WRAPPERS = (None, 'OptimWrapper', 'AmpOptimWrapper', 'AutocastOptimWrapper')


def _log(message: str, level: int = logging.INFO) -> None:
    if get_rank() == 0:
        print_log(message, logger='current', level=level)


def _refuse(option: str, why: str) -> ConfigError:
    return ConfigError(f'{option} cannot be applied to this mmengine-schema config: {why}')


def _apply_options(kwargs: dict[str, Any], cfg: Config, opts: RunOptions, mode: str) -> None:
    """The command line on an mmengine-schema config, with the same meaning as on a PYSKL
    one: each option is applied, or refused with one line naming what is missing."""
    kwargs['work_dir'] = run_work_dir(cfg, opts, mode)
    evaluator = kwargs.get('test_evaluator')
    metrics = list(evaluator) if isinstance(evaluator, Sequence) else [evaluator]
    ours = [m for m in metrics if isinstance(m, Mapping) and m.get('type') == 'SkeletonAccuracy']
    if opts.metrics:          # tools/test.py --eval
        if not ours:
            raise _refuse('--eval', 'its test_evaluator has no SkeletonAccuracy metric to '
                                    'choose metrics of')
        kwargs['test_evaluator'] = [dict(m, metrics=list(opts.metrics)) if m in ours else m
                                    for m in metrics]
    if opts.out_file and not ours:    # tools/test.py --out
        raise _refuse('--out', 'its test_evaluator has no SkeletonAccuracy metric, which writes '
                               'the per-sample scores')
    if mode == 'test':
        return
    randomness = dict(kwargs.get('randomness') or {})
    if opts.seed is not None:
        randomness['seed'] = opts.seed
    if opts.deterministic:
        randomness['deterministic'] = True
    if randomness:
        kwargs['randomness'] = randomness
    if opts.amp:
        wrapper = dict(kwargs.get('optim_wrapper') or {})
        if not wrapper.get('optimizer'):
            raise _refuse('--amp', 'it has no optim_wrapper.optimizer')
        if wrapper.get('type') not in _PLAIN_WRAPPERS:
            raise _refuse('--amp', f"its optim_wrapper type {wrapper['type']!r} would be "
                                   'replaced by the mixed-precision wrapper')
        amp = amp_optim_wrapper_cfg(opts.amp, dict(wrapper.pop('optimizer')))
        wrapper.pop('type', None)
        kwargs['optim_wrapper'] = dict(wrapper, **amp)
    if opts.validate:
        missing = [k for k in ('val_dataloader', 'val_cfg', 'val_evaluator') if not kwargs.get(k)]
        if missing:
            raise _refuse('--validate', f'it has no {" / ".join(missing)}')
    else:                     # as for a PYSKL config: validation only with --validate
        for key in ('val_dataloader', 'val_cfg', 'val_evaluator'):
            kwargs.pop(key, None)
    if opts.resume:
        kwargs['resume'] = True
        kwargs['load_from'] = None if opts.resume == 'auto' else opts.resume
    hooks = [copy.deepcopy(dict(h)) for h in kwargs.get('custom_hooks') or []]
    kwargs['custom_hooks'] = hooks + list(opts.extra_hooks)


def _mmengine_kwargs(cfg: Config, opts: RunOptions, mode: str) -> dict[str, Any]:
    """An mmengine-schema config: its Runner arguments, with the command line applied."""
    kwargs = {k: copy.deepcopy(cfg.get(k)) for k in _RUNNER_ARGS if cfg.get(k) is not None}
    kwargs['launcher'] = opts.launcher
    kwargs['cfg'] = cfg
    _apply_options(kwargs, cfg, opts, mode)
    return kwargs


def to_runner_kwargs(cfg: Config, opts: RunOptions, mode: str = 'train') -> dict[str, Any]:
    """Keyword arguments for :class:`mmengine.runner.Runner` (without ``model``), for a
    script that holds a config: its keys are checked (:func:`.config_keys.check_config`),
    then it is translated (:func:`translate`). A run resolves its config once
    (:func:`.spec.resolve_run`) instead."""
    check_config(cfg)
    uses = plugin_uses(cfg) if mode == 'train' else ()
    kwargs = translate(cfg, opts, mode, uses)
    if mode == 'train':
        kwargs['custom_hooks'] += [hook for use in uses for hook in use.hooks()]
    return kwargs


def translate(cfg: Config, opts: RunOptions, mode: str,
              plugins: Sequence[PluginUse]) -> dict[str, Any]:
    """Runner arguments (without ``model``) of a checked config in ``mode`` ('train' or
    'test': test builds only what testing needs); logs a warning for a compatibility knob
    that disagrees with what the run and its ``plugins`` use. The plugins' hooks are not
    added here: they are added when the Runner is built (:meth:`.spec.RunSpec.new_runner_kwargs`),
    with what the checks before the run resolved."""
    if not is_legacy(cfg):
        return _mmengine_kwargs(cfg, opts, mode)
    max_epochs = int(cfg.get('total_epochs', 0) or 0)
    if mode == 'train' and max_epochs <= 0:
        raise ConfigError('config needs total_epochs > 0 to train')
    evaluation = dict(cfg.get('evaluation') or {})
    metrics = evaluation.get('metrics', ['top_k_accuracy', 'mean_class_accuracy'])
    # a list: mmengine reads a dict with a 'metrics' key as an Evaluator config
    if mode == 'test':        # a test reports every metric unless told (tools/test.py --eval)
        metrics = opts.metrics or list(TEST_METRICS)
    evaluator = [dict(type='SkeletonAccuracy', metrics=list(metrics),
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
    context = dict(launcher=opts.launcher, dist_backend=_dist_backend(),
                   **{use.section: use.settings for use in plugins})
    for line in compat_warnings(cfg, context, [use.plugin for use in plugins]):
        _log(f'config: {line}', logging.WARNING)
    return kwargs
