"""The base of every error the package raises for a user's mistake.

A tool ends on a :class:`SkeletonAgentError` with one ``error: ...`` line and no traceback
(``skeletonagent.engine.errors.run_tool``): its message names the file, the sample, the key
at fault. Any other exception that is not a plain bad-input error of Python (a
``RuntimeError`` of torch, a ``TypeError`` in our code) keeps its traceback, so a crash is
never mistaken for a user error.

Every error class of the package for a user mistake inherits this *and* the built-in class it
always had (``class DataError(SkeletonAgentError, ValueError)``), so ``except ValueError``
around our calls keeps working. This module imports nothing of the package (layer 1).
"""
from __future__ import annotations

__all__ = ['SkeletonAgentError', 'ConfigError']


class SkeletonAgentError(Exception):
    """A user error: an input (config, data file, checkpoint, work dir, LLM server) that
    cannot be used; the message says which and what to do."""


class ConfigError(SkeletonAgentError, ValueError):
    """A config (or ``--cfg-options``) that cannot be used; the message names the key."""
