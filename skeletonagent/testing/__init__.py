"""Test tools: an OpenAI-compatible HTTP server with scripted faults.

These are for tests, benchmarks and demos, not for training; they live in the package so
that ``bench/`` and the end-to-end tests can use them without copying.
"""
from __future__ import annotations

from .fake_llm import FakeLLMServer, Fault, asks_about

__all__ = ['Fault', 'FakeLLMServer', 'asks_about']
