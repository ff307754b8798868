"""The end of every command-line tool's ``__main__`` block, in one place.

``tools/*.py`` end with ``tool_main(main)``: no cycle collection of torch's objects when the
process exits (:func:`~skeletonagent.utils.fast_exit.skip_exit_collection`), a user error as
one ``error: ...`` line (:func:`~skeletonagent.engine.errors.run_tool`; ``--debug`` shows the
traceback), and ``main``'s return value (an int, or None for 0) as the exit status.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Callable, NoReturn

from ..utils.fast_exit import skip_exit_collection
from .errors import run_tool

__all__ = ['tool_main']


def tool_main(main: Callable[[Sequence[str] | None], int | None],
              argv: Sequence[str] | None = None) -> NoReturn:
    """Run a tool's ``main(argv)`` as its process: see the module docstring."""
    skip_exit_collection()
    sys.exit(run_tool(main, argv))
