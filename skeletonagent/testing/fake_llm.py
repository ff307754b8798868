"""``FakeLLMServer``: a small OpenAI-compatible chat server for tests, with scripted faults.

A TEST TOOL, not an LLM. It serves ``POST /v1/chat/completions`` and ``GET /v1/models`` on
127.0.0.1 (a free port) from daemon threads, so the real ``openai`` client can be driven
through every way a remote model fails::

    with FakeLLMServer(latency=0.1) as srv:
        srv.script([Fault.status(429, retry_after=0.2), Fault.status(500, times=3)])
        srv.when(asks_about('drink water'), Fault.refusal(times=None))
        backend = OpenAIChat(model='fake', base_url=srv.base_url, api_key_env=None)
        ...
        srv.requests        # every parsed request body, in arrival order

Answers come from a ``responder(body) -> str | Fault``; the default one asks the
:class:`~skeletonagent.agent.llm.offline.Offline` backend, so replies are well-formed for the
agent's dialogue. A fault decides the outcome of a request instead: rules added with
:meth:`FakeLLMServer.when` are checked first (in the order added), then the script of
:meth:`FakeLLMServer.script` (consumed in order, one request per ``times``).

``python -m skeletonagent.testing.llm_server`` serves one from the command line.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Union

from skeletonagent.agent.llm.offline import Offline

__all__ = ['Fault', 'FakeLLMServer', 'asks_about', 'Record', 'REFUSAL_TEXT', 'BAD_JOINTS_TEXT']

#: The content of a text refusal.
REFUSAL_TEXT = "I'm sorry, but I can't help with that request."
#: Joint numbers that no layout has (0 and numbers far above any joint count).
BAD_JOINTS_TEXT = '0, 3, 4, 99, 1000'

_REFUSAL_STYLES = ('text', 'field', 'filter')


@dataclass(frozen=True)
class Fault:
    """How the server answers one request instead of replying normally.

    Build with the class methods. ``times`` is how many requests the fault covers (None:
    every request it is offered, forever).
    """

    kind: str                       # 'status', 'hang', 'drop', 'reply', 'malformed'
    code: int = 200                 # HTTP status of 'status'
    retry_after: float | None = None   # Retry-After header (seconds) of 'status'
    seconds: float = 0.0            # how long 'hang' holds the request
    text: str | None = None      # content of 'reply' (None: null); error message of 'status'
    refusal_text: str | None = None  # the message's ``refusal`` field of 'reply'
    finish_reason: str = 'stop'
    times: int | None = 1

    @classmethod
    def status(cls, code: int, retry_after: float | None = None,
               times: int | None = 1) -> Fault:
        """An HTTP error status (429 and 503 may carry ``retry_after`` seconds)."""
        if not 400 <= code <= 599:
            raise ValueError(f'Fault.status needs an HTTP error code (4xx or 5xx), got {code}')
        return cls('status', code=code, retry_after=retry_after, times=times)

    @classmethod
    def hang(cls, seconds: float = 5.0, times: int | None = 1) -> Fault:
        """Hold the request ``seconds`` (longer than the client's timeout), then reply."""
        return cls('hang', seconds=float(seconds), times=times)

    @classmethod
    def drop(cls, times: int | None = 1) -> Fault:
        """Close the connection without a response."""
        return cls('drop', times=times)

    @classmethod
    def reply(cls, text: str | None, times: int | None = 1) -> Fault:
        """A normal completion whose content is ``text`` (None: a null content)."""
        return cls('reply', text=text, times=times)

    @classmethod
    def refusal(cls, style: str = 'text', times: int | None = 1) -> Fault:
        """The model declines: in words (``'text'``), through the message's ``refusal``
        field with no content (``'field'``), or by a ``content_filter`` finish reason with
        no content (``'filter'``)."""
        if style not in _REFUSAL_STYLES:
            raise ValueError(f'refusal style must be one of {_REFUSAL_STYLES}, got {style!r}')
        if style == 'text':
            return cls('reply', text=REFUSAL_TEXT, times=times)
        if style == 'field':
            return cls('reply', text=None, refusal_text=REFUSAL_TEXT, times=times)
        return cls('reply', text=None, finish_reason='content_filter', times=times)

    @classmethod
    def empty(cls, times: int | None = 1) -> Fault:
        """A completion with empty content."""
        return cls('reply', text='', times=times)

    @classmethod
    def malformed(cls, times: int | None = 1) -> Fault:
        """Status 200 with a truncated, unparseable JSON body."""
        return cls('malformed', times=times)

    @classmethod
    def bad_joints(cls, times: int | None = 1) -> Fault:
        """A reply naming joint numbers out of range of every layout."""
        return cls('reply', text=BAD_JOINTS_TEXT, times=times)


Responder = Callable[[dict], Union[str, Fault]]
Predicate = Callable[[dict], bool]


def _first_user_text(body: dict) -> str:
    for message in body.get('messages') or []:
        if isinstance(message, dict) and message.get('role') == 'user':
            content = message.get('content')
            return content if isinstance(content, str) else json.dumps(content)
    return ''


def asks_about(action: str) -> Predicate:
    """A predicate for :meth:`FakeLLMServer.when`: the chat is about class ``action`` (its
    first user message quotes the name, as the agent's questions do)."""
    quoted = f"'{action}'"
    return lambda body: quoted in _first_user_text(body)


@dataclass
class Record:
    """One request the server received, and what it did with it."""

    path: str
    body: Any                 # the parsed JSON body (None when it did not parse)
    headers: dict[str, str]   # names in lower case
    outcome: str = ''         # 'ok', 'status 429', 'hang', 'drop', 'reply', 'malformed', ...
    time: float = field(default_factory=time.monotonic)


class _Rule:
    def __init__(self, fault: Fault, predicate: Predicate | None = None) -> None:
        self.fault, self.predicate, self.left = fault, predicate, fault.times

    def take(self) -> Fault:
        if self.left is not None:
            self.left -= 1
        return self.fault

    @property
    def spent(self) -> bool:
        return self.left is not None and self.left <= 0


class _Handler(BaseHTTPRequestHandler):
    server_version = 'FakeLLMServer/1'
    owner: FakeLLMServer  # set on the per-server subclass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib name
        pass  # keep test output clean

    # -------------------------------------------------------------- responses
    def _send_json(self, code: int, payload: Any, headers: dict | None = None) -> None:
        self._send_raw(code, json.dumps(payload).encode(), headers)

    def _send_raw(self, code: int, data: bytes, headers: dict | None = None) -> None:
        try:
            self.send_response(code)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timed out) first

    def _send_error(self, code: int, message: str, headers: dict | None = None) -> None:
        kind = {429: 'rate_limit_exceeded', 400: 'invalid_request_error'}.get(code, 'server_error')
        self._send_json(code, {'error': {'message': message, 'type': kind, 'code': code}}, headers)

    # -------------------------------------------------------------- routes
    def do_GET(self) -> None:  # noqa: N802 - the stdlib name
        if self.path.rstrip('/') in ('/v1/models', '/models'):
            self._send_json(200, {'object': 'list', 'data': [
                {'id': self.owner.model, 'object': 'model', 'created': 0,
                 'owned_by': 'skeletonagent-test'}]})
        else:
            self._send_error(404, f'no route GET {self.path}')

    def do_POST(self) -> None:  # noqa: N802 - the stdlib name
        length = int(self.headers.get('Content-Length') or 0)
        raw = self.rfile.read(length) if length else b''
        if self.path.rstrip('/') not in ('/v1/chat/completions', '/chat/completions'):
            self._send_error(404, f'no route POST {self.path}')
            return
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        record = self.owner._record(self.path, body, {k.lower(): v for k, v in self.headers.items()})
        if not isinstance(body, dict) or not isinstance(body.get('messages'), list):
            record.outcome = 'bad request'
            self._send_error(400, 'the body must be a JSON object with a "messages" list')
            return
        self.owner._wait(self.owner.latency)
        fault, outcome = self.owner._fault_for(body), ''
        if fault is None:
            fault, outcome = self.owner._answer(body)
        record.outcome = outcome or (f'status {fault.code}' if fault.kind == 'status' else fault.kind)
        self._apply(fault, body)

    def _apply(self, fault: Fault, body: dict) -> None:
        if fault.kind == 'status':
            headers = {}
            if fault.retry_after is not None:
                value = fault.retry_after
                headers['Retry-After'] = str(int(value)) if float(value).is_integer() else str(value)
            self._send_error(fault.code, fault.text or f'scripted fault: HTTP {fault.code}', headers)
            return
        if fault.kind == 'drop':
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.close_connection = True
            return
        if fault.kind == 'malformed':
            self._send_raw(200, b'{"id": "chatcmpl-broken", "object": "chat.completion", "choi')
            return
        if fault.kind == 'hang':
            self.owner._wait(fault.seconds)
            self._send_json(200, self.owner._completion(body, 'late answer'))
            return
        if fault.kind == 'reply':
            self._send_json(200, self.owner._completion(body, fault.text, fault.refusal_text,
                                                         fault.finish_reason))
            return
        raise ValueError(f'unknown fault kind {fault.kind!r}')


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default listen backlog of 5 drops the SYNs of a burst of concurrent
    # requests, which the client's kernel retries only after a second; real servers queue them
    request_queue_size = 256


