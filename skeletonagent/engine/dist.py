"""Process-group setup that works with and without CUDA.

mmengine's ``init_dist`` assumes CUDA. We initialise ``torch.distributed`` ourselves from the
environment torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``): NCCL when CUDA is available, gloo otherwise. mmengine's Runner then finds the
group already initialised and uses it. ``CUDA_VISIBLE_DEVICES`` is never touched.
"""
from __future__ import annotations

import datetime
import os

import torch
import torch.distributed as dist
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS


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


@MODEL_WRAPPERS.register_module(force=True)
class SkeletonDDP(MMDistributedDataParallel):
    """mmengine's DDP wrapper that also works for CPU modules (gloo).

    mmengine always passes ``device_ids=[LOCAL_RANK]``; DDP rejects device ids for a module
    on the CPU, so they are dropped there.
    """

    def __init__(self, module, device_ids=None, **kwargs):
        if next(module.parameters()).device.type != 'cuda':
            device_ids = None
        super().__init__(module=module, device_ids=device_ids, **kwargs)
