"""The base class of every error that says the user gave something wrong.

A tool ends on a :class:`SkeletonAgentError` with one ``error: ...`` line and no traceback
(``skeletonagent.engine.errors.run_tool``): its message names the file, key or argument at
fault. Anything else that is not a plain bad-input error of Python (a ``RuntimeError`` from
torch's own code, a ``TypeError`` in ours) keeps its traceback, so a crash is never mistaken
for a user error.

Every error class of the package for a user mistake inherits this *and* the built-in class it
always had (``class DataError(SkeletonAgentError, ValueError)``), so ``except ValueError``
around our calls keeps working. This module imports nothing of the package (layer 1).
"""
from __future__ import annotations

__all__ = ['SkeletonAgentError']


class SkeletonAgentError(Exception):
    """An input the user can fix (a config, a file, an argument, a server, an install);
    the message says what is wrong and names it."""