class FakeLLMServer:
    """An OpenAI-compatible chat server on 127.0.0.1 for tests (see the module docstring).

    Args:
        responder: ``body -> str | Fault``, the answer to a request no fault claims;
            default: the Offline backend's answer for ``layout``.
        latency: seconds each request waits before it is answered (in its own thread, so
            concurrent requests overlap).
        model: the model id ``GET /v1/models`` lists.
        layout: skeleton layout of the default responder.
        port: 0 picks a free port.
    """

    def __init__(self, responder: Responder | None = None, latency: float = 0.0,
                 model: str = 'fake-llm', layout: str = 'nturgb+d', host: str = '127.0.0.1',
                 port: int = 0) -> None:
        self.responder = responder
        self.latency = float(latency)
        self.model = model
        self.layout = layout
        self.host = host
        self.port = int(port)
        self._lock = threading.Lock()
        self._records: list[Record] = []
        self._rules: list[_Rule] = []     # predicate rules
        self._script: list[_Rule] = []    # the queue
        self._offline = None
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # -------------------------------------------------------------- lifecycle
    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, the OpenAI client's ``base_url``."""
        return f'http://{self.host}:{self.port}/v1'

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def start(self) -> FakeLLMServer:
        """Start serving (on a free port the first time, on the same port afterwards)."""
        if self._httpd is not None:
            return self
        handler = type('Handler', (_Handler,), {'owner': self})
        self._httpd = _Server((self.host, self.port), handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._stopping.clear()
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs=dict(poll_interval=0.05),
                                        name=f'FakeLLMServer:{self.port}', daemon=True)
        self._thread.start()
        return self

    def down(self) -> None:
        """Stop listening: new connections are refused until :meth:`up`. Requests being
        answered finish; records, script and rules are kept."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def up(self) -> FakeLLMServer:
        """Listen again on the same port after :meth:`down`."""
        return self.start()

    def stop(self) -> None:
        """Stop for good: also wakes requests that hang or wait out their latency."""
        self._stopping.set()
        self.down()

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -------------------------------------------------------------- scripting
    def script(self, faults: Iterable[Fault]) -> None:
        """Append faults to the queue applied to the next requests, in order (each to
        ``fault.times`` requests)."""
        with self._lock:
            self._script.extend(_Rule(f) for f in faults)

    def when(self, predicate: Predicate, fault: Fault) -> None:
        """Apply ``fault`` to requests whose body satisfies ``predicate`` (``fault.times``
        of them; None: all). Rules are checked before the script."""
        with self._lock:
            self._rules.append(_Rule(fault, predicate))

    def reset(self) -> None:
        """Forget records, script and rules."""
        with self._lock:
            self._records.clear()
            self._rules.clear()
            self._script.clear()

    # -------------------------------------------------------------- what happened
    @property
    def records(self) -> list[Record]:
        with self._lock:
            return list(self._records)

    @property
    def requests(self) -> list[Any]:
        """The parsed bodies of all chat requests received, in arrival order."""
        with self._lock:
            return [r.body for r in self._records]

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self._records)

    @property
    def counts(self) -> Counter:
        """Requests by outcome ('ok', 'status 429', 'drop', 'hang', 'reply', ...)."""
        with self._lock:
            return Counter(r.outcome for r in self._records)

    # -------------------------------------------------------------- internals
    def _record(self, path: str, body: Any, headers: dict[str, str]) -> Record:
        record = Record(path, body, headers)
        with self._lock:
            self._records.append(record)
        return record

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)

    def _fault_for(self, body: dict) -> Fault | None:
        with self._lock:
            for rule in self._rules:
                if not rule.spent and rule.predicate(body):
                    return rule.take()
            while self._script and self._script[0].spent:
                self._script.pop(0)
            if self._script:
                return self._script[0].take()
        return None

    def _answer(self, body: dict) -> tuple[Fault, str]:
        """The responder's answer as a fault to apply, and the outcome to record."""
        try:
            answer = (self.responder or self._offline_answer)(body)
        except Exception as exc:  # noqa: BLE001 - report to the client as a 500
            return Fault('status', code=500, text=f'responder failed: {type(exc).__name__}: {exc}'), \
                'responder error'
        if isinstance(answer, Fault):
            return answer, ''
        if not isinstance(answer, str):
            return Fault('status', code=500, text=f'the responder must return a str or a Fault, '
                                                  f'got {type(answer).__name__}'), 'responder error'
        return Fault.reply(answer), 'ok'

    def _offline_answer(self, body: dict) -> str:
        with self._lock:
            if self._offline is None:
                self._offline = Offline(layout=self.layout)
            offline = self._offline
        messages = [{'role': m.get('role'), 'content': m.get('content')}
                    for m in body['messages'] if isinstance(m, dict)]
        return offline.chat(messages)

    def _completion(self, body: dict, text: str | None, refusal: str | None = None,
                    finish_reason: str = 'stop') -> dict:
        prompt = sum(len(str(m.get('content') or '')) for m in body.get('messages', [])
                     if isinstance(m, dict))
        completion = len(text or refusal or '')
        with self._lock:
            number = len(self._records)
        return {
            'id': f'chatcmpl-fake-{number}', 'object': 'chat.completion',
            'created': int(time.time()), 'model': body.get('model', self.model),
            'choices': [{'index': 0, 'finish_reason': finish_reason, 'logprobs': None,
                         'message': {'role': 'assistant', 'content': text, 'refusal': refusal}}],
            'usage': {'prompt_tokens': prompt // 4 + 1, 'completion_tokens': (completion + 3) // 4,
                      'total_tokens': prompt // 4 + 1 + (completion + 3) // 4},
        }

