"""The HTTP side of ``OpenAIChat``: the SDK's client, the hook on its transport, a round's
budgets and a down server.

The ``openai`` SDK retries a request (408, 409, 429, 5xx, timeouts, connection errors;
``max_retries`` times, its exponential backoff with jitter, honouring ``Retry-After`` up to
two minutes). What it has no notion of acts on each HTTP attempt, so it sits in the client's
transport (:class:`WatchedTransport`): every attempt the SDK makes passes there, those that
never get a response included, and an ``openai.OpenAIError`` raised there ends the SDK's
retry loop at once (the SDK re-raises its own errors from the send path):

- per-round budgets (:class:`RoundBudget`: requests and tokens), checked before every HTTP
  attempt, retries included; tokens are known only once answers arrive, so the token budget
  may be overshot by at most ``max_concurrency`` answers;
- a down server fails the round at once: a connection that cannot be made (refused, unknown
  host, connect timeout) before any answer of the round ends every chat with one line,
  without the SDK's retries; the next round tries again;
- requests (HTTP attempts) counted per chat (:class:`ChatCost`).

``openai`` is imported when a client is made (:func:`sdk`), not when this module is.
"""
from __future__ import annotations

import contextvars
import functools
import importlib
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable

from .failures import Failure, MissingAPIKeyError, status_kind

__all__ = ['RoundBudget', 'ChatCost', 'WatchedTransport', 'sdk', 'make_client', 'request_body',
           'read_api_key', 'current_chat']

_ENV_NAME_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')


class RoundBudget:
    """The budgets and the server's health of one round of chats, shared by its threads."""

    def __init__(self, max_requests: int | None, max_tokens: int | None) -> None:
        self.max_requests, self.max_tokens = max_requests, max_tokens
        self.lock = threading.Lock()
        self.requests = 0
        self.tokens = 0
        self.answered = False              # some HTTP attempt of the round got a response
        self.down: str | None = None    # why the server counts as unreachable

    def admit(self) -> Failure | None:
        """Count one more HTTP attempt, or say why the round forbids it."""
        with self.lock:
            if self.down is not None:
                return Failure('connection', self.down)
            if self.max_requests is not None and self.requests >= self.max_requests:
                return Failure('budget', f'the round request budget ({self.max_requests}) is spent')
            if self.max_tokens is not None and self.tokens >= self.max_tokens:
                return Failure('budget', f'the round token budget ({self.max_tokens:,}) is spent '
                                         f'({self.tokens:,} used)')
            self.requests += 1
            return None

    def spend(self, tokens: int) -> None:
        with self.lock:
            self.tokens += tokens

    def heard(self) -> None:
        with self.lock:
            self.answered = True

    def unreachable(self, why: str) -> bool:
        """A connection could not be made: the server is down for the rest of the round
        unless it has answered in this round already (then it was a blip the SDK retries).
        Returns whether the round counts the server as down."""
        with self.lock:
            if not self.answered and self.down is None:
                self.down = why
            return self.down is not None


@dataclass
class ChatCost:
    """What one chat has cost so far; the transport counts into it."""

    round: RoundBudget
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    last_error: str = ''     # the outcome of the last failed HTTP attempt, for budget details


#: The chat whose request the current thread is sending (None outside a chat).
current_chat: contextvars.ContextVar[ChatCost | None] = contextvars.ContextVar(
    'skeletonagent_openai_chat', default=None)


