"""``OpenAIChat``: an LLM behind any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama...).

One agent round is one :meth:`OpenAIChat.chat_results` call holding one chat per class. The
chats run concurrently on a bounded thread pool; each is retried with exponential backoff
(plus jitter, honouring ``Retry-After``) on 429, 5xx, timeouts and connection errors, and
ends either with an answer or with one of :data:`~.base.FAILURE_KINDS`:

- ``rate_limit`` / ``server_error`` / ``timeout`` / ``connection``: still failing after
  ``max_retries`` retries. When a chat of the round has exhausted its retries on connection
  errors and nothing in the round has succeeded, the server counts as down and the other
  chats stop retrying connection errors, so a down server fails the round quickly.
- ``refusal``: the model declined twice; a refused chat is asked once more with
  :data:`REPHRASE_PREFIX` before its last question.
- ``empty`` / ``malformed``: no content, or a response that does not parse (not retried: at
  a fixed temperature the same request gives the same answer).
- ``budget``: the round's ``max_requests_per_round`` / ``max_tokens_per_round`` was spent
  before the chat could be (re)asked. Tokens are known only once answers arrive, so requests
  in flight may overshoot the token budget by at most ``max_concurrency`` answers.
- ``other``: anything else, e.g. HTTP 400/401/404 (not retried); the detail says what.

Nothing is raised for one chat's failure; each is logged as a WARNING naming its kind.
:meth:`OpenAIChat.chat` raises :class:`LLMError` instead.

The API key is read from the environment variable named by ``api_key_env`` and handed to
the client only: it is never a config value and never appears in logs, ``repr`` or
``describe()``. A missing key raises :class:`MissingAPIKeyError` at construction, so a
training run stops at start rather than discovering it rounds later.

The ``openai`` package is imported when an ``OpenAIChat`` is built, not when this module is.
"""
from __future__ import annotations

import email.utils
import logging
import os
import random
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence, Union
from urllib.parse import urlsplit, urlunsplit

from skeletonagent.registry import LLM_BACKENDS

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


class LLMError(RuntimeError):
    """An LLM backend could not answer; ``kind`` is one of ``FAILURE_KINDS`` (None for a
    configuration error)."""

    def __init__(self, message: str, kind: Optional[str] = None) -> None:
        super().__init__(message)
        self.kind = kind


class MissingAPIKeyError(LLMError):
    """The environment variable that should hold the API key is unset or empty."""


def looks_like_refusal(text: Optional[str]) -> bool:
    """Whether an answer's opening reads as the model declining ("I'm sorry, but I can't")."""
    if not text:
        return False
    head = text[:_REFUSAL_WINDOW].replace('\u2019', "'")
    return _REFUSAL_RE.search(head) is not None


# --------------------------------------------------------------------------- helpers
def _progress_bar(total: int, desc: Optional[str]):
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
    finish_reason: Optional[str]
    refusal: Optional[str]

    def problem(self) -> Optional[tuple[str, str]]:
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
    retryable: bool = False
    retry_after: Optional[float] = None


@dataclass
class _Cost:
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Round:
    """The budget and health of one ``chat_results`` call, shared by its threads."""

    def __init__(self, max_requests: Optional[int], max_tokens: Optional[int]) -> None:
        self.max_requests, self.max_tokens = max_requests, max_tokens
        self.lock = threading.Lock()
        self.requests = 0
        self.tokens = 0
        self.succeeded = False
        self.unreachable = False

    def reserve(self) -> Optional[str]:
        """Count one more request, or say why the budget forbids it."""
        with self.lock:
            if self.max_requests is not None and self.requests >= self.max_requests:
                return f'the round request budget ({self.max_requests}) is spent'
            if self.max_tokens is not None and self.tokens >= self.max_tokens:
                return f'the round token budget ({self.max_tokens:,}) is spent ({self.tokens:,} used)'
            self.requests += 1
            return None

    def spend(self, tokens: int) -> None:
        with self.lock:
            self.tokens += tokens


def _retry_after(exc: Exception) -> Optional[float]:
    """Seconds the server asked to wait (``retry-after-ms`` or ``Retry-After``), if any."""
    headers = getattr(getattr(exc, 'response', None), 'headers', None)
    if not headers:
        return None
    try:
        if headers.get('retry-after-ms'):
            return max(0.0, float(headers['retry-after-ms']) / 1000)
        value = headers.get('retry-after')
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


