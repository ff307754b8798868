"""Translate the PYSKL / official SkeletonAgent config schema onto mmengine's Runner.

Users keep writing configs the way PYSKL and the official SkeletonAgent do: ``model``,
``data`` (``videos_per_gpu``, ``workers_per_gpu``, ``train``/``val``/``test``), ``optimizer``,
``optimizer_config``, ``lr_config``, ``total_epochs``, ``checkpoint_config``, ``evaluation``,
``log_config``, ``work_dir``, ``memcached``. :func:`to_runner_kwargs` maps those onto the
arguments of :class:`mmengine.runner.Runner`; configs already written for mmengine (with a
``train_dataloader``) pass through unchanged.
"""
from __future__ import annotations

import copy
import importlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from mmengine.config import Config

from .checkpoint import ATOMIC_BACKEND_ARGS

#: Keys of the legacy schema that are translated (and therefore not passed on as-is).
LEGACY_KEYS = ('data', 'optimizer', 'optimizer_config', 'lr_config', 'total_epochs',
               'checkpoint_config', 'evaluation', 'log_config', 'workflow', 'dist_params',
               'log_level', 'resume_from', 'load_from', 'memcached', 'mc_cfg', 'auto_scale_lr')


class ConfigError(ValueError):
    """A config that cannot be translated; the message names the config key."""


@dataclass
class RunOptions:
    """What the command line adds to a config."""
    validate: bool = False
    seed: Optional[int] = None
    deterministic: bool = False
    resume: Optional[str] = None        # 'auto', a path, or None
    amp: Union[bool, str] = False      # True (device default), 'float16' or 'bfloat16'
    compile: bool = False
    launcher: str = 'none'
    load_from: Optional[str] = None     # checkpoint for test
    extra_hooks: list = field(default_factory=list)


def load_config(path: str | Path, cfg_options: Optional[dict] = None) -> Config:
    """Read a config file and apply ``--cfg-options`` overrides (dotted keys)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'config file not found: {path}')
    try:
        cfg = Config.fromfile(str(path))
    except FileNotFoundError as exc:  # a missing _base_ (or other file the config reads)
        raise FileNotFoundError(f'config {path} references a missing file: {exc}') from exc
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if not cfg.get('work_dir'):
        cfg.work_dir = str(Path('work_dirs') / path.parent.name / path.stem)
    return cfg


def is_legacy(cfg: Config) -> bool:
    """True for the PYSKL schema (``data=dict(train=...)``), False for mmengine configs."""
    return 'train_dataloader' not in cfg and 'data' in cfg


def _dataset_cfg(cfg: Config, split: str) -> dict:
    data = cfg.get('data') or {}
    if split not in data:
        raise ConfigError(f'config has no data.{split}')
    ds = copy.deepcopy(dict(data[split]))
    if cfg.get('memcached'):
        ds.setdefault('memcached', True)
        if cfg.get('mc_cfg'):
            ds.setdefault('mc_cfg', cfg.mc_cfg)
    if split != 'train':
        ds.setdefault('test_mode', True)
    return ds


def _loader(cfg: Config, split: str, shuffle: bool) -> dict:
    data = cfg.data
    batch = data.get('videos_per_gpu', 1)
    workers = data.get('workers_per_gpu', 1)
    override = dict(data.get(f'{split}_dataloader', {}) or {})
    batch = override.get('videos_per_gpu', batch)
    workers = override.get('workers_per_gpu', workers)
    return dict(
        batch_size=batch,
        num_workers=workers,
        persistent_workers=workers > 0 and split == 'train',
        pin_memory=override.get('pin_memory', False),
        drop_last=override.get('drop_last', False),
        sampler=dict(type='DefaultSampler', shuffle=shuffle),
        collate_fn=dict(type='pose_collate'),
        dataset=_dataset_cfg(cfg, split))


def _schedulers(cfg: Config, max_epochs: int) -> list[dict]:
    lr_config = dict(cfg.get('lr_config') or {})
    policy = lr_config.pop('policy', None)
    by_epoch = lr_config.pop('by_epoch', True)
    scheds: list[dict] = []
    warmup = lr_config.pop('warmup', None)
    if warmup:
        warmup_iters = lr_config.pop('warmup_iters', 0)
        ratio = lr_config.pop('warmup_ratio', 0.1)
        warm_by_epoch = lr_config.pop('warmup_by_epoch', False)
        scheds.append(dict(type='LinearLR', start_factor=ratio, by_epoch=warm_by_epoch,
                           begin=0, end=warmup_iters,
                           convert_to_iter_based=warm_by_epoch))
    if policy is None:
        return scheds
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
    elif policy == 'fixed':
        pass
    else:
        raise ConfigError(f"lr_config.policy={policy!r} is not supported; use 'CosineAnnealing', "
                          "'step' or 'fixed', or write an mmengine param_scheduler list")
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
        return dict(enable=True, base_batch_size=int((cfg.get('data') or {}).get('videos_per_gpu', 1)))
    scale = dict(given)
    scale.setdefault('enable', True)
    if scale['enable'] and not scale.get('base_batch_size'):
        raise ConfigError('auto_scale_lr needs base_batch_size (the total batch the config lr '
                          'is for), or enable=False')
    return scale


def agent_settings(cfg: Config) -> Optional[dict]:
    """The settings of the config's ``AgentHook`` (see :func:`skeletonagent.agent.settings.agent_settings`)."""
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


