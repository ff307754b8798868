"""glibc's malloc set up for training processes: freed activations stay in the heap.

PyTorch's CPU allocator takes every tensor from ``malloc``. With glibc's defaults a block of
32 MiB or more is ``mmap``-ed and handed back to the kernel when it is freed, and the top of the
heap is trimmed once it holds more than the trim threshold; so each training step page-faults
its activations in again (an N×C×T×V activation of the NTU-60 model is 20 MB at batch 8 and
41 MB at batch 16). The settings of :data:`MALLOC_TUNABLES` keep freed blocks in the heap for
the next step: no ``mmap`` for large blocks, no trimming, and no thread caches or fast bins
(which pin small chunks between large free blocks and fragment the heap).

``bench/malloc.py`` measures a training step with glibc's defaults and with the tuning (the
figures are in ``bench/README.md``, "Malloc"): the tuned step is faster, most of all once the
activations pass glibc's ``mmap`` threshold, and the numbers a model computes do not change.

glibc reads these settings (``GLIBC_TUNABLES``) only when a program starts, so
:func:`reexec_with_tuned_malloc` starts the tool again in the same process (``execve``: same
PID, arguments and environment plus the settings) before it imports anything heavy. It does
nothing where the C library is not glibc, when ``GLIBC_TUNABLES`` already holds malloc
settings (the user's own, or after the restart), under a debugger or tracer, or when
``SKELETONAGENT_MALLOC=default``.
"""
from __future__ import annotations

import ctypes
import os
import platform
import sys
from collections.abc import Mapping

__all__ = ['MALLOC_TUNABLES', 'MALLOC_ENV', 'tuned_malloc_env', 'reexec_with_tuned_malloc', 'malloc_line',
           'release_freed_heap']

#: glibc tunables of a training process (see the module docstring); the trim threshold (1 TiB)
#: is above any peak, so the heap is never trimmed
MALLOC_TUNABLES = ('glibc.malloc.tcache_count=0:glibc.malloc.mxfast=0:'
                   'glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=1099511627776')

#: the environment variable that turns the tuning off: ``default`` (glibc's defaults) or ``tuned``
MALLOC_ENV = 'SKELETONAGENT_MALLOC'


def _choice(environ: Mapping[str, str]) -> str:
    """``SKELETONAGENT_MALLOC`` as given (stripped, lower case); ``tuned`` when unset or empty."""
    return environ.get(MALLOC_ENV, '').strip().lower() or 'tuned'


def tuned_malloc_env(environ: Mapping[str, str], libc: str | None = None) -> dict[str, str] | None:
    """``environ`` plus :data:`MALLOC_TUNABLES` in ``GLIBC_TUNABLES`` (after any other tunables
    it holds), or None when nothing is to change: the C library (``libc``, default
    ``platform.libc_ver()``) is not glibc, ``GLIBC_TUNABLES`` already sets a ``glibc.malloc``
    tunable, or ``SKELETONAGENT_MALLOC=default``. Any other value of that variable than
    ``tuned`` or ``default`` is a ValueError that names it."""
    choice = _choice(environ)
    if choice not in ('tuned', 'default'):
        raise ValueError(f"{MALLOC_ENV}={environ[MALLOC_ENV]!r}: use 'tuned' (the default) or 'default' "
                         "(glibc's own malloc settings)")
    libc = platform.libc_ver()[0] if libc is None else libc
    current = environ.get('GLIBC_TUNABLES', '')
    if choice == 'default' or libc != 'glibc' or 'glibc.malloc.' in current:
        return None
    return {**environ, 'GLIBC_TUNABLES': f'{current}:{MALLOC_TUNABLES}' if current else MALLOC_TUNABLES}


def reexec_with_tuned_malloc() -> None:
    """Start this Python program again, in this process, with :data:`MALLOC_TUNABLES` (see the
    module docstring for when it does nothing). Call it first thing in a tool's ``__main__``,
    before torch is imported: what ran before is lost."""
    if sys.gettrace() is not None or 'pydevd' in sys.modules:     # a debugger: keep its session
        return
    env = tuned_malloc_env(os.environ)
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    # sys.orig_argv (Python 3.10+) keeps the interpreter's own options (-u, -X ..., -m module)
    argv = sys.orig_argv[1:] if hasattr(sys, 'orig_argv') else sys.argv
    os.execve(sys.executable, [sys.executable, *argv], env)


def malloc_line(environ: Mapping[str, str] | None = None) -> str:
    """Which malloc settings this process runs with, for the run's log."""
    environ = os.environ if environ is None else environ
    current = environ.get('GLIBC_TUNABLES', '')
    if MALLOC_TUNABLES in current:
        return f'tuned, freed activations stay in the heap ({MALLOC_ENV}=default turns it off)'
    if 'glibc.malloc.' in current:
        return f'GLIBC_TUNABLES={current} (the environment\'s)'
    if _choice(environ) == 'default':
        return f"glibc's defaults ({MALLOC_ENV}=default)"
    return 'the C library\'s defaults'


def release_freed_heap() -> None:
    """Give freed heap pages back to the OS (glibc's ``malloc_trim``; nothing elsewhere).

    glibc keeps the blocks of freed small objects in its heap: after a dataset has pickled its
    annotation dicts into one buffer and released them, the process would otherwise hold their
    memory beside the buffer (``bench/worker_memory.py``; figures in ``bench/README.md``).
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):
        return
    trim(0)
