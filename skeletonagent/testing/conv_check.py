"""Run every convolution the backbones call, alone, forward and backward, under heap checks.

oneDNN picks its convolution kernels by the CPU's instruction set, the tensors' shapes and
their memory layout, so a kernel bug can show on one machine and one channel count only (on
AVX-512 the backward of a strided 1×1 convolution on channels-last input with few channels
corrupts the heap: ``docs/upstream/onednn_strided_pointwise.md``). This module records the
``aten.convolution`` calls of one training step (and one fused inference forward) of each
backbone, on the three joint counts of the layouts (NTU 25, COCO 17, hand 21) and the paths a
run may take (plain, ``with_cp=True``, ``'selective'``, bfloat16 autocast), then replays each
distinct call on fresh tensors of the same sizes, strides and dtype, forward and backward.

Run it in a child process whose glibc checks the heap (see :func:`heap_checked_env`): a
corrupting kernel then ends the child with a heap message or a signal, and the last
``replay`` line on its output names the call. ``python -m skeletonagent.testing.conv_check``
(``--help``) is what ``tests/models/test_conv_kernels.py`` runs; a user can run it on a new machine.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from skeletonagent.registry import MODELS
from skeletonagent.skeleton import get_layout
from skeletonagent.utils.cpu import onednn_isa

__all__ = ['ConvCall', 'record_convolutions', 'replay', 'backbone_cases', 'heap_checked_env', 'main']

#: glibc's heap-checking allocator: since glibc 2.34 ``MALLOC_CHECK_`` acts only with it preloaded
MALLOC_DEBUG_LIBS = ('/lib/x86_64-linux-gnu/libc_malloc_debug.so.0', '/lib/aarch64-linux-gnu/libc_malloc_debug.so.0',
                     '/usr/lib64/libc_malloc_debug.so.0', '/lib64/libc_malloc_debug.so.0')

#: the joint counts of the layouts a backbone is built for
LAYOUTS = ('nturgb+d', 'coco', 'handmp')
PATHS = ('plain', 'cp', 'selective', 'bf16', 'fused')


@dataclass(frozen=True)
class ConvCall:
    """One ``aten.convolution`` call: what selects oneDNN's kernel (sizes, strides, dtype and
    the convolution's parameters)."""

    input_size: tuple[int, ...]
    input_stride: tuple[int, ...]
    weight_size: tuple[int, ...]
    weight_stride: tuple[int, ...]
    has_bias: bool
    dtype: torch.dtype
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    backward: bool

    def describe(self) -> str:
        layout = 'channels-last' if _is_channels_last(self.input_size, self.input_stride) else 'contiguous' \
            if _is_contiguous(self.input_size, self.input_stride) else f'strides {self.input_stride}'
        return (f'input {list(self.input_size)} {layout} {str(self.dtype).replace("torch.", "")}, '
                f'weight {list(self.weight_size)}, stride {list(self.stride)}, padding {list(self.padding)}, '
                f'dilation {list(self.dilation)}' + (', +backward' if self.backward else ''))


def _is_contiguous(size: tuple[int, ...], stride: tuple[int, ...]) -> bool:
    return torch.empty_strided(size, stride, device='meta').is_contiguous()


def _is_channels_last(size: tuple[int, ...], stride: tuple[int, ...]) -> bool:
    return len(size) == 4 and torch.empty_strided(size, stride, device='meta').is_contiguous(
        memory_format=torch.channels_last)


