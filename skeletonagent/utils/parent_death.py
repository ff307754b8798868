"""Processes that end with their parent (Linux).

torchrun starts each rank in a session of its own, so a launcher killed with ``kill -9``
(or a lost terminal) leaves its ranks running with PPID 1: they finish the epoch and write
checkpoints into a work dir another run may already use. The kernel's parent-death signal
(``prctl(PR_SET_PDEATHSIG)``) ends a process when the thread that started it dies:
:func:`end_with_parent` asks for it in a rank (SIGTERM, so the rank ends as a terminated run
does, with its one line), and in every process the rank forks afterwards (SIGKILL: DataLoader
workers hold no state of their own). Elsewhere than on Linux these are no-ops.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading

__all__ = ['set_parent_death_signal', 'end_with_parent', 'orphaned', 'exit_soon_if_orphaned']

_PR_SET_PDEATHSIG = 1
_registered_fork_hook = False
_parent: int | None = None


def set_parent_death_signal(sig: int) -> bool:
    """Have the kernel send ``sig`` to this process when its parent dies. True when set."""
    if not sys.platform.startswith('linux'):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _children_die_with_us() -> None:     # runs in every forked child of a rank
    set_parent_death_signal(signal.SIGKILL)


def end_with_parent(sig: int = signal.SIGTERM) -> bool:
    """This process gets ``sig`` when its parent dies, and the processes it forks from now on
    get SIGKILL when it dies. A parent that died before the call (the signal would never
    come) sends ``sig`` at once. True when the signal could be set."""
    global _registered_fork_hook, _parent
    parent = _parent = os.getppid()
    ok = set_parent_death_signal(sig)
    if ok and not _registered_fork_hook:
        os.register_at_fork(after_in_child=_children_die_with_us)
        _registered_fork_hook = True
    if ok and os.getppid() != parent:    # the parent died between the two calls
        os.kill(os.getpid(), sig)
    return ok


def orphaned() -> bool:
    """Whether the parent :func:`end_with_parent` saw has died."""
    return _parent is not None and os.getppid() != _parent


def exit_soon_if_orphaned(status: int, seconds: float = 15.0) -> None:
    """When the parent died: end the process with ``status`` after ``seconds`` whatever it is
    doing then. A rank stopping after its launcher's death may wait in a collective for a
    peer that has already gone; nobody else would ever end it."""
    if not orphaned():
        return
    timer = threading.Timer(seconds, os._exit, (status,))
    timer.daemon = True
    timer.start()
