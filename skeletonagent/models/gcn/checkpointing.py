"""Activation checkpointing of GCN blocks (mmcv's ``with_cp``) that keeps batch norm exact.

``torch.utils.checkpoint`` runs a block's forward twice: once without keeping activations and
again in backward. A training-mode batch norm would update its running statistics (and
``num_batches_tracked``) on both runs. The running statistics are put back after the
recomputation, so a checkpointed step changes exactly what an ordinary step changes.
"""
from __future__ import annotations

import contextlib
from functools import partial
from typing import Callable, Iterator

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

__all__ = ['checkpoint_block', 'running_stats_frozen']


@contextlib.contextmanager
def running_stats_frozen(module: nn.Module) -> Iterator[None]:
    """The running statistics (mean, variance, ``num_batches_tracked``) of the batch norms of
    ``module`` are the same after the context as before it; inside, the batch norms run as
    usual (batch statistics in training mode, and the same saved tensors for backward)."""
    saved = [(buf, buf.clone()) for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
             for buf in (m.running_mean, m.running_var, m.num_batches_tracked) if buf is not None]
    try:
        yield
    finally:
        with torch.no_grad():
            for buf, value in saved:
                buf.copy_(value)


def _contexts(module: nn.Module) -> tuple[contextlib.AbstractContextManager, contextlib.AbstractContextManager]:
    return contextlib.nullcontext(), running_stats_frozen(module)


def checkpoint_block(module: nn.Module, fn: Callable[..., torch.Tensor], *args: torch.Tensor) -> torch.Tensor:
    """``fn(*args)``, checkpointed when autograd records (non-reentrant, random state preserved
    for dropout); ``module`` holds the batch norms ``fn`` runs."""
    if not torch.is_grad_enabled():
        return fn(*args)
    if torch.compiler.is_compiling():
        # compiled, the recomputation is part of the backward graph, which replays no buffer
        # update (and torch.compile accepts no context_fn but selective-checkpoint modes)
        return checkpoint(fn, *args, use_reentrant=False)
    return checkpoint(fn, *args, use_reentrant=False, context_fn=partial(_contexts, module))
