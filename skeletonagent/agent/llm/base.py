"""The interface every LLM backend implements, and the round of chats they all share.

A backend answers a chat: a list of messages ``{'role': 'system'|'user'|'assistant',
'content': str}`` whose last message is the user's question. The agent asks in rounds: one
:meth:`LLMBackend.chat_results` call holds one independent chat per action class and gives
one :class:`~.results.ChatResult` per chat, never raising for one chat's failure. That call
is the same for every backend: chats run on a thread pool of ``max_concurrency`` threads (1:
one after the other), a progress bar or callback follows them, every reply goes through the
one validator (:func:`.reply.checked`), and each failure is logged. A backend says how one
chat is answered (:meth:`LLMBackend.chat`, or :meth:`LLMBackend.answer` for its own costs and
failure kinds) and what a round shares (:meth:`LLMBackend.start_round`, e.g. budgets).
"""
from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from tqdm import tqdm

from .reply import checked, result_of_reply
from .results import FAILURE_KINDS, ChatResult, RoundStats

__all__ = ['Message', 'LLMBackend', 'check_messages', 'ChatResult', 'RoundStats', 'FAILURE_KINDS',
           'chat_label', 'progress_bar']

logger = logging.getLogger(__name__)

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


_QUOTED_RE = re.compile(r"(?<!\w)'(.+?)'(?=[\s,.;:?!)]|$)")  # not the "'" of "person's"


def chat_label(messages: Sequence[Message], index: int, total: int) -> str:
    """"chat 3 of 60 ('drink water')": the chat's place in its round and the class its first
    question names in quotes, if any, for log lines."""
    first = next((m.get('content', '') for m in messages
                  if isinstance(m, dict) and m.get('role') == 'user'), '')
    quoted = _QUOTED_RE.findall(first) if isinstance(first, str) else []
    where = f'chat {index + 1} of {total}'
    return f"{where} ('{quoted[0]}')" if quoted else where


def progress_bar(total: int, desc: str | None) -> Any:
    """A tqdm bar over a round's chats on stderr, or None: shown when stderr is a terminal or
    ``SKELETONAGENT_PROGRESS=1``, never when it is ``0`` (logs stay free of bars)."""
    flag = os.environ.get('SKELETONAGENT_PROGRESS', '').strip().lower()
    if flag in ('0', 'false', 'no', 'off'):
        return None
    try:
        if flag not in ('1', 'true', 'yes', 'on') and not sys.stderr.isatty():
            return None
        return tqdm(total=total, desc=f'agent round ({desc})' if desc else 'agent round',
                    unit='class', leave=False, file=sys.stderr)
    except Exception:  # noqa: BLE001 - no bar rather than no round
        return None


class LLMBackend(ABC):
    """Base class of LLM backends (registered in ``skeletonagent.registry.LLM_BACKENDS``).

    ``max_concurrency``: chats of one round in flight at once (the thread pool's size).
    """

    max_concurrency: int = 1

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

    def start_round(self) -> Any:
        """What the chats of one :meth:`chat_results` call share (budgets, a server's
        health), handed to :meth:`answer`; None by default."""
        return None

    def answer(self, messages: Sequence[Message], round_state: Any = None) -> ChatResult:
        """The outcome of one chat of a round; never raises. The default asks :meth:`chat`
        (an exception is an ``'other'`` failure); a backend with its own costs or failure
        kinds overrides this."""
        start = time.perf_counter()
        try:
            text = self.chat(messages)
        except Exception as exc:  # noqa: BLE001 - one class's failure must not end a round
            return ChatResult(None, error='other', detail=f'{type(exc).__name__}: {exc}',
                              seconds=time.perf_counter() - start)
        return result_of_reply(text, seconds=time.perf_counter() - start)

    def chat_results(self, chats: Sequence[Sequence[Message]],
                     progress: Callable[[ChatResult], None] | None = None
                     ) -> list[ChatResult]:
        """Outcomes of one round of independent chats, in order; never raises for one chat's
        failure. The agent's rounds call this.

        Chats run on ``max_concurrency`` threads; every result passes the reply validator
        (:func:`.reply.checked`). ``progress`` is called with each chat's result as it
        finishes (one call at a time); without it a tqdm bar over the chats is shown on
        stderr when that is a terminal or ``SKELETONAGENT_PROGRESS=1`` (``=0`` turns it off).
        """
        chats = list(chats)
        round_state = self.start_round()
        if not chats:
            return []
        bar = progress_bar(len(chats), self.describe()) if progress is None else None
        if bar is not None:
            def progress(result: ChatResult) -> None:
                bar.update(1)
        lock = threading.Lock()

        def run(messages: Sequence[Message]) -> ChatResult:
            result = checked(self.answer(messages, round_state))
            if progress is not None:
                with lock:
                    try:
                        progress(result)
                    except Exception:  # noqa: BLE001 - progress display must not fail a chat
                        logger.debug('progress callback failed', exc_info=True)
            return result

        workers = max(1, min(int(self.max_concurrency), len(chats)))
        try:
            if workers == 1:
                results = [run(messages) for messages in chats]
            else:
                with ThreadPoolExecutor(workers, thread_name_prefix=type(self).__name__) as pool:
                    results = list(pool.map(run, chats))
        finally:
            if bar is not None:
                bar.close()
        self.log_failures(chats, results, round_state)
        return results

    def log_failures(self, chats: Sequence[Sequence[Message]], results: Sequence[ChatResult],
                     round_state: Any = None) -> None:
        """One WARNING per chat of the round that got no answer."""
        for i, (messages, result) in enumerate(zip(chats, results)):
            if not result.ok:
                after = f' after {result.requests} request(s)' if result.requests else ''
                logger.warning('%s: no answer for %s: %s%s: %s', self.describe(),
                               chat_label(messages, i, len(chats)), result.error, after,
                               result.detail)

    def close(self) -> None:  # noqa: B027 - optional, a no-op
        """Release clients or threads (nothing by default)."""

    def describe(self) -> str | None:
        """A short human-readable name for logs."""
        return type(self).__name__
