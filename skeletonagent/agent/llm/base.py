"""The interface every LLM backend implements.

A backend answers a chat: a list of messages ``{'role': 'system'|'user'|'assistant',
'content': str}`` whose last message is the user's question. ``chat_many`` answers several
independent chats (one per action class) and is where a remote backend batches or runs
requests concurrently; the default simply loops.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ['Message', 'LLMBackend', 'check_messages', 'ChatResult', 'RoundStats', 'FAILURE_KINDS']

Message = dict[str, str]

_ROLES = ('system', 'user', 'assistant')


def check_messages(messages: Sequence[Message]) -> None:
    """Raise ``ValueError`` unless ``messages`` is a chat ending with a user message."""
    if not messages:
        raise ValueError('a chat needs at least one message')
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get('role') not in _ROLES \
                or not isinstance(message.get('content'), str):
            raise ValueError(f'message {i} must be a dict with role in {_ROLES} and a str '
                             f'content, got {message!r}')
    if messages[-1]['role'] != 'user':
        raise ValueError(f"the last message must be the user's, got {messages[-1]['role']!r}")


#: Why a chat produced no usable answer (``ChatResult.error``).
FAILURE_KINDS: tuple[str, ...] = (
    'refusal',       # the model declined (after the neutral rephrase too)
    'empty',         # no content
    'malformed',     # content of the wrong shape (not text, unparseable response body)
    'rate_limit',    # 429 after all retries
    'server_error',  # 5xx after all retries
    'timeout',       # request timed out after all retries
    'connection',    # connection refused / dropped after all retries
    'budget',        # the round's request or token budget was spent before this chat
    'other',         # anything else (the detail says what)
)


@dataclass
class ChatResult:
    """The outcome of one chat: its answer, or why there is none, and what it cost.

    ``text`` is None exactly when ``error`` is set (one of :data:`FAILURE_KINDS`).
    ``requests`` counts HTTP attempts made (the client's retries included, connections that
    failed too; 0 for a cache hit or a chat the round's budget or down server stopped).
    """

    text: str | None
    error: str | None = None
    detail: str = ''
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if (self.text is None) == (self.error is None):
            raise ValueError(f'ChatResult needs exactly one of text and error, got '
                             f'text={self.text!r}, error={self.error!r}')
        if self.error is not None and self.error not in FAILURE_KINDS:
            raise ValueError(f'ChatResult.error must be one of {FAILURE_KINDS}, got {self.error!r}')

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class RoundStats:
    """What one round of chats cost: requests, tokens, failures by kind, cache hits, seconds."""

    chats: int = 0
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: int = 0
    failures: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    @classmethod
    def from_results(cls, results: Sequence[ChatResult], seconds: float) -> RoundStats:
        return cls(chats=len(results), requests=sum(r.requests for r in results),
                   prompt_tokens=sum(r.prompt_tokens for r in results),
                   completion_tokens=sum(r.completion_tokens for r in results),
                   cached=sum(r.cached for r in results),
                   failures=Counter(r.error for r in results if r.error is not None),
                   seconds=float(seconds))

    @property
    def num_failed(self) -> int:
        return sum(self.failures.values())

    def summary(self) -> str:
        """One log line, e.g. ``12 chats, 14 requests, 3,210 tokens, 2 cached, 1 failed
        (timeout 1), 1.8 s``."""
        tokens = self.prompt_tokens + self.completion_tokens
        failed = ', '.join(f'{k} {n}' for k, n in sorted(self.failures.items()))
        return (f'{self.chats} chats, {self.requests} requests, {tokens:,} tokens, '
                f'{self.cached} cached, {self.num_failed} failed' + (f' ({failed})' if failed else '')
                + f', {self.seconds:.1f} s')

    def as_dict(self) -> dict[str, Any]:
        return dict(chats=self.chats, requests=self.requests, prompt_tokens=self.prompt_tokens,
                    completion_tokens=self.completion_tokens, cached=self.cached,
                    failures=dict(self.failures), seconds=round(self.seconds, 3))


class LLMBackend(ABC):
    """Base class of LLM backends (registered in ``skeletonagent.registry.LLM_BACKENDS``)."""

    @classmethod
    def check_arguments(cls, args: dict) -> None:
        """Raise the error building ``cls(**args)`` would raise about its environment (e.g.
        a missing API key), without building it or calling any server. Default: nothing."""
        return None

    def configure(self, layout: Any = None, prompts: Any = None) -> None:  # noqa: B027 - optional, a no-op
        """Tell the backend the skeleton layout and prompt templates of the dialogue.

        Remote LLMs read everything from the messages and ignore this; the offline backend
        uses it to know which joints the numbers in its answers refer to and to recognise
        the questions.
        """

    @abstractmethod
    def chat(self, messages: Sequence[Message]) -> str:
        """The assistant's reply to the chat ``messages``."""

    def chat_many(self, chats: Sequence[Sequence[Message]]) -> list[str]:
        """Replies to several independent chats, in order."""
        return [self.chat(messages) for messages in chats]

    def chat_results(self, chats: Sequence[Sequence[Message]]) -> list[ChatResult]:
        """Outcomes of several independent chats, in order; never raises for one chat's
        failure. The agent's rounds call this. Remote backends override it (concurrency,
        retries, budgets); the default calls :meth:`chat` one chat at a time."""
        results = []
        for messages in chats:
            start = time.perf_counter()
            try:
                text = self.chat(messages)
            except Exception as exc:  # noqa: BLE001 - one class's failure must not end a round
                results.append(ChatResult(None, error='other', detail=f'{type(exc).__name__}: {exc}',
                                          seconds=time.perf_counter() - start))
                continue
            if not isinstance(text, str):
                results.append(ChatResult(None, error='malformed', detail=f'reply of type {type(text).__name__}'))
            elif not text.strip():
                results.append(ChatResult(None, error='empty', seconds=time.perf_counter() - start))
            else:
                results.append(ChatResult(text, seconds=time.perf_counter() - start))
        return results

    def close(self) -> None:  # noqa: B027 - optional, a no-op
        """Release clients or threads (nothing by default)."""

    def describe(self) -> str | None:
        """A short human-readable name for logs."""
        return type(self).__name__
