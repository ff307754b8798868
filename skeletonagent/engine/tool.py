"""The end of every command-line tool's ``__main__`` block, in one place.

``tools/*.py`` end with ``tool_main(main)``: no cycle collection of torch's objects when the
process exits (:func:`~skeletonagent.utils.fast_exit.skip_exit_collection`), a user error as
one ``error: ...`` line (:func:`~skeletonagent.engine.errors.run_tool`; ``--debug`` shows the
traceback), and ``main``'s return value, when it returns one, as the exit status (a ``main``
that returns None just returns, so a tool run in-process with ``runpy`` ends as before).
"""
from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Callable

from ..utils.fast_exit import skip_exit_collection
from .errors import run_tool

__all__ = ['tool_main']


def tool_main(main: Callable[[Sequence[str] | None], int | None],
              argv: Sequence[str] | None = None) -> None:
    """Run a tool's ``main(argv)`` as its process: see the module docstring."""
    skip_exit_collection()
    status = run_tool(main, argv)
    if status is not None:
        sys.exit(status)
