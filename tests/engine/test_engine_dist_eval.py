"""Distributed evaluation: every rank evaluates with rank 0's BatchNorm statistics (the
official DistEvalHook's broadcast_bn_buffer), so figures do not depend on the rank; and the
learning rate follows the total batch (auto_scale_lr)."""
from __future__ import annotations

import copy
import json
import os
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from skeletonagent.engine import RunOptions, load_config, to_runner_kwargs
from skeletonagent.engine.config import ConfigError
from skeletonagent.engine.translate import lr_scaling

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _demo_model():
    from skeletonagent.engine.runner import build_model
    cfg = load_config(ROOT / 'configs/demo/j.py')
    return build_model(cfg, for_training=False)


def _worker(rank: int, port: int, out: str, hook_on: bool) -> None:
    import torch.distributed as dist

    from skeletonagent.engine.dist import BroadcastBNBuffersHook
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        model = _demo_model()                      # same weights on both ranks
        probe = torch.randn(2, 1, 2, 32, 25, 3, generator=torch.Generator().manual_seed(7))
        # each rank's own shard moves its BatchNorm statistics differently
        model.train()
        shard = torch.randn(4, 2, 32, 25, 3, generator=torch.Generator().manual_seed(100 + rank))
        with torch.no_grad():
            for _ in range(3):
                model.extract_feat(shard * (1 + rank))
        model.eval()
        before = model(probe, mode='tensor')
        if hook_on:
            BroadcastBNBuffersHook().before_val_epoch(SimpleNamespace(model=model))
        after = model(probe, mode='tensor')
        torch.save(dict(before=before, after=after), os.path.join(out, f'rank{rank}.pt'))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize('hook_on', [True, False])
def test_two_gloo_ranks_evaluate_with_rank0_statistics(tmp_path, hook_on):
    import torch.multiprocessing as mp
    mp.start_processes(_worker, args=(_free_port(), str(tmp_path), hook_on), nprocs=2, join=True,
                       start_method='fork')
    r0, r1 = (torch.load(tmp_path / f'rank{r}.pt') for r in (0, 1))
    assert not torch.allclose(r0['before'], r1['before'])    # the ranks did drift apart
    if hook_on:
        torch.testing.assert_close(r1['after'], r0['before'], rtol=0, atol=0)
        torch.testing.assert_close(r0['after'], r0['before'], rtol=0, atol=0)
    else:
        assert not torch.allclose(r1['after'], r0['after'])


def test_broadcast_is_a_no_op_in_one_process():
    from skeletonagent.engine.dist import broadcast_bn_buffers
    assert broadcast_bn_buffers(torch.nn.BatchNorm1d(3)) == 0


def test_runner_hooks_broadcast_before_validation_and_test():
    cfg = load_config(ROOT / 'configs/demo/j.py')
    train = to_runner_kwargs(copy.deepcopy(cfg), RunOptions(validate=True))
    test = to_runner_kwargs(copy.deepcopy(cfg), RunOptions(load_from='x.pth'), mode='test')
    for kwargs in (train, test):
        assert 'BroadcastBNBuffersHook' in [h['type'] for h in kwargs['custom_hooks']]
    assert 'RunInfoHook' in [h['type'] for h in train['custom_hooks']]


# ---------------------------------------------------------------------------- auto_scale_lr
def test_lr_follows_the_total_batch():
    cfg = load_config(ROOT / 'configs/ntu60_xsub/j.py')
    assert to_runner_kwargs(copy.deepcopy(cfg), RunOptions())['auto_scale_lr'] == \
        dict(enable=True, base_batch_size=16)
    # an official config without the key: its lr is for one GPU of videos_per_gpu samples
    cfg.pop('auto_scale_lr')
    cfg.data.videos_per_gpu = 24
    assert lr_scaling(cfg) == dict(enable=True, base_batch_size=24)
    cfg.auto_scale_lr = dict(enable=False)
    assert lr_scaling(cfg) == dict(enable=False)
    cfg.auto_scale_lr = dict(enable=True)
    with pytest.raises(ConfigError, match='base_batch_size'):
        lr_scaling(cfg)


def test_scaled_lr_in_a_runner_and_its_start_block(tmp_path):
    """A real mmengine Runner built from the demo config: the optimizer's lr is the config lr
    times total batch / base batch, and the start block says so."""
    from mmengine.runner import Runner

    from skeletonagent.engine.hooks import RunInfoHook, _lr_line
    from skeletonagent.engine.runner import build_model
    cfg = load_config(ROOT / 'configs/demo/j.py',
                      {'work_dir': str(tmp_path), 'auto_scale_lr': dict(base_batch_size=8),
                       'data.videos_per_gpu': 16})
    kwargs = to_runner_kwargs(cfg, RunOptions())
    runner = Runner(model=build_model(cfg, for_training=False), **kwargs)
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    runner.scale_lr(runner.optim_wrapper, runner.auto_scale_lr)
    runner._train_loop = runner.build_train_loop(runner._train_loop)
    text, numbers = _lr_line(runner)
    assert numbers['lr'] == pytest.approx(cfg.optimizer.lr * 16 / 8)
    assert text == (f'16 per process x 1 process = 16; lr {cfg.optimizer.lr * 2:g} '
                    f'(config lr {cfg.optimizer.lr:g} for a batch of 8, scaled by 2)')
    runner.message_hub.update_info('run_info/agent', {'agent texts': 'from <here>'})
    RunInfoHook().before_train(runner)
    info = json.loads((tmp_path / 'run_info.json').read_text(encoding='utf-8'))
    assert info['lines']['batch and lr'] == text and info['lines']['agent texts'] == 'from <here>'
    assert info['total_batch'] == 16 and info['lr'] == pytest.approx(cfg.optimizer.lr * 2)
    # the report shows the same block (escaped)
    from skeletonagent.evaluation.report import read_run_info
    assert read_run_info(tmp_path)['batch and lr'] == text
