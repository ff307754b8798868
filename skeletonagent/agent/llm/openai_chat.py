"""``OpenAIChat``: an LLM behind any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama...).

One agent round is one :meth:`~.base.LLMBackend.chat_results` call holding one chat per class,
run on ``max_concurrency`` threads by the shared backend (:mod:`.base`). This module holds
what is particular to a remote model; the rest lives by job:

- :mod:`.transport`: the SDK's client and the hook on its transport, per-round budgets
  (``max_requests_per_round``, ``max_tokens_per_round``), a down server failing the round at
  once with one line naming ``base_url`` and a ``curl`` to check it;
- :mod:`.failures`: failure kinds of the SDK's errors, the API key and URL credentials
  redacted from every detail (the key is read from the variable named by ``api_key_env``,
  handed to the client only; a missing one raises :class:`MissingAPIKeyError` at
  construction);
- :mod:`.refusal`: a refused chat is asked once more with :data:`REPHRASE_PREFIX` before its
  last question;
- :mod:`.reply`: empty and malformed answers are failures, not retried (the same request at a
  fixed temperature gives the same answer);
- the response cache (:class:`~.cache.ResponseCache`).

A chat ends with an answer or one of :data:`~.results.FAILURE_KINDS`, logged as a WARNING (a
down server: one for the round); nothing is raised for one chat's failure.
:meth:`OpenAIChat.chat` raises :class:`LLMError` instead. ``openai`` is imported when an
``OpenAIChat`` is built, not when this module is.
"""
from __future__ import annotations

import logging
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from skeletonagent.registry import LLM_BACKENDS

from .base import ChatResult, LLMBackend, Message, check_messages
from .cache import ResponseCache, request_key
from .failures import (
    Failure,
    LLMError,
    MissingAPIKeyError,
    classify,
    redact_key,
    redact_url,
    why_unreachable,
)
from .refusal import REPHRASE_PREFIX, looks_like_refusal, rephrased
from .reply import reply_problem
from .transport import ChatCost, RoundBudget, current_chat, make_client, read_api_key, request_body, sdk

__all__ = ['OpenAIChat', 'LLMError', 'MissingAPIKeyError', 'REPHRASE_PREFIX', 'looks_like_refusal']

logger = logging.getLogger(__name__)

#: What replaced the deprecated ``backoff`` / ``backoff_cap``.
_BACKOFF_REPLACED_BY = ("the openai SDK's own retry backoff (exponential with jitter, at most 8 s, "
                        'honouring Retry-After); max_retries sets how many retries')

