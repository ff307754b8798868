"""Process-group setup that works with and without CUDA.

mmengine's ``init_dist`` assumes CUDA. We initialise ``torch.distributed`` ourselves from the
environment torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``): NCCL when CUDA is available, gloo otherwise. mmengine's Runner then finds the
group already initialised and uses it. ``CUDA_VISIBLE_DEVICES`` is never touched.
"""
from __future__ import annotations

import datetime
import inspect
import os

import torch
import torch.distributed as dist
from mmengine.hooks import Hook
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS
from torch.nn.modules.batchnorm import _BatchNorm

from ..registry import HOOKS
from ..utils.parent_death import end_with_parent


def launched_by_torchrun() -> bool:
    """True when the environment describes a multi-process (or torchrun) launch."""
    return 'RANK' in os.environ and 'WORLD_SIZE' in os.environ


def init_distributed(backend: str | None = None, timeout_s: int = 1800) -> str:
    """Initialise the default process group from torchrun's environment.

    Returns the launcher name for mmengine's Runner: ``'pytorch'`` when a group is up,
    ``'none'`` for a plain single process.
    """
    if not launched_by_torchrun():
        return 'none'
    # a rank ends when its launcher dies, however it dies (torchrun starts each rank in a
    # session of its own: a kill -9 of the launcher's group would not reach it)
    end_with_parent()
    if dist.is_available() and dist.is_initialized():
        return 'pytorch'
    use_cuda = torch.cuda.is_available()
    if backend is None:
        backend = 'nccl' if use_cuda else 'gloo'
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)) % torch.cuda.device_count())
    dist.init_process_group(backend=backend, init_method='env://',
                            timeout=datetime.timedelta(seconds=timeout_s))
    return 'pytorch'


_DDP_TAKES_FORWARD_SYNC = 'forward_sync_buffers' in inspect.signature(
    torch.nn.parallel.DistributedDataParallel.__init__).parameters


@MODEL_WRAPPERS.register_module(force=True)
class SkeletonDDP(MMDistributedDataParallel):
    """mmengine's DDP wrapper that also works for CPU modules (gloo).

    mmengine always passes ``device_ids=[LOCAL_RANK]``; DDP rejects device ids for a module
    on the CPU, so they are dropped there.
    """

    def __init__(self, module, device_ids=None, **kwargs):
        if next(module.parameters()).device.type != 'cuda':
            device_ids = None
        if 'broadcast_buffers' in kwargs and _DDP_TAKES_FORWARD_SYNC:
            # torch >= 2.12 deprecates broadcast_buffers (a FutureWarning per rank); its
            # forward_sync_buffers=False keeps buffers rank-local during training as
            # broadcast_buffers=False did, and syncs them once at init, when every rank holds
            # the same values anyway (the same initialisation or the same checkpoint)
            kwargs['forward_sync_buffers'] = bool(kwargs.pop('broadcast_buffers'))
        super().__init__(module=module, device_ids=device_ids, **kwargs)


def broadcast_bn_buffers(model, src: int = 0) -> int:
    """Copy rank ``src``'s BatchNorm running statistics into every rank's model.

    DDP here does not broadcast buffers (``broadcast_buffers=False``, as PYSKL and the
    official code), so each rank's running mean / variance follow its own shard. The official
    ``DistEvalHook`` broadcasts rank 0's before every evaluation (mmcv's
    ``broadcast_bn_buffer=True``), so that every rank evaluates with the statistics the saved
    checkpoint holds; this does the same. Returns the number of BatchNorm layers broadcast
    (0 outside a distributed run). ``SyncBatchNorm`` layers are skipped: their statistics are
    the same on every rank already.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return 0
    count = 0
    for module in model.modules():
        if isinstance(module, _BatchNorm) and not isinstance(module, torch.nn.SyncBatchNorm) \
                and module.track_running_stats and module.running_mean is not None:
            dist.broadcast(module.running_mean, src)
            dist.broadcast(module.running_var, src)
            count += 1
    return count


@HOOKS.register_module()
class BroadcastBNBuffersHook(Hook):
    """Before each validation and test: every rank takes rank 0's BatchNorm statistics
    (see :func:`broadcast_bn_buffers`), so the figures and the best checkpoint do not depend
    on which rank evaluated which samples. ``sync_bn='torch'`` in the config (SyncBatchNorm)
    is the other way to keep ranks in step."""

    priority = 'ABOVE_NORMAL'

    def _broadcast(self, runner) -> None:
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        broadcast_bn_buffers(model)

    def before_val_epoch(self, runner) -> None:
        self._broadcast(runner)

    def before_test_epoch(self, runner) -> None:
        self._broadcast(runner)
