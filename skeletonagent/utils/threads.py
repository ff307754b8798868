"""Thread helpers: background work that must not slow the training steps down."""
from __future__ import annotations

import os
import threading

__all__ = ['lower_thread_priority']


def lower_thread_priority(increment: int = 10) -> bool:
    """Raise the calling thread's nice value by ``increment`` (Linux; elsewhere a no-op).

    The agent's round (HTTP requests, parsing, reports) runs in background threads of the
    training process. On a machine whose cores the training steps keep busy, a lowered
    priority lets those threads use only the time the steps leave free, instead of taking
    cores from the step's compute threads. Returns whether the priority was changed.
    """
    if increment <= 0 or not hasattr(os, 'setpriority'):
        return False
    try:
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, current + int(increment)))
    except (OSError, AttributeError):
        return False
    return True
