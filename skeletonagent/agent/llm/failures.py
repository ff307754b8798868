"""Why a request to an LLM server failed, in the agent's words, with no secret in them.

An exception of the ``openai`` client becomes a :class:`Failure`: one of
:data:`~.results.FAILURE_KINDS` and a one-line detail (:func:`classify`); an HTTP status its
kind (:func:`status_kind`); a connection that could not be made one reason
(:func:`why_unreachable`). Server error messages may echo the API key, and a base URL may
hold a user and password: :func:`redact_key` and :func:`redact_url` take them out of every
detail and log line.
"""
from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

__all__ = ['LLMError', 'MissingAPIKeyError', 'Failure', 'classify', 'status_kind',
           'why_unreachable', 'redact_key', 'redact_url', 'stopped_by']


class LLMError(RuntimeError):
    """An LLM backend could not answer; ``kind`` is one of ``FAILURE_KINDS`` (None for a
    configuration error)."""

    def __init__(self, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind


class MissingAPIKeyError(LLMError):
    """The environment variable that should hold the API key is unset or empty."""


@dataclass
class Failure:
    """Why a request has no answer: a kind of :data:`~.results.FAILURE_KINDS` and a detail."""

    kind: str
    detail: str


def status_kind(code: int) -> str:
    """The failure kind of an HTTP error status."""
    if code == 429:
        return 'rate_limit'
    if code >= 500:
        return 'server_error'
    if code == 408:
        return 'timeout'
    return 'other'


def why_unreachable(exc: BaseException, timeout: float) -> str:
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


def redact_url(url: str) -> str:
    """``url`` without user:password (a key can hide there too)."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ''
        netloc = f'***@{host}' + (f':{parts.port}' if parts.port else '')
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts).rstrip('/')


def redact_key(text: str, api_key: str | None) -> str:
    """``text`` with the API key replaced (a server's error message may echo it)."""
    if not text or not api_key or api_key == 'EMPTY' or len(api_key) < 8:
        return text
    return text.replace(api_key, f'{api_key[:3]}...(redacted)')


def stopped_by(exc: BaseException | None) -> Failure | None:
    """The :class:`Failure` of the transport's stop that ended a request, if one did: the
    stop exception carries it as ``failure`` (openai 3 raises it as is; older SDKs wrap it in
    an ``APIConnectionError``, so the cause chain is walked)."""
    while exc is not None:
        failure = getattr(exc, 'failure', None)
        if isinstance(failure, Failure):
            return failure
        exc = exc.__cause__ or exc.__context__
    return None


def classify(exc: BaseException, timeout: float, api_key_env: str | None,
             connect_errors: tuple[type, ...],
             unreachable: Callable[[BaseException], str]) -> Failure:
    """The failure of an exception raised by the ``openai`` client.

    Args:
        timeout: the client's timeout, named in a timeout's detail.
        api_key_env: the key's variable, named when the server refuses the key.
        connect_errors: the HTTP library's errors of a connection that could not be made.
        unreachable: the one line such a connection is reported with.
    """
    import openai  # deferred: openai is heavy, and only OpenAIChat needs it
    stop = stopped_by(exc)
    if stop is not None:
        return stop
    text = f'{type(exc).__name__}: {exc}'
    if isinstance(exc, openai.APITimeoutError):
        return Failure('timeout', f'{text} (no answer within {timeout:g} s)')
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, connect_errors):
            return Failure('connection', unreachable(cause))
        return Failure('connection', text + (f' ({cause})' if cause else ''))
    if isinstance(exc, openai.APIStatusError):
        kind = status_kind(exc.status_code)
        retry_after = exc.response.headers.get('retry-after')
        if retry_after:
            text += f' (Retry-After: {retry_after})'
        if exc.status_code in (401, 403):
            where = (f'the key in {api_key_env}' if api_key_env
                     else 'the endpoint (no key sent)')
            text += f' (authentication refused: check {where})'
        return Failure(kind, text)
    if isinstance(exc, (openai.APIResponseValidationError, ValueError)):
        return Failure('malformed', f'unparseable response: {text}')
    return Failure('other', text)
