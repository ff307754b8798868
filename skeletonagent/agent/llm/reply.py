"""The one place that decides whether an LLM's reply is a usable answer.

Every backend's results pass through :func:`checked` in :meth:`.base.LLMBackend.chat_results`,
the OpenAI backend reads its completions with :func:`reply_problem`, and an agent round
checks the results it gets with :func:`checked` too (a backend may override
``chat_results``), so a blank, non-text or refused reply is the same failure wherever it
comes from, and the round's statistics count it.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from .refusal import looks_like_refusal
from .results import ChatResult

__all__ = ['reply_problem', 'checked', 'result_of_reply']


def reply_problem(text: Any, finish_reason: str | None = None, refusal: str | None = None,
                  detect_refusal: bool = False) -> tuple[str, str] | None:
    """``(kind, detail)`` when a reply is no usable answer, else None.

    Args:
        text: the reply's content.
        finish_reason, refusal: what an OpenAI-compatible completion says besides it (the
            ``refusal`` field, a ``content_filter`` finish: both a refusal).
        detect_refusal: also read the text's opening for a refusal (:func:`.refusal.looks_like_refusal`);
            only for a remote model: a replayed or heuristic answer is kept as written.
    """
    finish = f' (finish_reason {finish_reason})' if finish_reason is not None else ''
    if refusal:
        return 'refusal', f'refusal field: {refusal[:120]!r}'
    if finish_reason == 'content_filter':
        return 'refusal', 'finish_reason content_filter'
    if text is None:
        return 'empty', f'no content{finish}'
    if not isinstance(text, str):
        return 'malformed', f'content of type {type(text).__name__}'
    if not text.strip():
        return 'empty', f'blank content{finish}'
    if detect_refusal and looks_like_refusal(text):
        return 'refusal', f'declined: {text[:120]!r}'
    return None


def checked(result: ChatResult) -> ChatResult:
    """``result``, or a failure in its place when its text is no usable answer (the cost it
    counted is kept; a detail the backend gave is kept too)."""
    if result.error is not None:
        return result
    problem = reply_problem(result.text)
    if problem is None:
        return result
    kind, detail = problem
    return dataclasses.replace(result, text=None, error=kind, detail=result.detail or detail)


def result_of_reply(text: Any, **cost: Any) -> ChatResult:
    """The :class:`ChatResult` of a backend's reply ``text`` (``cost``: its ``requests``,
    tokens, ``seconds``...)."""
    problem = reply_problem(text)
    if problem is None:
        return ChatResult(text, **cost)
    return ChatResult(None, error=problem[0], detail=problem[1], **cost)
