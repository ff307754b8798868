"""Activation checkpointing of GCN blocks (mmcv's ``with_cp``) that keeps batch norm exact.

``torch.utils.checkpoint`` runs a block's forward twice: once without keeping activations and
again in backward. ``with_cp=True`` keeps only the block's input; ``with_cp='selective'`` also
keeps the outputs of the block's products (convolutions, matrix products, softmax) and
recomputes only the cheap operators between them (batch norms, activations, additions,
concatenations). Selective saves less memory than checkpointing everything and costs less
time (``bench/train_step.py``, paths ``sel`` and ``cp``; figures in ``bench/README.md``).
A training-mode batch norm would
update its running statistics (and ``num_batches_tracked``) on both runs. The running
statistics are put back after the recomputation, so a checkpointed step changes exactly what
an ordinary step changes.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import partial
from typing import Callable, Union

import torch
import torch.nn as nn
from torch.utils.checkpoint import CheckpointPolicy, checkpoint, create_selective_checkpoint_contexts

__all__ = ['checkpoint_block', 'running_stats_frozen', 'check_with_cp', 'WithCp']

#: a block's checkpointing: off, all of it, or everything but the products
WithCp = Union[bool, str]


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


#: the operators whose outputs a selective checkpoint keeps: the products (convolutions and
#: matrix products), whose recomputation would cost as much as the forward
SAVED_OPS = frozenset({torch.ops.aten.convolution.default, torch.ops.aten.mm.default, torch.ops.aten.bmm.default,
                       torch.ops.aten.addmm.default, torch.ops.aten._softmax.default})


def check_with_cp(with_cp: WithCp, owner: str) -> WithCp:
    """``with_cp`` when it is False, True or 'selective'; else a ValueError naming ``owner``."""
    if with_cp not in (False, True, 'selective'):
        raise ValueError(f"{owner}: with_cp must be False, True or 'selective', got {with_cp!r}")
    return with_cp


def _keep_products(ctx, op, *args, **kwargs) -> CheckpointPolicy:
    return CheckpointPolicy.MUST_SAVE if op in SAVED_OPS else CheckpointPolicy.PREFER_RECOMPUTE


def _contexts(module: nn.Module) -> tuple[contextlib.AbstractContextManager, contextlib.AbstractContextManager]:
    return contextlib.nullcontext(), running_stats_frozen(module)


def _selective_contexts(module: nn.Module) -> tuple[contextlib.AbstractContextManager,
                                                     contextlib.AbstractContextManager]:
    forward, recompute = create_selective_checkpoint_contexts(_keep_products)

    @contextlib.contextmanager
    def both() -> Iterator[None]:
        with running_stats_frozen(module), recompute:
            yield
    return forward, both()


def checkpoint_block(module: nn.Module, fn: Callable[..., torch.Tensor], *args: torch.Tensor,
                     selective: bool = False) -> torch.Tensor:
    """``fn(*args)``, checkpointed when autograd records (non-reentrant, random state preserved
    for dropout); ``module`` holds the batch norms ``fn`` runs; ``selective`` keeps the
    products' outputs (see the module's docstring)."""
    if not torch.is_grad_enabled():
        return fn(*args)
    if torch.compiler.is_compiling():
        # compiled, the recomputation is part of the backward graph, which replays no buffer
        # update (and torch.compile accepts no context_fn but selective-checkpoint modes)
        return checkpoint(fn, *args, use_reentrant=False)
    return checkpoint(fn, *args, use_reentrant=False,
                      context_fn=partial(_selective_contexts if selective else _contexts, module))
