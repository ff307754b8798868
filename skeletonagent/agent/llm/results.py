"""What a chat came to: its answer or why there is none (:class:`ChatResult`, one of
:data:`FAILURE_KINDS`), and what a round of chats cost (:class:`RoundStats`)."""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ['FAILURE_KINDS', 'ChatResult', 'RoundStats']


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
