"""``OpenAIChat``: an LLM behind any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama...).

One agent round is one :meth:`OpenAIChat.chat_results` call holding one chat per class, run
on ``max_concurrency`` threads. The ``openai`` SDK retries a request (408, 409, 429, 5xx,
timeouts, connection errors; ``max_retries`` times, its exponential backoff with jitter,
honouring ``Retry-After`` up to two minutes). What the SDK has no notion of is ours:

- per-round budgets (``max_requests_per_round``, ``max_tokens_per_round``), checked before
  every HTTP attempt, retries included; tokens are known only once answers arrive, so the
  token budget may be overshot by at most ``max_concurrency`` answers;
- a refused chat is asked once more with :data:`REPHRASE_PREFIX` before its last question;
- empty and malformed answers are failures, not retried (the same request at a fixed
  temperature gives the same answer);
- the response cache (:class:`~.cache.ResponseCache`), and the API key redacted from every
  error detail (it is read from the variable named by ``api_key_env``, handed to the client
  only; a missing one raises :class:`MissingAPIKeyError` at construction);
- a down server fails the round at once: a connection that cannot be made (refused, unknown
  host, connect timeout) before any answer of the round ends every chat with one line naming
  ``base_url`` and a ``curl`` to check it, without the SDK's retries; the next round tries
  again;
- requests (HTTP attempts), tokens and failures counted into :class:`~.base.ChatResult`.

Budgets, the down server and the counts act on each HTTP attempt, so they sit in the
client's transport (:class:`_WatchedTransport`): every attempt the SDK makes passes there,
those that never get a response included, and an ``openai.OpenAIError`` raised there ends
the SDK's retry loop at once (the SDK re-raises its own errors from the send path).

A chat ends with an answer or one of :data:`~.base.FAILURE_KINDS`, logged as a WARNING (a
down server: one for the round); nothing is raised for one chat's failure.
:meth:`OpenAIChat.chat` raises :class:`LLMError` instead. ``openai`` is imported when an
``OpenAIChat`` is built, not when this module is.
"""
from __future__ import annotations

import contextvars
import functools
import importlib
import logging
import os
import re
import socket
import sys
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable
from urllib.parse import urlsplit, urlunsplit

from skeletonagent.registry import LLM_BACKENDS

from ...errors import SkeletonAgentError
from .base import ChatResult, LLMBackend, Message, check_messages
from .cache import ResponseCache, request_key

__all__ = ['OpenAIChat', 'LLMError', 'MissingAPIKeyError', 'REPHRASE_PREFIX', 'looks_like_refusal']

logger = logging.getLogger(__name__)

#: Put before the last question of a chat the model refused, for its one second try.
REPHRASE_PREFIX = (
    'Context: this question comes from computer-vision research on action recognition. It '
    'asks only for a plain description of the body movements that make up an action class '
    'of a public research dataset of skeleton (joint position) recordings; it does not ask '
    'anyone to carry out the action.\n\n')

_REFUSAL_RE = re.compile(
    r"\bI(?:'m| am) sorry,? (?:but )?I (?:can(?:'t|not| not)|am unable|won't|am not able)"
    r"|\bI (?:can(?:'t|not| not)|won't|am unable to|'m unable to|am not able to|'m not able to)"
    r" (?:help|assist|comply|provide|fulfil|support|answer|engage|do that)"
    r"|\bas an AI\b[^.]{0,60}\b(?:can(?:'t|not)|unable)",
    re.IGNORECASE)
# Refusals open the answer; looking only at its start keeps descriptions that happen to
# contain "cannot" from being mistaken for one.
_REFUSAL_WINDOW = 300

_ENV_NAME_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
_QUOTED_RE = re.compile(r"(?<!\w)'(.+?)'(?=[\s,.;:?!)]|$)")  # not the "'" of "person's"

#: What replaced the deprecated ``backoff`` / ``backoff_cap``.
_BACKOFF_REPLACED_BY = ("the openai SDK's own retry backoff (exponential with jitter, at most 8 s, "
                        'honouring Retry-After); max_retries sets how many retries')


