"""Mixed precision for ``--amp``: which optimizer wrapper, and the CPU one mmengine lacks.

* CUDA: mmengine's ``AmpOptimWrapper`` (autocast + dynamic loss scaling), float16 by default or
  bfloat16 when asked.
* CPU: :class:`AutocastOptimWrapper`, bfloat16 autocast around the forward. mmengine's
  ``AmpOptimWrapper`` refuses to start without an accelerator, and bfloat16 keeps float32's
  exponent range, so no loss scaling is needed.

The model stays float32 (master weights, optimizer state, batch-norm statistics); autocast runs
the convolutions and matrix products in the low precision, as on the GPU.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper

from ..registry import OPTIM_WRAPPERS

__all__ = ['AutocastOptimWrapper', 'amp_optim_wrapper_cfg', 'cpu_has_native_bf16']

AmpSetting = Union[bool, str, None]


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bfloat16 natively on this CPU (AVX512-BF16 or AMX). Without them it
    emulates bfloat16 and a bf16 autocast step is far slower than float32, where a CPU with
    native bfloat16 runs it far faster (``bench/train_step.py``; figures for both CPUs in
    ``bench/README.md``)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):    # a torch build without oneDNN
        return False


@OPTIM_WRAPPERS.register_module()
class AutocastOptimWrapper(OptimWrapper):
    """An ``OptimWrapper`` whose :meth:`optim_context` runs the forward under
    ``torch.autocast(device_type, dtype)``, without loss scaling (for bfloat16).

    Args:
        dtype: 'bfloat16' (or a ``torch.dtype``); float16 needs loss scaling: use mmengine's
            ``AmpOptimWrapper`` on a GPU for it.
        device_type: the autocast device, 'cpu' by default.
        **kwargs: ``OptimWrapper`` arguments (``optimizer``, ``accumulative_counts``,
            ``clip_grad``).
    """

    def __init__(self, dtype: str | torch.dtype = 'bfloat16', device_type: str = 'cpu',
                 **kwargs) -> None:
        super().__init__(**kwargs)
        cast = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        if cast is not torch.bfloat16:
            raise ValueError(f'AutocastOptimWrapper: dtype must be bfloat16 (no loss scaling), got {dtype!r}; '
                             'float16 needs AmpOptimWrapper on a GPU')
        self.cast_dtype = cast
        self.device_type = device_type
        print_log(f'mixed precision: bfloat16 autocast on {device_type} (float32 weights, no loss scaling)',
                  logger='current')
        if device_type == 'cpu' and not cpu_has_native_bf16():
            print_log('--amp: this CPU has no native bfloat16 (AVX512-BF16 or AMX), so bfloat16 is '
                      'emulated and each step runs several times slower than float32 (6.9x the '
                      'float32 reference measured on an AVX2-only CPU): train without --amp here',
                      logger='current', level=logging.WARNING)

    @contextlib.contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        with super().optim_context(model), torch.autocast(device_type=self.device_type, dtype=self.cast_dtype):
            yield


def amp_optim_wrapper_cfg(amp: AmpSetting, optimizer: dict, cuda: bool | None = None) -> dict:
    """The ``optim_wrapper`` config for ``--amp``.

    Args:
        amp: False/None (float32), True (the device's default: float16 on CUDA, bfloat16 on
            CPU), or 'float16' / 'bfloat16'.
        optimizer: the optimizer config.
        cuda: whether training runs on CUDA (default: ``torch.cuda.is_available()``, where
            mmengine's Runner puts the model).
    """
    if not amp:
        return dict(type='OptimWrapper', optimizer=optimizer)
    if amp is not True and amp not in ('float16', 'bfloat16'):
        raise ValueError(f"amp must be True, 'float16' or 'bfloat16', got {amp!r}")
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if cuda:
        return dict(type='AmpOptimWrapper', dtype='float16' if amp is True else amp, optimizer=optimizer)
    if amp == 'float16':
        raise ValueError("amp='float16' needs a GPU (loss scaling); on CPU use bfloat16 (--amp)")
    return dict(type='AutocastOptimWrapper', dtype='bfloat16', device_type='cpu', optimizer=optimizer)
