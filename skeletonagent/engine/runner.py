"""Build mmengine Runners from our configs, and the train / test entry points the tools call."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from mmengine.config import Config
from mmengine.dist import get_rank
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from .checkpoint import (PlainCheckpointHook, find_resume_checkpoint, load_checkpoint_file,
                         load_model_weights, register_checkpoint_globals,
                         remove_stale_temp_files)
from .config import RunOptions, resolve_resume, to_runner_kwargs
from .memcached_server import serving_memcached
from ..registry import explain_unknown_types
from .checkpoint import check_checkpoint_config


def _register_all() -> None:
    """Import every room that registers something the configs may name."""
    from .. import datasets, evaluation, models  # noqa: F401
    from ..datasets import demo  # noqa: F401
    from ..agent import hook  # noqa: F401
    from . import finetune, hooks, logs  # noqa: F401


def build_model(cfg: Config, for_training: bool):
    """Build the recognizer; load the text encoder only when training needs it."""
    _register_all()
    from ..registry import MODELS
    from .config import explain_unexpected_arguments
    with explain_unexpected_arguments(cfg.model, 'model'):  # a key no class takes, by path
        model = MODELS.build(cfg.model)
    if for_training and hasattr(model, 'init_text_encoder'):
        model.init_text_encoder()
    return model


def compile_backbone(model) -> None:
    """``torch.compile`` the backbone's forward (the heavy, graph-friendly part).

    Compiling the bound method instead of wrapping the module keeps the state_dict keys (no
    ``_orig_mod.`` prefix), so checkpoints stay interchangeable with uncompiled runs. Mixup,
    losses and text lookups stay eager: they hold Python-side randomness and caches.
    """
    import torch
    backbone = model.backbone
    backbone.forward = torch.compile(backbone.forward)
    print_log('compiled the backbone with torch.compile (the first iterations are slow)',
              logger='current')


def check_agent_sources(cfg: Config) -> None:
    """Fail at once, before the model, the data or any LLM call, when the agent's texts,
    masks or prompts the config names are missing (e.g. the official dialogues were not
    imported): the error says how to import them or how to generate new ones."""
    from .config import agent_settings
    settings = agent_settings(cfg)
    if settings is None:
        return
    from ..agent.sources import resolve_sources
    resolve_sources(settings, settings.get('modality', 'j'), config=getattr(cfg, 'filename', None))


def build_runner(cfg: Config, opts: RunOptions, mode: str = 'train') -> Runner:
    """An mmengine Runner for ``cfg`` in ``mode`` ('train' or 'test')."""
    _register_all()
    if mode == 'train':
        check_agent_sources(cfg)
        resolve_resume(cfg, opts)   # resume_from in the config is --resume PATH
    resuming = mode == 'train' and bool(opts.resume)
    if mode == 'train' and opts.resume == 'auto':
        found = find_resume_checkpoint(cfg.work_dir)
        opts.resume = str(found) if found else None
        if found and get_rank() == 0:
            print_log(f'resuming from {found}', logger='current')
    if resuming and get_rank() == 0:
        # half-written files of a killed run (its temporary names), before anything writes
        stale = remove_stale_temp_files(cfg.work_dir)
        if stale:
            print_log(f'removed {len(stale)} temporary files a killed run left: '
                      + ', '.join(str(p) for p in stale[:5]), logger='current')
    if mode == 'train' and opts.resume:  # refuse a checkpoint of another stream / dataset
        check_checkpoint_config(load_checkpoint_file(opts.resume), cfg, opts.resume)
    kwargs = to_runner_kwargs(cfg, opts, mode)
    model = build_model(cfg, for_training=(mode == 'train'))
    if opts.compile:
        compile_backbone(model)
    if opts.launcher != 'none':
        # mmengine reads the wrapper settings from the config it is given
        kwargs['cfg'].model_wrapper_cfg = dict(type='SkeletonDDP', broadcast_buffers=False,
                                               find_unused_parameters=False)
    register_checkpoint_globals()  # mmengine's loader reads PYSKL / official checkpoints
    runner = Runner(model=model, **kwargs)
    runner.register_hook(PlainCheckpointHook())  # checkpoints any weights_only loader reads
    return runner


def _set_out_file(runner: Runner, out_file: Optional[str]) -> None:
    for metric in runner.test_evaluator.metrics:
        if hasattr(metric, 'out_file'):
            metric.out_file = out_file


def run_test(runner: Runner, out_file: Optional[str]) -> dict:
    """Test with the runner's current weights; dump per-sample scores to ``out_file``."""
    runner._test_loop = runner.build_test_loop(runner._test_loop)  # builds the evaluator
    _set_out_file(runner, out_file)
    metrics = runner.test()
    if get_rank() == 0:
        shown = ', '.join(f'{k}: {v:.4f}' for k, v in metrics.items())
        print_log(f'test results ({out_file or "no dump"}): {shown}', logger='current',
                  level=logging.INFO)
    return metrics