def _redact_url(url: str) -> str:
    """``url`` without user:password (a key can hide there too)."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ''
        netloc = f'***@{host}' + (f':{parts.port}' if parts.port else '')
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts).rstrip('/')


def _redact_key(text: str, api_key: Optional[str]) -> str:
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
        timeout: seconds per request.
        max_retries: retries of a request after 429, 5xx, timeouts and connection errors.
        max_concurrency: chats of a round in flight at once.
        backoff, backoff_cap: the n-th retry waits ``backoff * 2**n`` seconds, capped at
            ``backoff_cap``, times a random factor in [0.5, 1]; a ``Retry-After`` from the
            server replaces it (also capped at ``backoff_cap``).
        max_requests_per_round, max_tokens_per_round: budgets of one ``chat_results`` call
            (None: unlimited); chats left when one is spent fail with ``'budget'``.
        cache_dir: a :class:`ResponseCache` folder; answered requests are not asked again.
        system_prompt: a system message put first in chats that have none.
        extra_body: extra JSON fields of every request (e.g. ``{'top_p': 0.9}``).
    """

    def __init__(self, model: str, base_url: Optional[str] = None,
                 api_key_env: Optional[str] = 'OPENAI_API_KEY', temperature: Optional[float] = 0.0,
                 max_tokens: Optional[int] = 512, timeout: float = 60.0, max_retries: int = 4,
                 max_concurrency: int = 32, backoff: float = 0.5, backoff_cap: float = 20.0,
                 max_requests_per_round: Optional[int] = None,
                 max_tokens_per_round: Optional[int] = None,
                 cache_dir: Union[str, 'os.PathLike[str]', None] = None,
                 system_prompt: Optional[str] = None,
                 extra_body: Optional[Mapping[str, Any]] = None) -> None:
        if not isinstance(model, str) or not model:
            raise ValueError(f'OpenAIChat needs a model name, got {model!r}')
        api_key = _read_api_key(api_key_env)  # first: a missing key is the likeliest mistake
        _check_positive('timeout', timeout)
        _check_int('max_retries', max_retries, 0)
        _check_int('max_concurrency', max_concurrency, 1)
        _check_positive('backoff', backoff, zero_ok=True)
        _check_positive('backoff_cap', backoff_cap, zero_ok=True)
        for name, value in (('max_requests_per_round', max_requests_per_round),
                            ('max_tokens_per_round', max_tokens_per_round)):
            if value is not None:
                _check_int(name, value, 0)
        self.model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.max_concurrency = int(max_concurrency)
        self.backoff, self.backoff_cap = float(backoff), float(backoff_cap)
        self.max_requests_per_round = max_requests_per_round
        self.max_tokens_per_round = max_tokens_per_round
        self.system_prompt = system_prompt
        self.extra_body = dict(extra_body) if extra_body else None
        self.api_key_env = api_key_env
        self.cache = ResponseCache(cache_dir) if cache_dir is not None else None
        if self.cache is not None:  # fail now, not in every chat, if extra_body is not JSON
            request_key(self.request_for([{'role': 'user', 'content': ''}]))
        self._client = self._make_client(base_url, api_key)
        self.base_url = _redact_url(str(self._client.base_url))

    def _make_client(self, base_url: Optional[str], api_key: str) -> Any:
        import openai  # deferred: importing it takes ~0.7 s
        kwargs: dict[str, Any] = dict(api_key=api_key, timeout=self.timeout, max_retries=0)
        if base_url is not None:
            kwargs['base_url'] = base_url
        return openai.OpenAI(**kwargs)

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
        result = self._run_chat(messages, self._new_round())
        if not result.ok:
            raise LLMError(f'{self.describe()}: {result.error}: {result.detail}', kind=result.error)
        return result.text

    def chat_many(self, chats: Sequence[Sequence[Message]]) -> list[str]:
        """Answers to all chats; raises :class:`LLMError` naming the failures if any."""
        results = self.chat_results(chats)
        failed = [(i, r) for i, r in enumerate(results) if not r.ok]
        if failed:
            shown = '; '.join(f'chat {i + 1}: {r.error} ({r.detail})' for i, r in failed[:3])
            more = f' (and {len(failed) - 3} more)' if len(failed) > 3 else ''
            raise LLMError(f'{self.describe()}: {len(failed)} of {len(results)} chats failed: '
                           f'{shown}{more}', kind=failed[0][1].error)
        return [r.text for r in results]

    def chat_results(self, chats: Sequence[Sequence[Message]],
                     progress: Optional[Callable[[ChatResult], None]] = None
                     ) -> list[ChatResult]:
        """Outcomes of one round of chats, in order (see the module docstring).

        ``progress`` is called with each chat's result as it finishes (one call at a time);
        without it a tqdm bar over the chats is shown on stderr when that is a terminal or
        ``SKELETONAGENT_PROGRESS=1`` (``=0`` turns it off).
        """
        chats = list(chats)
        if not chats:
            return []
        bar = _progress_bar(len(chats), self.describe()) if progress is None else None
        if bar is not None:
            def progress(result: ChatResult) -> None:
                bar.update(1)
        lock = threading.Lock()
        state = self._new_round()

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
        for i, (chat, result) in enumerate(zip(chats, results)):
            if not result.ok:
                logger.warning('%s: no answer for %s: %s after %d request(s): %s', self.describe(),
                               _chat_label(chat, i, len(chats)), result.error, result.requests,
                               result.detail)
        return results

    # ------------------------------------------------------------------ one chat
    def _new_round(self) -> _Round:
        return _Round(self.max_requests_per_round, self.max_tokens_per_round)

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
        cost = _Cost()

        def result(text: Optional[str], error: Optional[str] = None, detail: str = '',
                   cached: bool = False) -> ChatResult:
            detail = _redact_key(detail, self._client.api_key)  # an error may echo the key
            return ChatResult(text, error=error, detail=detail, requests=cost.requests,
                              prompt_tokens=cost.prompt_tokens,
                              completion_tokens=cost.completion_tokens, cached=cached,
                              seconds=time.perf_counter() - start)

        try:
            check_messages(messages)
            request = self.request_for(messages)
            if self.cache is not None:
                text = self.cache.get(request)
                if text is not None:
                    return result(text, cached=True)
            outcome = self._ask(request, state, cost)
            if _refused(outcome):
                first_refusal = outcome.problem()[1]
                outcome = self._ask(_rephrased(request), state, cost)
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
                        prompt_tokens=cost.prompt_tokens, completion_tokens=cost.completion_tokens))
                except OSError as exc:  # a full disk must not cost the answer
                    logger.warning('%s: could not cache an answer: %s', self.describe(), exc)
            return result(outcome.text)
        except Exception as exc:  # noqa: BLE001 - one chat's failure must not end a round
            return result(None, 'other', f'{type(exc).__name__}: {exc}')

    def _ask(self, request: dict[str, Any], state: _Round, cost: _Cost) -> Union[_Reply, _Failure]:
        """One request with its retries: the reply, or the failure that ended them."""
        failure: Optional[_Failure] = None
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(self._delay(attempt - 1, failure.retry_after))
            refused = state.reserve()
            if refused is not None:
                last = f'; last error: {failure.kind}: {failure.detail}' if failure else ''
                return _Failure('budget', refused + last)
            cost.requests += 1
            try:
                completion = self._client.chat.completions.create(**request)
            except Exception as exc:  # noqa: BLE001 - classified below
                failure = _classify(exc, self.api_key_env)
            else:
                reply = self._parse(completion, state, cost)
                if isinstance(reply, _Reply):
                    state.succeeded = True
                return reply
            if not failure.retryable:
                return failure
            if failure.kind == 'connection' and state.unreachable:
                failure.detail += ' (the server is down for this round: not retried)'
                return failure
        if failure.kind == 'connection' and not state.succeeded:
            state.unreachable = True
        failure.detail = f'after {self.max_retries + 1} attempts: {failure.detail}'
        return failure

    def _delay(self, retry: int, retry_after: Optional[float]) -> float:
        if retry_after is not None:
            return min(retry_after, self.backoff_cap)
        return min(self.backoff * 2 ** retry, self.backoff_cap) * random.uniform(0.5, 1.0)

    @staticmethod
    def _parse(completion: Any, state: _Round, cost: _Cost) -> Union[_Reply, _Failure]:
        usage = getattr(completion, 'usage', None)
        prompt = int(getattr(usage, 'prompt_tokens', 0) or 0)
        answer = int(getattr(usage, 'completion_tokens', 0) or 0)
        cost.prompt_tokens += prompt
        cost.completion_tokens += answer
        state.spend(prompt + answer)
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
def _refused(outcome: Union[_Reply, _Failure]) -> bool:
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


