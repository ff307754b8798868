"""Skip the interpreter's last garbage collections when a tool process ends.

When Python exits it clears every module and runs the cycle collector over what is left. A
tool process holds torch, mmengine, mmcv and transformers: hundreds of thousands of tracked
objects once imported, more once a model is built. On a small CPU that final clean-up takes a
noticeable time after the last ``atexit`` handler, in every process (a ``--help``, an error
line, each rank of a torchrun job); :func:`skip_exit_collection` removes most of it
(``bench/tool_exit.py``; figures in ``bench/README.md``). Every tool calls it through
:func:`skeletonagent.engine.tool.tool_main`.

``gc.freeze()`` from an ``atexit`` handler moves every object alive at that moment into the
collector's permanent generation, which the collections at exit do not visit. Nothing else
changes: the other ``atexit`` handlers run as before (logging is flushed and closed, torch and
multiprocessing clean up), and objects are still freed by reference counting as modules are
cleared. Only objects kept alive by reference cycles alone are left to the operating system,
which takes the whole address space back anyway; Python never promised to finalise those at
exit.

Only the tools' ``__main__`` blocks call it, never a library import: a process that goes on
after importing the package (a test run, a notebook) keeps its collector as it was.
"""
from __future__ import annotations

import atexit
import gc

__all__ = ['skip_exit_collection']

_registered = False


def skip_exit_collection() -> None:
    """Register ``gc.freeze`` to run at exit (once per process, whatever the number of calls).

    Registered early, it runs after the handlers registered later (``atexit`` runs them last
    in, first out), so the objects they create or drop are already settled."""
    global _registered
    if not _registered:
        atexit.register(gc.freeze)
        _registered = True