@explain_unknown_types()  # an unknown config type names the close registered ones
@serving_memcached  # memcached=True: start / fill / stop the server around the run
def train(cfg: Config, opts: RunOptions, test_last: bool = False,
          test_best: bool = False) -> dict:
    """Train; optionally test the last and the best checkpoint. Returns the test metrics."""
    runner = build_runner(cfg, opts, 'train')
    runner.train()
    results: dict = {}
    work_dir = Path(runner.work_dir)
    if test_last:
        results['last'] = run_test(runner, str(work_dir / 'last_pred.pkl'))
    if test_best:
        best = runner.message_hub.get_info('best_ckpt')
        if best and Path(best).is_file():
            runner.load_checkpoint(best)
            results['best'] = run_test(runner, str(work_dir / 'best_pred.pkl'))
        elif get_rank() == 0:
            print_log('--test-best: no best checkpoint was kept (train with --validate); '
                      'skipping', logger='current', level=logging.WARNING)
    if results and get_rank() == 0:
        write_report_safely(work_dir, work_dir / ('best_pred.pkl' if 'best' in results
                                                  else 'last_pred.pkl'))
    return results


def write_report_safely(work_dir: Path, pred: Path) -> Optional[Path]:
    """The evaluation report (``work_dir/report/index.html``); a failure is logged as a
    warning and never ends the run."""
    try:
        from ..evaluation.report import write_report
        index = write_report(work_dir, pred=pred)
    except Exception as exc:  # noqa: BLE001 - the run's results are already saved
        print_log(f'could not write the evaluation report: {type(exc).__name__}: {exc}',
                  logger='current', level=logging.WARNING)
        return None
    print_log(f'evaluation report: {index}', logger='current')
    return index


@explain_unknown_types()  # an unknown config type names the close registered ones
@serving_memcached  # memcached=True: start / fill / stop the server around the run
def test(cfg: Config, checkpoint: str, opts: RunOptions, out_file: Optional[str]) -> dict:
    """Evaluate ``checkpoint`` on the test split.

    The weights are loaded strictly (mmengine's ``load_from`` only warns about missing keys):
    a checkpoint that does not fit the config's model raises
    :class:`~.checkpoint.CheckpointMismatchError` listing the missing and unexpected keys."""
    ckpt = load_checkpoint_file(checkpoint)  # clear error for a missing / truncated / unsafe file
    check_checkpoint_config(ckpt, cfg, checkpoint)  # another stream / dataset
    opts.load_from = None
    runner = build_runner(cfg, opts, 'test')
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    load_model_weights(model, ckpt, name=checkpoint)
    if get_rank() == 0:
        print_log(f'loaded checkpoint {checkpoint}', logger='current')
    from ..models.gcn import fuse_for_inference
    fuse_for_inference(model)   # conv + BN folded once; this runner only tests
    return run_test(runner, out_file)
