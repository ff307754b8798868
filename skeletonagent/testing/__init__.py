"""Test tools: an OpenAI-compatible HTTP server with scripted faults.

These are for tests, benchmarks and demos, not for training; they live in the package so
that ``bench/`` and the end-to-end tests can use them without copying.
"""
from __future__ import annotations

from typing import Any

__all__ = ['Fault', 'FakeLLMServer', 'asks_about']


def __getattr__(name: str) -> Any:
    # imported on first use, so that ``python -m skeletonagent.testing.llm_server`` runs the
    # module once (an eager import here made runpy warn that it was already imported)
    if name in __all__:
        from . import llm_server
        return getattr(llm_server, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
