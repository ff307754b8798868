"""How the command-line tools end on a user error: one ``error: ...`` line, exit status 1,
no traceback unless ``--debug``.

A user error is anything the package raises to say that an input is wrong (a config, a data
file, a checkpoint, a work dir, the agent's sources, an LLM server that cannot be reached):
a :class:`~skeletonagent.errors.SkeletonAgentError` (:class:`ConfigError` and the other rooms'
error classes), whose message names the file or key at fault, and the plain ``ValueError`` /
``OSError`` our checks raise for a bad argument or a file that cannot be read or written.
Their first line says what is wrong; further lines, when there are any, give details. Any
other exception is a crash and keeps its traceback: a ``RuntimeError`` from torch (a shape
mismatch in a convolution, an allocation that failed), a ``TypeError`` in our code, an
``AssertionError``.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Callable, TypeVar

from ..errors import ConfigError, SkeletonAgentError

__all__ = ['ConfigError', 'USER_ERRORS', 'error_message', 'run_tool']

T = TypeVar('T')

#: What the tools report in one line (see the module docstring). ``RuntimeError`` is not
#: here (torch raises it for its own failures); our own user errors that are RuntimeErrors
#: (an LLM that cannot answer, a missing extra) are SkeletonAgentErrors, and so is
#: :class:`~skeletonagent.registry.UnknownTypeError`, the one ``KeyError`` a tool reports.
USER_ERRORS = (SkeletonAgentError, ValueError, OSError)


def _os_error_text(exc: OSError) -> str:
    """``[Errno 13] Permission denied: 'x'`` → ``x: permission denied``; our own messages
    (``FileNotFoundError('config file not found: x')``) as they are."""
    if exc.strerror and exc.filename is not None:
        return f'{exc.filename}: {exc.strerror[:1].lower()}{exc.strerror[1:]}'
    return str(exc)


def error_message(exc: BaseException) -> str | None:
    """The message a tool prints for ``exc`` (without ``error: ``), or None when ``exc`` is
    not a user error (a bug: the traceback is shown)."""
    if not isinstance(exc, USER_ERRORS):
        return None
    text = _os_error_text(exc) if isinstance(exc, OSError) else str(exc)
    return text.strip() or type(exc).__name__


def run_tool(main: Callable[[Sequence[str] | None], T],
             argv: Sequence[str] | None = None) -> T:
    """Run a tool's ``main(argv)``; a user error ends it with ``SystemExit('error: <message>')``
    (the message on stderr, exit status 1). ``--debug`` among the arguments re-raises it with
    its traceback.

    ``--debug`` is looked up in ``argv`` before parsing, so errors raised while parsing
    (``--cfg-options`` without a value) follow it too."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return main(args)
    except Exception as exc:  # noqa: BLE001 - classified below; bugs are re-raised
        message = None if '--debug' in args else error_message(exc)
        if message is None:
            raise
        # Python prints a SystemExit's text to stderr and exits with status 1, without a
        # traceback; a caller in the same process gets the message and the cause
        raise SystemExit(f'error: {message}') from exc
