"""Thread helpers: background work that must not slow the training steps down."""
from __future__ import annotations

import os
import threading

__all__ = ['IDLE', 'lower_thread_priority']


#: the round threads' priority that runs them only on cores the training leaves idle
IDLE = 'idle'


def lower_thread_priority(increment: int | str = 10) -> bool:
    """Lower the calling thread's CPU priority (Linux; elsewhere a no-op): by ``increment`` nice
    steps, or, with ``'idle'``, to the ``SCHED_IDLE`` policy (where it is missing: nice 19).

    The agent's round (HTTP requests, parsing, reports) runs in background threads of the
    training process. On a machine whose cores the training steps keep busy, a lowered
    priority lets those threads use only the time the steps leave free, instead of taking
    cores from the step's compute threads. Even at nice 19 the kernel still gives a runnable
    thread a slice of a busy core, and one descheduled compute thread stalls the step's whole
    parallel region; a ``SCHED_IDLE`` thread runs only where a core would otherwise be idle
    (``bench/agent_round.py``, one training process on 2 cores: training kept more of its
    throughput during a round than at nice +10, and the round took longer; figures in
    ``bench/README.md``). Where the training processes keep every core busy (two ranks on two
    cores), an idle thread gets almost no time at all. Threads the caller then starts inherit the
    priority. Returns whether the priority was changed.
    """
    if increment == IDLE:
        if hasattr(os, 'sched_setscheduler') and hasattr(os, 'SCHED_IDLE'):
            try:
                os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))   # 0: the calling thread
                return True
            except OSError:
                pass
        increment = 19
    if not isinstance(increment, int) or increment <= 0 or not hasattr(os, 'setpriority'):
        return False
    try:
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, current + int(increment)))
    except (OSError, AttributeError):
        return False
    return True