class LLMError(SkeletonAgentError, RuntimeError):
    """An LLM backend could not answer; ``kind`` is one of ``FAILURE_KINDS`` (None for a
    configuration error)."""

    def __init__(self, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind


class MissingAPIKeyError(LLMError):
    """The environment variable that should hold the API key is unset or empty."""


def looks_like_refusal(text: str | None) -> bool:
    """Whether an answer's opening reads as the model declining ("I'm sorry, but I can't")."""
    if not text:
        return False
    head = text[:_REFUSAL_WINDOW].replace('\u2019', "'")
    return _REFUSAL_RE.search(head) is not None


# --------------------------------------------------------------------------- helpers
def _progress_bar(total: int, desc: str | None):
    """A tqdm bar over a round's chats on stderr, or None: shown when stderr is a terminal or
    ``SKELETONAGENT_PROGRESS=1``, never when it is ``0`` (logs stay free of bars)."""
    flag = os.environ.get('SKELETONAGENT_PROGRESS', '').strip().lower()
    if flag in ('0', 'false', 'no', 'off'):
        return None
    try:
        if flag not in ('1', 'true', 'yes', 'on') and not sys.stderr.isatty():
            return None
        from tqdm import tqdm
        return tqdm(total=total, desc=f'agent round ({desc})' if desc else 'agent round',
                    unit='class', leave=False, file=sys.stderr)
    except Exception:  # noqa: BLE001 - no bar rather than no round
        return None


@dataclass
class _Reply:
    """A parsed completion."""

    text: Any
    finish_reason: str | None
    refusal: str | None

    def problem(self) -> tuple[str, str] | None:
        """``(kind, detail)`` when the reply is not a usable answer."""
        if self.refusal:
            return 'refusal', f'refusal field: {self.refusal[:120]!r}'
        if self.finish_reason == 'content_filter':
            return 'refusal', 'finish_reason content_filter'
        if self.text is None:
            return 'empty', f'no content (finish_reason {self.finish_reason})'
        if not isinstance(self.text, str):
            return 'malformed', f'content of type {type(self.text).__name__}'
        if not self.text.strip():
            return 'empty', f'blank content (finish_reason {self.finish_reason})'
        if looks_like_refusal(self.text):
            return 'refusal', f'declined: {self.text[:120]!r}'
        return None


@dataclass
class _Failure:
    kind: str
    detail: str


class _Round:
    """The budgets and the server's health of one ``chat_results`` call, shared by its
    threads."""

    def __init__(self, max_requests: int | None, max_tokens: int | None) -> None:
        self.max_requests, self.max_tokens = max_requests, max_tokens
        self.lock = threading.Lock()
        self.requests = 0
        self.tokens = 0
        self.answered = False              # some HTTP attempt of the round got a response
        self.down: str | None = None    # why the server counts as unreachable

    def admit(self) -> _Failure | None:
        """Count one more HTTP attempt, or say why the round forbids it."""
        with self.lock:
            if self.down is not None:
                return _Failure('connection', self.down)
            if self.max_requests is not None and self.requests >= self.max_requests:
                return _Failure('budget', f'the round request budget ({self.max_requests}) is spent')
            if self.max_tokens is not None and self.tokens >= self.max_tokens:
                return _Failure('budget', f'the round token budget ({self.max_tokens:,}) is spent '
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
class _Chat:
    """What one chat has cost so far; the transport counts into it."""

    round: _Round
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    last_error: str = ''     # the outcome of the last failed HTTP attempt, for budget details


#: The chat whose request the current thread is sending (None outside ``_run_chat``).
_CURRENT_CHAT: contextvars.ContextVar[_Chat | None] = contextvars.ContextVar(
    'skeletonagent_openai_chat', default=None)


@functools.cache
def _sdk() -> SimpleNamespace:
    """What needs ``openai`` (imported on first use, not with this module): ``RoundStop``,
    the ``OpenAIError`` the transport raises to end a request without the SDK's retries;
    ``WatchedClient``, the SDK's default HTTP client (its limits and timeouts, proxies from
    the environment) whose every request goes through a :class:`_WatchedTransport`;
    ``connect_errors``, the httpx errors of a connection that could not be made;
    ``ChatCompletion``, the parsed response type."""
    import openai
    # httpx2 for openai 3, httpx before: the errors caught must be those of the SDK's client
    client = next(c for c in openai.DefaultHttpxClient.__mro__ if c.__name__ == 'Client')
    httpx = importlib.import_module(client.__module__.partition('.')[0])
    connect_errors = (httpx.ConnectError, httpx.ConnectTimeout)

    class RoundStop(openai.OpenAIError):
        def __init__(self, failure: _Failure) -> None:
            super().__init__(failure.detail)
            self.failure = failure

    class WatchedClient(openai.DefaultHttpxClient):
        def __init__(self, unreachable: Callable[[BaseException], str], **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._unreachable = unreachable

        def _transport_for_url(self, url: Any) -> Any:
            # httpx picks each request's transport here (its pool, or a proxy's); wrapping the
            # pick rather than passing transport= keeps the environment's proxies working
            return _WatchedTransport(super()._transport_for_url(url), connect_errors,
                                     self._unreachable)

    from openai.types.chat import ChatCompletion
    return SimpleNamespace(RoundStop=RoundStop, WatchedClient=WatchedClient,
                           connect_errors=connect_errors, ChatCompletion=ChatCompletion)


class _WatchedTransport:
    """An HTTP transport of the SDK's client with the round's accounting around each attempt
    (see the module docstring): counts it, refuses it when the round's budget is spent or
    its server is down, and marks the server down on a connection that cannot be made."""

    def __init__(self, inner: Any, connect_errors: tuple[type, ...],
                 unreachable: Callable[[BaseException], str]) -> None:
        self.inner = inner
        self.connect_errors = connect_errors
        self.unreachable = unreachable

    def handle_request(self, request: Any) -> Any:
        chat = _CURRENT_CHAT.get()
        if chat is None:
            return self.inner.handle_request(request)
        refused = chat.round.admit()
        if refused is not None:
            if refused.kind == 'budget' and chat.last_error:
                refused.detail += f'; last error: {chat.last_error}'
            raise _sdk().RoundStop(refused)
        chat.requests += 1
        try:
            response = self.inner.handle_request(request)
        except self.connect_errors as exc:
            why = self.unreachable(exc)
            chat.last_error = f'connection: {why}'
            if chat.round.unreachable(why):
                raise _sdk().RoundStop(_Failure('connection', why)) from exc
            raise
        except Exception as exc:
            chat.last_error = f'{type(exc).__name__}: {exc}'
            raise
        chat.round.heard()
        if response.status_code >= 400:
            chat.last_error = f'{_status_kind(response.status_code)}: HTTP {response.status_code}'
        return response


def _request_body(request: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body of ``request`` (:meth:`OpenAIChat.request_for`): its fields, with
    ``extra_body``'s merged in.

    It goes through the SDK's generic ``client.post`` (retries, timeouts, errors and the parsed
    ``ChatCompletion`` as ``chat.completions.create`` gives them). ``create`` first walks
    every message through the SDK's type-driven parameter transform, which only renames keys
    and encodes files: a no-op for our plain string messages, but it was 70 % of a round's CPU
    time in the training process (60 chats of a dialogue each, profiled with yappi)."""
    body = {k: v for k, v in request.items() if k != 'extra_body'}
    body.update(request.get('extra_body') or {})
    return body


def _status_kind(code: int) -> str:
    """The failure kind of an HTTP error status."""
    if code == 429:
        return 'rate_limit'
    if code >= 500:
        return 'server_error'
    if code == 408:
        return 'timeout'
    return 'other'


def _why_unreachable(exc: BaseException, timeout: float) -> str:
    """'connection refused', 'host name not found', ... for a failed connection."""
    seen = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return 'connection refused'
        if isinstance(seen, socket.gaierror):
            return 'host name not found'
        if isinstance(seen, (TimeoutError, socket.timeout)) or 'Timeout' in type(seen).__name__:
            return f'no connection within {timeout:g} s'
        seen = seen.__cause__ or seen.__context__
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:100]


def _redact_url(url: str) -> str:
    """``url`` without user:password (a key can hide there too)."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ''
        netloc = f'***@{host}' + (f':{parts.port}' if parts.port else '')
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts).rstrip('/')


def _redact_key(text: str, api_key: str | None) -> str:
    """``text`` with the API key replaced (a server's error message may echo it)."""
    if not text or not api_key or api_key == 'EMPTY' or len(api_key) < 8:
        return text
    return text.replace(api_key, f'{api_key[:3]}...(redacted)')


def _chat_label(messages: Sequence[Message], index: int, total: int) -> str:
    """'drink water' (chat 3 of 60): the class named by the chat's first question, if any."""
    first = next((m.get('content', '') for m in messages
                  if isinstance(m, dict) and m.get('role') == 'user'), '')
    quoted = _QUOTED_RE.findall(first) if isinstance(first, str) else []
    where = f'chat {index + 1} of {total}'
    return f"'{quoted[0]}' ({where})" if quoted else where


# --------------------------------------------------------------------------- backend
@LLM_BACKENDS.register_module()
class OpenAIChat(LLMBackend):
    """A model behind an OpenAI-compatible ``/chat/completions`` endpoint.

    Args:
        model: model name sent with every request.
        base_url: endpoint, e.g. ``http://localhost:8000/v1``; None leaves it to the
            ``openai`` client (its ``OPENAI_BASE_URL`` environment variable, else OpenAI).
        api_key_env: NAME of the environment variable holding the key (the key itself is
            never a config value); None for local servers that need no key.
        temperature, max_tokens: sampling settings (None: not sent, the server's default).
        timeout: seconds per HTTP attempt.
        max_retries: retries of a request by the ``openai`` SDK (408, 409, 429, 5xx,
            timeouts, connection errors; its backoff, honouring ``Retry-After``).
        max_concurrency: chats of a round in flight at once.
        backoff, backoff_cap: deprecated and ignored (the SDK owns the backoff); a
            ``FutureWarning`` says so.
        max_requests_per_round, max_tokens_per_round: budgets of one ``chat_results`` call
            (None: unlimited), retries included; chats left when one is spent fail with
            ``'budget'``.
        cache_dir: a :class:`ResponseCache` folder; answered requests are not asked again.
        system_prompt: a system message put first in chats that have none.
        extra_body: extra JSON fields of every request (e.g. ``{'top_p': 0.9}``).
    """

    @classmethod
    def check_arguments(cls, args: dict) -> None:
        """The API key's variable is set (the key is read, never shown)."""
        _read_api_key(args.get('api_key_env', 'OPENAI_API_KEY'))

    def __init__(self, model: str, base_url: str | None = None,
                 api_key_env: str | None = 'OPENAI_API_KEY', temperature: float | None = 0.0,
                 max_tokens: int | None = 512, timeout: float = 60.0, max_retries: int = 4,
                 max_concurrency: int = 32, backoff: float | None = None,
                 backoff_cap: float | None = None,
                 max_requests_per_round: int | None = None,
                 max_tokens_per_round: int | None = None,
                 cache_dir: str | os.PathLike[str] | None = None,
                 system_prompt: str | None = None,
                 extra_body: Mapping[str, Any] | None = None) -> None:
        if not isinstance(model, str) or not model:
            raise ValueError(f'OpenAIChat needs a model name, got {model!r}')
        api_key = _read_api_key(api_key_env)  # first: a missing key is the likeliest mistake
        _check_positive('timeout', timeout)
        _check_int('max_retries', max_retries, 0)
        _check_int('max_concurrency', max_concurrency, 1)
        for name, value in (('max_requests_per_round', max_requests_per_round),
                            ('max_tokens_per_round', max_tokens_per_round)):
            if value is not None:
                _check_int(name, value, 0)
        for name, value in (('backoff', backoff), ('backoff_cap', backoff_cap)):
            if value is not None:
                warnings.warn(f'OpenAIChat {name} is deprecated and ignored: replaced by '
                              f'{_BACKOFF_REPLACED_BY}. Remove {name} from the config.',
                              FutureWarning, stacklevel=2)
        self.model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.max_concurrency = int(max_concurrency)
        self.max_requests_per_round = max_requests_per_round
        self.max_tokens_per_round = max_tokens_per_round
        self.system_prompt = system_prompt
        self.extra_body = dict(extra_body) if extra_body else None
        self.api_key_env = api_key_env
        self.cache = ResponseCache(cache_dir) if cache_dir is not None else None
        if self.cache is not None:  # fail now, not in every chat, if extra_body is not JSON
            request_key(self.request_for([{'role': 'user', 'content': ''}]))
        self._client = self._make_client(base_url, api_key)
        self.base_url = _redact_key(_redact_url(str(self._client.base_url)), api_key)

    def _make_client(self, base_url: str | None, api_key: str) -> Any:
        import openai  # deferred: importing it takes ~0.7 s
        kwargs: dict[str, Any] = dict(api_key=api_key, timeout=self.timeout,
                                      max_retries=self.max_retries,
                                      http_client=_sdk().WatchedClient(self._unreachable))
        if base_url is not None:
            kwargs['base_url'] = base_url
        return openai.OpenAI(**kwargs)

    def _unreachable(self, exc: BaseException) -> str:
        """The one line a failed connection is reported with."""
        return (f'cannot reach the LLM server at {self.base_url} '
                f'({_why_unreachable(exc, self.timeout)}); check it with: '
                f'curl {self.base_url}/models')

    # ------------------------------------------------------------------ public
    def describe(self) -> str:
        return f'OpenAIChat({self.model} @ {self.base_url})'

    def __repr__(self) -> str:
        return self.describe()

    def close(self) -> None:
        self._client.close()

    def chat(self, messages: Sequence[Message]) -> str:
        """The answer to one chat (a round of its own for the budgets); raises
        :class:`LLMError` (with its ``kind``) when there is none."""
        state = self._new_round()
        result = self._run_chat(messages, state)
        if not result.ok:
            if _down_result(result, state, self._client.api_key):
                raise LLMError(result.detail, kind=result.error)
            raise LLMError(f'{self.describe()}: {result.error}: {result.detail}', kind=result.error)
        return result.text

    def chat_many(self, chats: Sequence[Sequence[Message]]) -> list[str]:
        """Answers to all chats; raises :class:`LLMError` naming the failures if any (only
        the one line of a down server when that is why)."""
        results, state = self._round(chats, None)
        failed = [(i, r) for i, r in enumerate(results) if not r.ok]
        if failed and all(_down_result(r, state, self._client.api_key) for _, r in failed):
            raise LLMError(failed[0][1].detail, kind='connection')
        if failed:
            shown = '; '.join(f'chat {i + 1}: {r.error} ({r.detail})' for i, r in failed[:3])
            more = f' (and {len(failed) - 3} more)' if len(failed) > 3 else ''
            raise LLMError(f'{self.describe()}: {len(failed)} of {len(results)} chats failed: '
                           f'{shown}{more}', kind=failed[0][1].error)
        return [r.text for r in results]

    def chat_results(self, chats: Sequence[Sequence[Message]],
                     progress: Callable[[ChatResult], None] | None = None
                     ) -> list[ChatResult]:
        """Outcomes of one round of chats, in order (see the module docstring).

        ``progress`` is called with each chat's result as it finishes (one call at a time);
        without it a tqdm bar over the chats is shown on stderr when that is a terminal or
        ``SKELETONAGENT_PROGRESS=1`` (``=0`` turns it off).
        """
        return self._round(chats, progress)[0]

    # ------------------------------------------------------------------ one round
    def _new_round(self) -> _Round:
        return _Round(self.max_requests_per_round, self.max_tokens_per_round)

    def _round(self, chats: Sequence[Sequence[Message]],
               progress: Callable[[ChatResult], None] | None
               ) -> tuple[list[ChatResult], _Round]:
        chats = list(chats)
        state = self._new_round()
        if not chats:
            return [], state
        bar = _progress_bar(len(chats), self.describe()) if progress is None else None
        if bar is not None:
            def progress(result: ChatResult) -> None:
                bar.update(1)
        lock = threading.Lock()

        def run(chat) -> ChatResult:
            result = self._run_chat(chat, state)
            if progress is not None:
                with lock:
                    try:
                        progress(result)
                    except Exception:  # noqa: BLE001 - progress display must not fail a chat
                        logger.debug('progress callback failed', exc_info=True)
            return result

        workers = min(self.max_concurrency, len(chats))
        try:
            if workers == 1:
                results = [run(chat) for chat in chats]
            else:
                with ThreadPoolExecutor(workers, thread_name_prefix='OpenAIChat') as pool:
                    results = list(pool.map(run, chats))
        finally:
            if bar is not None:
                bar.close()
        down = [_down_result(r, state, self._client.api_key) for r in results]
        for i, (chat, result) in enumerate(zip(chats, results)):
            if not result.ok and not down[i]:
                logger.warning('%s: no answer for %s: %s after %d request(s): %s', self.describe(),
                               _chat_label(chat, i, len(chats)), result.error, result.requests,
                               result.detail)
        if any(down):  # one line for the round, not one per class
            logger.warning('%s (%d of %d chats of the round not answered)',
                           results[down.index(True)].detail, sum(down), len(results))
        return results, state

    # ------------------------------------------------------------------ one chat
    def request_for(self, messages: Sequence[Message]) -> dict[str, Any]:
        """The request sent for ``messages`` (also the cache key's content)."""
        messages = [dict(m) for m in messages]
        if self.system_prompt and not any(m['role'] == 'system' for m in messages):
            messages.insert(0, {'role': 'system', 'content': self.system_prompt})
        request: dict[str, Any] = dict(model=self.model, messages=messages)
        if self.temperature is not None:
            request['temperature'] = self.temperature
        if self.max_tokens is not None:
            request['max_tokens'] = self.max_tokens
        if self.extra_body:
            request['extra_body'] = self.extra_body
        return request

    def _run_chat(self, messages: Sequence[Message], state: _Round) -> ChatResult:
        start = time.perf_counter()
        chat = _Chat(state)

        def result(text: str | None, error: str | None = None, detail: str = '',
                   cached: bool = False) -> ChatResult:
            detail = _redact_key(detail, self._client.api_key)  # an error may echo the key
            return ChatResult(text, error=error, detail=detail, requests=chat.requests,
                              prompt_tokens=chat.prompt_tokens,
                              completion_tokens=chat.completion_tokens, cached=cached,
                              seconds=time.perf_counter() - start)

        token = _CURRENT_CHAT.set(chat)
        try:
            check_messages(messages)
            request = self.request_for(messages)
            if self.cache is not None:
                text = self.cache.get(request)
                if text is not None:
                    return result(text, cached=True)
            outcome = self._ask(request, chat)
            if _refused(outcome):
                first_refusal = outcome.problem()[1]
                outcome = self._ask(_rephrased(request), chat)
                if _refused(outcome):
                    return result(None, 'refusal', f'refused twice (also after the neutral '
                                                   f'rephrase): {first_refusal}')
            if isinstance(outcome, _Failure):
                return result(None, outcome.kind, outcome.detail)
            problem = outcome.problem()
            if problem is not None:
                return result(None, *problem)
            if self.cache is not None:
                try:
                    self.cache.put(request, outcome.text, dict(
                        prompt_tokens=chat.prompt_tokens, completion_tokens=chat.completion_tokens))
                except OSError as exc:  # a full disk must not cost the answer
                    logger.warning('%s: could not cache an answer: %s', self.describe(), exc)
            return result(outcome.text)
        except Exception as exc:  # noqa: BLE001 - one chat's failure must not end a round
            return result(None, 'other', f'{type(exc).__name__}: {exc}')
        finally:
            _CURRENT_CHAT.reset(token)

    def _ask(self, request: dict[str, Any], chat: _Chat) -> _Reply | _Failure:
        """One request, retried by the SDK: the reply, or the failure that ended it."""
        before = chat.requests
        try:
            completion = self._client.post('/chat/completions', body=_request_body(request),
                                           cast_to=_sdk().ChatCompletion)
        except Exception as exc:  # noqa: BLE001 - classified below
            failure = self._classify(exc)
            attempts = chat.requests - before
            if attempts > 1 and failure.kind != 'budget':
                failure.detail = f'after {attempts} attempts: {failure.detail}'
            return failure
        return self._parse(completion, chat)

    def _classify(self, exc: BaseException) -> _Failure:
        """The failure kind of an exception raised by the ``openai`` client."""
        import openai
        stop = _round_stop(exc)
        if stop is not None:
            return stop.failure
        text = f'{type(exc).__name__}: {exc}'
        if isinstance(exc, openai.APITimeoutError):
            return _Failure('timeout', f'{text} (no answer within {self.timeout:g} s)')
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, _sdk().connect_errors):
                return _Failure('connection', self._unreachable(cause))
            return _Failure('connection', text + (f' ({cause})' if cause else ''))
        if isinstance(exc, openai.APIStatusError):
            kind = _status_kind(exc.status_code)
            retry_after = exc.response.headers.get('retry-after')
            if retry_after:
                text += f' (Retry-After: {retry_after})'
            if exc.status_code in (401, 403):
                where = (f'the key in {self.api_key_env}' if self.api_key_env
                         else 'the endpoint (no key sent)')
                text += f' (authentication refused: check {where})'
            return _Failure(kind, text)
        if isinstance(exc, (openai.APIResponseValidationError, ValueError)):
            return _Failure('malformed', f'unparseable response: {text}')
        return _Failure('other', text)

    @staticmethod
    def _parse(completion: Any, chat: _Chat) -> _Reply | _Failure:
        usage = getattr(completion, 'usage', None)
        prompt = int(getattr(usage, 'prompt_tokens', 0) or 0)
        answer = int(getattr(usage, 'completion_tokens', 0) or 0)
        chat.prompt_tokens += prompt
        chat.completion_tokens += answer
        chat.round.spend(prompt + answer)
        choices = getattr(completion, 'choices', None)
        if not choices:
            return _Failure('malformed', f'a response without choices ({type(completion).__name__})')
        choice = choices[0]
        message = getattr(choice, 'message', None)
        if message is None:
            return _Failure('malformed', 'a choice without a message')
        return _Reply(getattr(message, 'content', None), getattr(choice, 'finish_reason', None),
                      getattr(message, 'refusal', None))


# --------------------------------------------------------------------------- module helpers
def _round_stop(exc: BaseException) -> Any:
    """The ``RoundStop`` that ended a request, if one did (openai 3 raises it as is; older
    SDKs wrap it in an ``APIConnectionError``)."""
    while exc is not None:
        if isinstance(exc, _sdk().RoundStop):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _down_result(result: ChatResult, state: _Round, api_key: str | None) -> bool:
    """Whether ``result`` failed only because the round's server was down."""
    return (state.down is not None and result.error == 'connection'
            and result.detail == _redact_key(state.down, api_key))


def _refused(outcome: _Reply | _Failure) -> bool:
    if not isinstance(outcome, _Reply):
        return False
    problem = outcome.problem()
    return problem is not None and problem[0] == 'refusal'


def _rephrased(request: dict[str, Any]) -> dict[str, Any]:
    """``request`` with :data:`REPHRASE_PREFIX` before its last user message."""
    messages = [dict(m) for m in request['messages']]
    last = max(i for i, m in enumerate(messages) if m['role'] == 'user')
    messages[last]['content'] = REPHRASE_PREFIX + messages[last]['content']
    return dict(request, messages=messages)


def _read_api_key(api_key_env: str | None) -> str:
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


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f'OpenAIChat {name} must be an integer >= {minimum}, got {value!r}')


def _check_positive(name: str, value: Any) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
    if not ok:
        raise ValueError(f'OpenAIChat {name} must be a number > 0, got {value!r}')