#: A completion read: (text, problem) where problem is None or (kind, detail).
_Reply = tuple[Any, 'tuple[str, str] | None']


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
        read_api_key(args.get('api_key_env', 'OPENAI_API_KEY'))

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
        api_key = read_api_key(api_key_env)  # first: a missing key is the likeliest mistake
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
        self.base_url = redact_key(redact_url(str(self._client.base_url)), api_key)

    def _make_client(self, base_url: str | None, api_key: str) -> Any:
        return make_client(base_url, api_key, self.timeout, self.max_retries, self._unreachable)

    def _unreachable(self, exc: BaseException) -> str:
        """The one line a failed connection is reported with."""
        return (f'cannot reach the LLM server at {self.base_url} '
                f'({why_unreachable(exc, self.timeout)}); check it with: '
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
        state = self.start_round()
        result = self.answer(messages, state)
        if not result.ok:
            if self._down(result, state):
                raise LLMError(result.detail, kind=result.error)
            raise LLMError(f'{self.describe()}: {result.error}: {result.detail}', kind=result.error)
        return result.text

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

    # ------------------------------------------------------------------ one round
    def start_round(self) -> RoundBudget:
        """The budgets and the server's health the chats of one round share."""
        return RoundBudget(self.max_requests_per_round, self.max_tokens_per_round)

    def log_failures(self, chats: Sequence[Sequence[Message]], results: Sequence[ChatResult],
                     round_state: Any = None) -> None:
        """A WARNING per failed chat, and one line for the round for the chats a down server
        left unanswered."""
        down = [self._down(r, round_state) for r in results]
        super().log_failures([c for c, d in zip(chats, down) if not d],
                             [r for r, d in zip(results, down) if not d], round_state)
        if any(down):  # one line for the round, not one per class
            logger.warning('%s (%d of %d chats of the round not answered)',
                           results[down.index(True)].detail, sum(down), len(results))

    def _down(self, result: ChatResult, state: RoundBudget | None) -> bool:
        """Whether ``result`` failed only because the round's server was down."""
        return (state is not None and state.down is not None and result.error == 'connection'
                and result.detail == redact_key(state.down, self._client.api_key))

    # ------------------------------------------------------------------ one chat
    def answer(self, messages: Sequence[Message], round_state: Any = None) -> ChatResult:
        """One chat of a round: the cache, the request (retried by the SDK), one more try
        after a refusal, the reply read by :func:`.reply.reply_problem`."""
        start = time.perf_counter()
        state = round_state if round_state is not None else self.start_round()
        chat = ChatCost(state)

        def result(text: str | None, error: str | None = None, detail: str = '',
                   cached: bool = False) -> ChatResult:
            detail = redact_key(detail, self._client.api_key)  # an error may echo the key
            return ChatResult(text, error=error, detail=detail, requests=chat.requests,
                              prompt_tokens=chat.prompt_tokens,
                              completion_tokens=chat.completion_tokens, cached=cached,
                              seconds=time.perf_counter() - start)

        token = current_chat.set(chat)
        try:
            check_messages(messages)
            request = self.request_for(messages)
            if self.cache is not None:
                text = self.cache.get(request)
                if text is not None:
                    return result(text, cached=True)
            outcome = self._ask(request, chat)
            if _refused(outcome):
                first_refusal = outcome[1][1]
                outcome = self._ask(rephrased(request), chat)
                if _refused(outcome):
                    return result(None, 'refusal', f'refused twice (also after the neutral '
                                                   f'rephrase): {first_refusal}')
            if isinstance(outcome, Failure):
                return result(None, outcome.kind, outcome.detail)
            text, problem = outcome
            if problem is not None:
                return result(None, *problem)
            if self.cache is not None:
                try:
                    self.cache.put(request, text, dict(
                        prompt_tokens=chat.prompt_tokens, completion_tokens=chat.completion_tokens))
                except OSError as exc:  # a full disk must not cost the answer
                    logger.warning('%s: could not cache an answer: %s', self.describe(), exc)
            return result(text)
        except Exception as exc:  # noqa: BLE001 - one chat's failure must not end a round
            return result(None, 'other', f'{type(exc).__name__}: {exc}')
        finally:
            current_chat.reset(token)

    def _ask(self, request: dict[str, Any], chat: ChatCost) -> _Reply | Failure:
        """One request, retried by the SDK: the reply, or the failure that ended it."""
        before = chat.requests
        try:
            completion = self._client.post('/chat/completions', body=request_body(request),
                                           cast_to=sdk().ChatCompletion)
        except Exception as exc:  # noqa: BLE001 - classified below
            failure = classify(exc, self.timeout, self.api_key_env, sdk().connect_errors,
                               self._unreachable)
            attempts = chat.requests - before
            if attempts > 1 and failure.kind != 'budget':
                failure.detail = f'after {attempts} attempts: {failure.detail}'
            return failure
        return _read(completion, chat)


# --------------------------------------------------------------------------- module helpers
def _read(completion: Any, chat: ChatCost) -> _Reply | Failure:
    """A completion's text and what is wrong with it (None when nothing); its tokens counted."""
    usage = getattr(completion, 'usage', None)
    prompt = int(getattr(usage, 'prompt_tokens', 0) or 0)
    answer = int(getattr(usage, 'completion_tokens', 0) or 0)
    chat.prompt_tokens += prompt
    chat.completion_tokens += answer
    chat.round.spend(prompt + answer)
    choices = getattr(completion, 'choices', None)
    if not choices:
        return Failure('malformed', f'a response without choices ({type(completion).__name__})')
    choice = choices[0]
    message = getattr(choice, 'message', None)
    if message is None:
        return Failure('malformed', 'a choice without a message')
    text = getattr(message, 'content', None)
    finish_reason = getattr(choice, 'finish_reason', None)
    return text, reply_problem(text, finish_reason=finish_reason,
                               refusal=getattr(message, 'refusal', None), detect_refusal=True)


def _refused(outcome: _Reply | Failure) -> bool:
    return not isinstance(outcome, Failure) and outcome[1] is not None \
        and outcome[1][0] == 'refusal'


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f'OpenAIChat {name} must be an integer >= {minimum}, got {value!r}')


def _check_positive(name: str, value: Any) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
    if not ok:
        raise ValueError(f'OpenAIChat {name} must be a number > 0, got {value!r}')