class _Recorder(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[ConvCall] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten.convolution.default:
            x, w, b, stride, padding, dilation, transposed, _, groups = args
            if not transposed:
                self.calls.append(ConvCall(tuple(x.shape), tuple(x.stride()), tuple(w.shape), tuple(w.stride()),
                                           b is not None, x.dtype, tuple(stride), tuple(padding), tuple(dilation),
                                           int(groups), x.requires_grad or w.requires_grad))
        return func(*args, **(kwargs or {}))


def record_convolutions(step: Callable[[], None]) -> list[ConvCall]:
    """The convolutions ``step()`` calls (its backward's recomputations included), in order."""
    recorder = _Recorder()
    with recorder:
        step()
    return recorder.calls


def replay(call: ConvCall, repeats: int = 3) -> None:
    """Run ``call`` on random tensors of its sizes, strides and dtype, with its backward when
    the recorded call needed one; ``repeats`` times, so that a corrupted heap is used again."""
    gen = torch.Generator().manual_seed(0)
    for _ in range(repeats):
        x = torch.empty_strided(call.input_size, call.input_stride, dtype=call.dtype)
        w = torch.empty_strided(call.weight_size, call.weight_stride, dtype=call.dtype)
        with torch.no_grad():
            x.copy_(torch.randn(call.input_size, generator=gen))
            w.copy_(torch.randn(call.weight_size, generator=gen))
        b = torch.randn(call.weight_size[0], generator=gen).to(call.dtype) if call.has_bias else None
        if call.backward:
            for t in (x, w, b):
                if t is not None:
                    t.requires_grad_()
        y = torch.ops.aten.convolution(x, w, b, list(call.stride), list(call.padding), list(call.dilation),
                                       False, [0] * len(call.padding), call.groups)
        if call.backward:
            y.backward(torch.randn(y.shape, generator=gen).to(y.dtype))


def _backbone_cfg(kind: str, layout: str, base_channels: int, with_cp: bool | str) -> dict:
    graph = dict(layout=layout, mode='spatial')
    small = dict(base_channels=base_channels, num_stages=4, inflate_stages=(3,), down_stages=(3,))
    if kind == 'stgcn':
        return dict(type='STGCN', graph_cfg=graph, in_channels=3, gcn_adaptive='init', gcn_with_res=True,
                    tcn_type='mstcn', with_cp=with_cp, **small)
    backbone = 'GCN_Module_LLM_K400' if kind == 'k400' else 'GCN_Module_LLM'
    return dict(type=backbone, graph_cfg=graph, in_channels=3, num_person=2, num_classes=4, text_dim=8,
                with_cp=with_cp, **small)


def backbone_cases(base_channels: int = 8, frames: int = 100,
                   layouts: tuple[str, ...] = LAYOUTS, paths: tuple[str, ...] = PATHS
                   ) -> Iterator[tuple[str, Callable[[], None]]]:
    """``(name, step)`` for every backbone × layout × path; ``step()`` runs that path once on a
    batch of 2 samples × 2 persons × ``frames`` frames (a training step's forward and backward,
    or for 'fused' one inference forward of the fused, evaluated backbone)."""
    for kind in ('agent', 'k400', 'stgcn'):
        for layout in layouts:
            joints = len(get_layout(layout).joint_names)
            for path in paths:
                with_cp = {'cp': True, 'selective': 'selective'}.get(path, False)
                cfg = _backbone_cfg(kind, layout, base_channels, with_cp)

                def step(cfg=cfg, path=path, joints=joints) -> None:
                    torch.manual_seed(0)
                    model = MODELS.build(cfg)
                    x = torch.randn(2, 2, frames, joints, 3)
                    if path == 'fused':
                        with torch.no_grad():
                            model.eval().fuse()(x)
                        return
                    model.train()
                    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=path == 'bf16'):
                        out = model(x)
                    feat = out[0] if isinstance(out, tuple) else out
                    feat.float().sum().backward()

                yield f'{kind}/{layout}/{path}', step


def heap_checked_env(env: dict | None = None) -> dict:
    """``env`` (default: this process's) with glibc's heap checks on: ``MALLOC_CHECK_=3`` and,
    where glibc keeps them in a separate library (2.34 and later), that library preloaded.
    The project's own malloc tuning is switched off so that the checks see glibc's defaults."""
    env = dict(os.environ if env is None else env)
    env['MALLOC_CHECK_'] = '3'
    env['SKELETONAGENT_MALLOC'] = 'default'
    lib = next((p for p in MALLOC_DEBUG_LIBS if Path(p).exists()), None)
    if lib:
        env['LD_PRELOAD'] = ' '.join(filter(None, [env.get('LD_PRELOAD'), lib]))
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog='python -m skeletonagent.testing.conv_check',
        description='Record the convolutions of every backbone x layout x path and replay each alone, '
                    'forward and backward. Run it with heap checks on (MALLOC_CHECK_=3 and, on glibc >= '
                    '2.34, LD_PRELOAD=libc_malloc_debug.so.0): a crash names the last replayed call.')
    parser.add_argument('--base-channels', type=int, default=8)
    parser.add_argument('--frames', type=int, default=100)
    parser.add_argument('--layouts', nargs='+', default=list(LAYOUTS), choices=LAYOUTS)
    parser.add_argument('--paths', nargs='+', default=list(PATHS), choices=PATHS)
    parser.add_argument('--repeats', type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f'oneDNN ISA: {onednn_isa()}', flush=True)
    calls: dict[ConvCall, str] = {}
    for name, step in backbone_cases(args.base_channels, args.frames, tuple(args.layouts), tuple(args.paths)):
        print(f"recording {name}", flush=True)
        recorded = record_convolutions(step)
        for call in recorded:
            calls.setdefault(call, name)
        print(f'recorded {name}: {len(recorded)} calls', flush=True)
    for i, (call, name) in enumerate(calls.items(), 1):
        print(f'replay {i}/{len(calls)} ({name}): {call.describe()}', flush=True)
        replay(call, args.repeats)
    print(f'ok: {len(calls)} distinct convolutions', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