def _classify(exc: Exception, api_key_env: Optional[str]) -> _Failure:
    """The failure kind of an exception raised by the ``openai`` client."""
    import openai
    text = f'{type(exc).__name__}: {exc}'
    if isinstance(exc, openai.APITimeoutError):
        return _Failure('timeout', text, retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        return _Failure('connection', text + (f' ({cause})' if cause else ''), retryable=True)
    if isinstance(exc, openai.APIStatusError):
        code = exc.status_code
        if code == 429:
            return _Failure('rate_limit', text, retryable=True, retry_after=_retry_after(exc))
        if code >= 500:
            return _Failure('server_error', text, retryable=True, retry_after=_retry_after(exc))
        if code == 408:
            return _Failure('timeout', text, retryable=True)
        if code in (401, 403):
            where = f'the key in {api_key_env}' if api_key_env else 'the endpoint (no key sent)'
            return _Failure('other', f'{text} (authentication refused: check {where})')
        return _Failure('other', text)
    if isinstance(exc, (openai.APIResponseValidationError, ValueError)):
        return _Failure('malformed', f'unparseable response: {text}')
    return _Failure('other', text)


def _read_api_key(api_key_env: Optional[str]) -> str:
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


def _check_positive(name: str, value: Any, zero_ok: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) \
        and (value >= 0 if zero_ok else value > 0)
    if not ok:
        raise ValueError(f'OpenAIChat {name} must be a number {">=" if zero_ok else ">"} 0, '
                         f'got {value!r}')
