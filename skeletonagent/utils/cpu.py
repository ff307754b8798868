"""What CPU a run is on and which instruction set oneDNN runs its kernels with.

oneDNN picks other convolution kernels on an AVX2-only CPU, on one with AVX-512 and on one
with AMX, so a report of a wrong number or a crash must say which of them ran. The
instruction set is read from oneDNN itself (its verbose header, which also honours
``ONEDNN_MAX_CPU_ISA``); where that cannot be read, from the CPU flags torch reports.
"""
from __future__ import annotations

import functools
import os
import platform
import tempfile
from pathlib import Path

import torch

__all__ = ['cpu_model', 'onednn_isa', 'cpu_line']


@functools.cache
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` says."""
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or 'unknown CPU'


def _short_isa(description: str) -> str:
    text = description.upper()
    for token, name in (('AMX', 'AMX'), ('AVX-512', 'AVX-512'), ('AVX512', 'AVX-512'), ('AVX2', 'AVX2'),
                        ('AVX', 'AVX'), ('SSE4', 'SSE4.1')):
        if token in text:
            return name
    return description


def _verbose_header() -> str | None:
    """oneDNN's ``isa:`` verbose line, captured from file descriptor 1 while one small
    convolution runs with verbose output on; None where nothing was printed."""
    if not torch.backends.mkldnn.is_available():
        return None
    saved = os.dup(1)
    try:
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 1)
            try:
                with torch.no_grad(), torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                    # large enough for torch to hand it to oneDNN
                    torch.nn.functional.conv2d(torch.zeros(8, 16, 40, 25), torch.zeros(32, 16, 3, 1))
            finally:
                os.dup2(saved, 1)
            captured.seek(0)
            text = captured.read().decode(errors='replace')
    finally:
        os.close(saved)
    for line in text.splitlines():
        if ',cpu,isa:' in line:
            return line.split('isa:', 1)[1].strip()
    return None


def _isa_from_flags() -> str:
    cpu = torch.cpu
    limit = (os.environ.get('ONEDNN_MAX_CPU_ISA') or os.environ.get('DNNL_MAX_CPU_ISA') or '').upper()
    for name, supported in (('AMX', cpu._is_amx_tile_supported), ('AVX-512', cpu._is_avx512_supported),
                            ('AVX2', cpu._is_avx2_supported)):
        if supported() and (not limit or limit.startswith('ALL') or name.replace('-', '') in limit
                            or (name == 'AVX-512' and 'AMX' in limit)):
            return name
    return 'below AVX2'


@functools.cache
def onednn_isa() -> str:
    """oneDNN's instruction set on this CPU: 'AMX', 'AVX-512', 'AVX2', ..., with oneDNN's own
    description in parentheses when it could be read (e.g. ``AVX-512 (Intel AVX-512 with
    Intel DL Boost and bfloat16 support)``)."""
    try:
        header = _verbose_header()
    except OSError:
        header = None
    if header:
        return f'{_short_isa(header)} ({header})'
    return f'{_isa_from_flags()} (from the CPU flags)'


def cpu_line() -> str:
    """One line for a start block: the CPU model and oneDNN's instruction set."""
    return f'{cpu_model()}; oneDNN kernels: {onednn_isa()}'