@functools.cache
def sdk() -> SimpleNamespace:
    """What needs ``openai`` (imported on first use, not with this module): ``RoundStop``,
    the ``OpenAIError`` the transport raises to end a request without the SDK's retries (it
    carries its :class:`Failure` as ``failure``); ``WatchedClient``, the SDK's default HTTP
    client (its limits and timeouts, proxies from the environment) whose every request goes
    through a :class:`WatchedTransport`; ``connect_errors``, the httpx errors of a connection
    that could not be made; ``ChatCompletion``, the parsed response type."""
    import openai  # deferred: the openai SDK is heavy to import and only OpenAIChat needs it
    # httpx2 for openai 3, httpx before: the errors caught must be those of the SDK's client
    client = next(c for c in openai.DefaultHttpxClient.__mro__ if c.__name__ == 'Client')
    httpx = importlib.import_module(client.__module__.partition('.')[0])
    connect_errors = (httpx.ConnectError, httpx.ConnectTimeout)

    class RoundStop(openai.OpenAIError):
        def __init__(self, failure: Failure) -> None:
            super().__init__(failure.detail)
            self.failure = failure

    class WatchedClient(openai.DefaultHttpxClient):
        def __init__(self, unreachable: Callable[[BaseException], str], **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._unreachable = unreachable

        def _transport_for_url(self, url: Any) -> Any:
            # httpx picks each request's transport here (its pool, or a proxy's); wrapping the
            # pick rather than passing transport= keeps the environment's proxies working
            return WatchedTransport(super()._transport_for_url(url), connect_errors,
                                    self._unreachable)

    from openai.types.chat import ChatCompletion  # deferred: openai is heavy
    return SimpleNamespace(RoundStop=RoundStop, WatchedClient=WatchedClient,
                           connect_errors=connect_errors, ChatCompletion=ChatCompletion)


class WatchedTransport:
    """An HTTP transport of the SDK's client with the round's accounting around each attempt
    (see the module docstring): counts it, refuses it when the round's budget is spent or
    its server is down, and marks the server down on a connection that cannot be made."""

    def __init__(self, inner: Any, connect_errors: tuple[type, ...],
                 unreachable: Callable[[BaseException], str]) -> None:
        self.inner = inner
        self.connect_errors = connect_errors
        self.unreachable = unreachable

    def handle_request(self, request: Any) -> Any:
        chat = current_chat.get()
        if chat is None:
            return self.inner.handle_request(request)
        refused = chat.round.admit()
        if refused is not None:
            if refused.kind == 'budget' and chat.last_error:
                refused.detail += f'; last error: {chat.last_error}'
            raise sdk().RoundStop(refused)
        chat.requests += 1
        try:
            response = self.inner.handle_request(request)
        except self.connect_errors as exc:
            why = self.unreachable(exc)
            chat.last_error = f'connection: {why}'
            if chat.round.unreachable(why):
                raise sdk().RoundStop(Failure('connection', why)) from exc
            raise
        except Exception as exc:
            chat.last_error = f'{type(exc).__name__}: {exc}'
            raise
        chat.round.heard()
        if response.status_code >= 400:
            chat.last_error = f'{status_kind(response.status_code)}: HTTP {response.status_code}'
        return response


def make_client(base_url: str | None, api_key: str, timeout: float, max_retries: int,
                unreachable: Callable[[BaseException], str]) -> Any:
    """An ``openai.OpenAI`` client whose requests pass the :class:`WatchedTransport`;
    ``unreachable`` gives the line a failed connection is reported with."""
    import openai  # deferred: the openai SDK is heavy to import and only OpenAIChat needs it
    kwargs: dict[str, Any] = dict(api_key=api_key, timeout=timeout, max_retries=max_retries,
                                  http_client=sdk().WatchedClient(unreachable))
    if base_url is not None:
        kwargs['base_url'] = base_url
    return openai.OpenAI(**kwargs)


def request_body(request: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body of an OpenAI chat ``request``: its fields, with ``extra_body``'s merged in.

    It goes through the SDK's generic ``client.post`` (retries, timeouts, errors and the parsed
    ``ChatCompletion`` as ``chat.completions.create`` gives them). ``create`` first walks
    every message through the SDK's type-driven parameter transform, which only renames keys
    and encodes files: a no-op for our plain string messages, but it was 70 % of a round's CPU
    time in the training process (60 chats of a dialogue each, profiled with yappi)."""
    body = {k: v for k, v in request.items() if k != 'extra_body'}
    body.update(request.get('extra_body') or {})
    return body


def read_api_key(api_key_env: str | None) -> str:
    """The key from the environment ('EMPTY' when no key is needed); never logged."""
    if api_key_env is None:
        return 'EMPTY'
    if not isinstance(api_key_env, str) or not _ENV_NAME_RE.match(api_key_env):
        # Do not echo the value: it may be a key pasted where its variable's name belongs.
        raise ValueError('OpenAIChat api_key_env must be the NAME of an environment variable '
                         "(like 'OPENAI_API_KEY'), not the key itself; put the key in that "
                         'variable. Use api_key_env=None for a server that needs no key.')
    key = os.environ.get(api_key_env, '').strip()
    if not key:
        raise MissingAPIKeyError(
            f'OpenAIChat needs an API key, but the environment variable {api_key_env} is not '
            f'set. Set it (export {api_key_env}=...) and run again, or use the offline '
            f'stand-in backend instead (heuristic answers, no LLM): '
            f'--cfg-options agent.llm.type=Offline. For a local server that needs no key, '
            f'set agent.llm.api_key_env=None.')
    return key
