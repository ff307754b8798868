"""The base of every error the package raises for a user's mistake.

A tool ends on a :class:`SkeletonAgentError` with one ``error: ...`` line (the message names
the file, the sample, the key at fault); any other exception, a ``RuntimeError`` of torch
included, keeps its traceback. This module imports nothing of the package.
"""
from __future__ import annotations

__all__ = ['SkeletonAgentError', 'ConfigError']


class SkeletonAgentError(Exception):
    """A user error: an input (config, data file, checkpoint, work dir, LLM server) that
    cannot be used; the message says which and what to do."""


class ConfigError(SkeletonAgentError, ValueError):
    """A config (or ``--cfg-options``) that cannot be used; the message names the key."""