def _vis_backends(cfg: Config) -> list[dict]:
    """The visualizer's backends: the JSON scalars log (``vis_data/scalars.json``) always,
    TensorBoard event files beside it unless ``log_config.tensorboard=False`` or TensorBoard
    is not installed."""
    backends = [dict(type='LocalVisBackend')]
    if (cfg.get('log_config') or {}).get('tensorboard', True) and _tensorboard_available():
        backends.append(dict(type='TensorboardVisBackend'))
    return backends


def to_runner_kwargs(cfg: Config, opts: RunOptions, mode: str = 'train') -> dict[str, Any]:
    """Keyword arguments for :class:`mmengine.runner.Runner` (without ``model``).

    ``mode`` is ``'train'`` or ``'test'``; test builds only what testing needs.
    """
    if not is_legacy(cfg):
        kwargs = {k: cfg.get(k) for k in (
            'work_dir', 'train_dataloader', 'val_dataloader', 'test_dataloader', 'train_cfg',
            'val_cfg', 'test_cfg', 'optim_wrapper', 'param_scheduler', 'val_evaluator',
            'test_evaluator', 'default_hooks', 'custom_hooks', 'log_processor',
            'visualizer', 'env_cfg', 'randomness') if cfg.get(k) is not None}
        kwargs['launcher'] = opts.launcher
        kwargs['cfg'] = cfg
        return kwargs

    max_epochs = int(cfg.get('total_epochs', 0) or 0)
    if mode == 'train' and max_epochs <= 0:
        raise ConfigError('config needs total_epochs > 0 to train')
    evaluation = dict(cfg.get('evaluation') or {})
    metrics = evaluation.get('metrics', ['top_k_accuracy', 'mean_class_accuracy'])
    # a list: mmengine reads a dict with a 'metrics' key as an Evaluator config
    evaluator = [dict(type='SkeletonAccuracy', metrics=metrics,
                      topk=tuple(evaluation.get('topk', (1, 5))))]
    log_interval = (cfg.get('log_config') or {}).get('interval', 50)
    ckpt = dict(cfg.get('checkpoint_config') or {})

    kwargs: dict[str, Any] = dict(
        work_dir=cfg.work_dir,
        launcher=opts.launcher,
        default_scope='skeletonagent',
        env_cfg=dict(cudnn_benchmark=cfg.get('cudnn_benchmark', False),
                     mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
                     dist_cfg=dict(backend=_dist_backend())),
        log_processor=dict(by_epoch=True, window_size=log_interval),
        visualizer=dict(type='Visualizer', vis_backends=_vis_backends(cfg)),
        log_level=cfg.get('log_level', 'INFO'),
        randomness=dict(seed=opts.seed, deterministic=opts.deterministic),
        cfg=cfg,
    )
    test_loader = dict(test_dataloader=_loader(cfg, 'test', shuffle=False),
                       test_cfg=dict(type='TestLoop'),
                       test_evaluator=copy.deepcopy(evaluator))
    kwargs.update(test_loader)
    if mode == 'test':
        kwargs['load_from'] = opts.load_from
        kwargs['default_hooks'] = dict(
            timer=dict(type='IterTimerHook'),
            logger=dict(type='LoggerHook', interval=log_interval))
        kwargs['custom_hooks'] = [dict(type='ProgressBarHook'), dict(type='BroadcastBNBuffersHook')]
        return kwargs

    optimizer = cfg.get('optimizer')
    if not optimizer:
        raise ConfigError('config needs an optimizer to train')
    grad_clip = (cfg.get('optimizer_config') or {}).get('grad_clip')
    # --amp: AmpOptimWrapper (float16) on CUDA, bfloat16 autocast on CPU (engine/optim.py)
    from .optim import amp_optim_wrapper_cfg
    optim_wrapper = amp_optim_wrapper_cfg(opts.amp, copy.deepcopy(dict(optimizer)))
    if grad_clip:
        optim_wrapper['clip_grad'] = dict(grad_clip)

    val_interval = int(evaluation.get('interval', 1))
    kwargs.update(
        train_dataloader=_loader(cfg, 'train', shuffle=True),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs, val_interval=val_interval),
        optim_wrapper=optim_wrapper,
        param_scheduler=_schedulers(cfg, max_epochs) or None,
        default_hooks=dict(
            timer=dict(type='IterTimerHook'),
            logger=dict(type='LoggerHook', interval=log_interval),
            param_scheduler=dict(type='ParamSchedulerHook'),
            checkpoint=dict(type='CheckpointHook', interval=ckpt.get('interval', 1),
                            by_epoch=True, max_keep_ckpts=ckpt.get('max_keep_ckpts', -1),
                            save_best='acc/top1' if opts.validate else None, rule='greater',
                            backend_args=ATOMIC_BACKEND_ARGS),
            sampler_seed=dict(type='DistSamplerSeedHook')),
        custom_hooks=[dict(type='LatestCheckpointLinkHook'), dict(type='ProgressBarHook'),
                      dict(type='RandomStateHook'), dict(type='BroadcastBNBuffersHook'),
                      dict(type='RunInfoHook')]
        + list(opts.extra_hooks),
        auto_scale_lr=lr_scaling(cfg),
    )
    agent = agent_settings(cfg)
    if agent is not None:
        kwargs['custom_hooks'].append(dict(type='AgentHook', **agent))
    if opts.validate:
        kwargs.update(val_dataloader=_loader(cfg, 'val', shuffle=False),
                      val_cfg=dict(type='ValLoop'), val_evaluator=evaluator)
    if opts.resume:
        kwargs['resume'] = True
        kwargs['load_from'] = None if opts.resume == 'auto' else opts.resume
    return kwargs
