"""OpenAIChat driven through the real ``openai`` client against FakeLLMServer: retries (the
SDK's), failure kinds, refusals, budgets, concurrency, a down server, the API key and the
endpoint."""
import logging
import socket
import threading
import warnings

import pytest

from skeletonagent.agent import PromptSet, build_backend
from skeletonagent.agent.llm import LLMError, MissingAPIKeyError, OpenAIChat, RoundStats
from skeletonagent.agent.llm.failures import why_unreachable as _why_unreachable
from skeletonagent.agent.llm.openai_chat import REPHRASE_PREFIX, looks_like_refusal
from skeletonagent.skeleton import get_layout
from skeletonagent.testing import FakeLLMServer, Fault, asks_about

NAMES = ['drink water', 'eat meal', 'brushing teeth', 'brushing hair', 'drop', 'pickup',
         'throw', 'sitting down']
PROMPTS = PromptSet()
NTU = get_layout('nturgb+d')


def chats(names=NAMES):
    """Round-1 chats, one per class."""
    return [[{'role': 'user', 'content': PROMPTS.initial_questions(n, NTU)[0]}] for n in names]


def backend(srv, **kwargs):
    args = dict(model='fake-llm', base_url=srv.base_url, api_key_env=None, timeout=5.0)
    args.update(kwargs)
    return OpenAIChat(**args)


@pytest.fixture
def srv():
    with FakeLLMServer() as server:
        yield server


def test_answers_come_back_in_order_with_their_cost(srv):
    results = backend(srv).chat_results(chats())
    assert [r.ok for r in results] == [True] * len(NAMES)
    for name, result in zip(NAMES, results):
        assert f"'{name}'" in result.text
        assert result.requests == 1 and result.prompt_tokens > 0 and result.completion_tokens > 0
        assert not result.cached
    stats = RoundStats.from_results(results, 0.1)
    assert stats.requests == len(NAMES) and stats.num_failed == 0
    assert srv.request_count == len(NAMES)
    body = srv.requests[0]
    assert body['model'] == 'fake-llm' and body['temperature'] == 0.0 and body['max_tokens'] == 512


def test_429_then_success_honours_retry_after(srv):
    srv.script([Fault.status(429, retry_after=0.3)])
    result, = backend(srv).chat_results(chats(['drink water']))
    assert result.ok and result.requests == 2
    first, retry = srv.records
    assert retry.time - first.time >= 0.3          # waited what the server asked
    assert srv.counts == {'status 429': 1, 'ok': 1}


def test_a_retry_after_longer_than_the_client_waits_is_not_retried(srv):
    """The SDK waits at most 2 minutes for a Retry-After; a longer one ends the chat at
    once, and the detail says what the server asked."""
    srv.script([Fault.status(503, retry_after=600, times=None)])
    result, = backend(srv, max_retries=3).chat_results(chats(['drink water']))
    assert result.error == 'server_error' and result.requests == 1
    assert 'Retry-After: 600' in result.detail


def test_500_storm_fails_one_class_and_spares_the_others(srv):
    srv.when(asks_about('throw'), Fault.status(500, times=None))
    results = backend(srv, max_retries=3).chat_results(chats())
    failed = {NAMES[i]: r for i, r in enumerate(results) if not r.ok}
    assert list(failed) == ['throw']
    assert failed['throw'].error == 'server_error' and failed['throw'].requests == 4
    assert all(r.ok and r.requests == 1 for r in results if r is not failed['throw'])


def test_rate_limit_exhausted(srv):
    srv.script([Fault.status(429, times=None)])
    result, = backend(srv, max_retries=2).chat_results(chats(['drop']))
    assert result.error == 'rate_limit' and result.requests == 3


def test_timeout(srv):
    srv.script([Fault.hang(30.0, times=None)])
    result, = backend(srv, timeout=0.3, max_retries=1).chat_results(chats(['drop']))
    assert result.error == 'timeout' and result.requests == 2 and srv.counts == {'hang': 2}
    assert 'after 2 attempts' in result.detail and 'no answer within 0.3 s' in result.detail


def test_dropped_connection_is_retried(srv):
    srv.script([Fault.drop()])
    result, = backend(srv).chat_results(chats(['drop']))
    assert result.ok and result.requests == 2
    srv.script([Fault.drop(times=None)])
    result, = backend(srv, max_retries=1).chat_results(chats(['drop']))
    assert result.error == 'connection' and result.requests == 2


def test_refusal_is_retried_once_with_the_rephrase(srv):
    srv.script([Fault.refusal()])
    result, = backend(srv).chat_results(chats(['drink water']))
    assert result.ok and result.requests == 2
    first, second = (body['messages'][-1]['content'] for body in srv.requests)
    assert not first.startswith(REPHRASE_PREFIX)
    assert second == REPHRASE_PREFIX + first


@pytest.mark.parametrize('style', ['text', 'field', 'filter'])
def test_refused_twice_is_a_refusal(srv, style):
    srv.when(asks_about('drop'), Fault.refusal(style, times=None))
    results = backend(srv).chat_results(chats(['drop', 'pickup']))
    assert results[0].error == 'refusal' and results[0].requests == 2
    assert results[1].ok


def test_refusal_heuristic():
    assert looks_like_refusal("I'm sorry, but I can't assist with that.")
    assert looks_like_refusal('I cannot help with this request.')
    assert looks_like_refusal('I\u2019m sorry, I can\u2019t provide that.')
    assert not looks_like_refusal("The person can't keep the arms still; the hands rise.")
    assert not looks_like_refusal('Head: stays still.\nArms: move.')
    assert not looks_like_refusal('')


@pytest.mark.parametrize('fault, kind', [(Fault.empty(), 'empty'), (Fault.reply(None), 'empty'),
                                         (Fault.reply('  \n'), 'empty'),
                                         (Fault.malformed(), 'malformed')])
def test_empty_and_malformed_content(srv, fault, kind):
    srv.script([fault])
    result, = backend(srv).chat_results(chats(['drop']))
    assert result.error == kind and result.requests == 1   # not retried


def unreachable_line(url):
    return f'cannot reach the LLM server at {url} (connection refused); check it with: curl {url}/models'


def test_a_server_down_for_the_round_fails_every_chat_fast(srv, caplog):
    """A refused connection before any answer of the round: every chat fails at once, with
    no retry (at most the one attempt each chat had made), and one warning for the round."""
    srv.down()
    chat_backend = backend(srv, max_retries=4)
    with caplog.at_level(logging.WARNING, logger='skeletonagent.agent.llm.openai_chat'):
        results = chat_backend.chat_results(chats())
    line = unreachable_line(srv.base_url)
    assert [(r.error, r.detail) for r in results] == [('connection', line)] * len(NAMES)
    assert all(r.requests <= 1 for r in results) and srv.request_count == 0
    warnings_ = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings_ == [f'{line} ({len(NAMES)} of {len(NAMES)} chats of the round not answered)']
    srv.up()                                        # back for the next round, same backend
    assert all(r.ok for r in chat_backend.chat_results(chats()))


def test_a_closed_port_is_one_line_naming_the_url(monkeypatch):
    """Issue 12: the error of an unreachable server is one short line naming base_url and
    how to check it, never the SDK's repr, and never the key."""
    secret = 'sk-closed-port-0123456789abcdef'
    monkeypatch.setenv('SKA_TEST_KEY', secret)
    with socket.socket() as sock:                  # a port nothing listens on
        sock.bind(('127.0.0.1', 0))
        url = f'http://127.0.0.1:{sock.getsockname()[1]}/v1'
    chat_backend = OpenAIChat(model='m', base_url=url, api_key_env='SKA_TEST_KEY', max_retries=3)
    try:
        with pytest.raises(LLMError) as info:
            chat_backend.chat(chats(['drop'])[0])
        assert str(info.value).splitlines()[0] == unreachable_line(url)
        assert info.value.kind == 'connection' and secret not in str(info.value)
        results = chat_backend.chat_results(chats(NAMES[:3]))
        assert [(r.error, r.detail) for r in results] == [('connection', unreachable_line(url))] * 3
    finally:
        chat_backend.close()


def test_why_a_server_is_unreachable():
    assert _why_unreachable(ConnectionRefusedError(111, 'Connection refused'), 60) == \
        'connection refused'
    assert _why_unreachable(socket.gaierror(-2, 'Name or service not known'), 60) == \
        'host name not found'
    assert _why_unreachable(TimeoutError('timed out'), 5.0) == 'no connection within 5 s'


class Meeting:
    """A responder that answers only once ``parties`` requests are inside the server together
    (a barrier), and keeps the most it held at once: concurrency without a clock."""

    def __init__(self, parties):
        self.barrier = threading.Barrier(parties, timeout=60)
        self.lock = threading.Lock()
        self.inside = self.peak = 0

    def __call__(self, body):
        with self.lock:
            self.inside += 1
            self.peak = max(self.peak, self.inside)
        try:
            self.barrier.wait()
        finally:
            with self.lock:
                self.inside -= 1
        return 'Head: still. Arms: rise to the mouth.'


def test_chats_run_concurrently():
    meeting = Meeting(len(NAMES))
    with FakeLLMServer(responder=meeting) as server:
        results = backend(server, max_concurrency=8, timeout=120).chat_results(chats())
    assert all(r.ok for r in results) and meeting.peak == len(NAMES) == 8


def test_concurrency_is_bounded():
    meeting = Meeting(2)
    with FakeLLMServer(responder=meeting) as server:
        results = backend(server, max_concurrency=2, timeout=120).chat_results(chats(NAMES[:6]))
    assert all(r.ok for r in results) and meeting.peak == 2     # pairs, never more


def test_request_budget(srv):
    chat_backend = backend(srv, max_requests_per_round=3)
    results = chat_backend.chat_results(chats(NAMES[:5]))
    assert sorted(r.error or 'ok' for r in results) == ['budget', 'budget', 'ok', 'ok', 'ok']
    assert srv.request_count == 3
    assert all(r.requests == 0 for r in results if r.error == 'budget')
    # The budget is per round.
    assert sum(r.ok for r in chat_backend.chat_results(chats(NAMES[:3]))) == 3


def test_token_budget(srv):
    results = backend(srv, max_tokens_per_round=10, max_concurrency=1).chat_results(chats(NAMES[:3]))
    assert [r.error for r in results] == [None, 'budget', 'budget']
    assert srv.request_count == 1


def test_a_retry_the_budget_cannot_pay_for(srv):
    srv.script([Fault.status(500)])
    result, = backend(srv, max_requests_per_round=1).chat_results(chats(['drop']))
    assert result.error == 'budget' and 'server_error' in result.detail and result.requests == 1


def test_client_errors_are_not_retried(srv):
    srv.script([Fault.status(400), Fault.status(401)])
    bad, auth = (backend(srv, max_concurrency=1).chat_results(chats([n]))[0] for n in ['drop', 'throw'])
    assert bad.error == 'other' and bad.requests == 1 and '400' in bad.detail
    assert auth.error == 'other' and 'authentication' in auth.detail


def test_chat_raises_llm_error_naming_the_kind(srv):
    chat_backend = backend(srv, max_retries=0)
    assert "'drop'" in chat_backend.chat(chats(['drop'])[0])
    srv.script([Fault.status(503)])
    with pytest.raises(LLMError, match='server_error') as info:
        chat_backend.chat(chats(['drop'])[0])
    assert info.value.kind == 'server_error'
    srv.when(asks_about('throw'), Fault.empty(times=None))
    drop, throw = chat_backend.chat_results(chats(['drop', 'throw']))
    assert drop.ok and "'drop'" in drop.text and throw.error == 'empty' and throw.text is None


def test_a_warning_per_failed_class(srv, caplog):
    srv.when(asks_about('throw'), Fault.status(500, times=None))
    srv.when(asks_about('drop'), Fault.empty(times=None))
    with caplog.at_level(logging.WARNING, logger='skeletonagent.agent.llm.openai_chat'):
        backend(srv, max_retries=1).chat_results(chats())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert any("'throw'" in w and 'server_error' in w for w in warnings)
    assert any("'drop'" in w and 'empty' in w for w in warnings)


def test_system_prompt_and_extra_body_are_sent(srv):
    backend(srv, system_prompt='You are a kinesiologist.', extra_body={'top_p': 0.5},
            temperature=None).chat_results(chats(['drop']))
    body = srv.requests[0]
    assert body['messages'][0] == {'role': 'system', 'content': 'You are a kinesiologist.'}
    assert body['top_p'] == 0.5 and 'temperature' not in body


def test_the_request_is_what_the_sdks_create_would_send(srv):
    """Requests go through the SDK's generic ``post`` (``create`` spends most of a round's CPU
    transforming plain messages): the server must receive the body ``create`` sends, with the
    same headers that matter, and the reply parsed the same way."""
    import openai

    chat = backend(srv, system_prompt='Be brief.', extra_body={'top_p': 0.5}, max_tokens=64)
    messages = chats(['drop'])[0] + [{'role': 'assistant', 'content': 'It falls.'},
                                     {'role': 'user', 'content': 'Which joints move? \u2019quoted\u2019'}]
    ours = chat.chat(messages)
    sdk = openai.OpenAI(base_url=srv.base_url, api_key='sk-test', max_retries=0)
    theirs = sdk.chat.completions.create(**chat.request_for(messages)).choices[0].message.content
    ours_record, sdk_record = srv.records
    assert ours_record.path == sdk_record.path and ours_record.body == sdk_record.body
    assert ours == theirs
    assert ours_record.headers.get('content-type') == sdk_record.headers.get('content-type')


def test_missing_key_stops_at_construction(monkeypatch):
    monkeypatch.delenv('SKA_TEST_KEY', raising=False)
    with pytest.raises(MissingAPIKeyError) as info:
        OpenAIChat(model='gpt-4o', api_key_env='SKA_TEST_KEY')
    message = str(info.value)
    assert 'SKA_TEST_KEY' in message and 'agent.llm.type=Offline' in message
    monkeypatch.setenv('SKA_TEST_KEY', '  ')
    with pytest.raises(LLMError, match='SKA_TEST_KEY'):
        build_backend(dict(type='OpenAIChat', model='gpt-4o', api_key_env='SKA_TEST_KEY'))


def test_a_key_given_as_the_variable_name_is_not_echoed():
    with pytest.raises(ValueError) as info:
        OpenAIChat(model='gpt-4o', api_key_env='sk-proj-SECRET123')
    assert 'SECRET123' not in str(info.value) and 'NAME of an environment variable' in str(info.value)


def test_the_key_is_sent_but_never_shown(srv, monkeypatch, caplog):
    secret = 'sk-test-very-secret-0123456789'
    monkeypatch.setenv('SKA_TEST_KEY', secret)
    chat_backend = backend(srv, api_key_env='SKA_TEST_KEY', max_retries=0)
    srv.script([Fault.status(401)])
    with caplog.at_level(logging.DEBUG):
        result, = chat_backend.chat_results(chats(['drop']))
    assert srv.records[0].headers['authorization'] == f'Bearer {secret}'
    shown = [chat_backend.describe(), repr(chat_backend), str(vars(chat_backend)), result.detail,
             caplog.text]
    assert not any(secret in text for text in shown)
    assert chat_backend.describe() == f'OpenAIChat(fake-llm @ {srv.base_url})'


def test_no_key_for_local_servers(srv):
    backend(srv, api_key_env=None).chat_results(chats(['drop']))
    assert srv.records[0].headers['authorization'] == 'Bearer EMPTY'


def test_base_url_none_honours_openai_base_url(srv, monkeypatch):
    monkeypatch.setenv('OPENAI_BASE_URL', srv.base_url)
    chat_backend = build_backend(dict(type='OpenAIChat', model='fake-llm', api_key_env=None))
    assert isinstance(chat_backend, OpenAIChat) and str(srv.port) in chat_backend.describe()
    assert chat_backend.chat_results(chats(['drop']))[0].ok and srv.request_count == 1


def test_credentials_in_the_url_are_redacted(srv):
    url = srv.base_url.replace('http://', 'http://user:hunter2@')
    assert 'hunter2' not in OpenAIChat(model='m', base_url=url, api_key_env=None).describe()


@pytest.mark.parametrize('bad', [dict(max_concurrency=0), dict(timeout=0), dict(max_retries=-1),
                                 dict(max_requests_per_round=1.5), dict(model='')])
def test_bad_arguments(bad):
    args = dict(model='m', base_url='http://127.0.0.1:9/v1', api_key_env=None)
    args.update(bad)
    with pytest.raises(ValueError, match=next(iter(bad)) if 'model' not in bad else 'model'):
        OpenAIChat(**args)


@pytest.mark.parametrize('key, value', [('backoff', 0.5), ('backoff_cap', 20.0)])
def test_backoff_keys_are_accepted_with_a_deprecation_warning(srv, key, value):
    """The SDK owns the backoff: the old keys still build a backend, and say what replaced
    them."""
    with pytest.warns(FutureWarning, match=rf"{key} is deprecated and ignored.*openai SDK.*max_retries"):
        chat_backend = backend(srv, **{key: value})
    assert chat_backend.chat_results(chats(['drop']))[0].ok
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        backend(srv)                               # no warning without them


def test_requests_go_through_the_environment_proxy(srv, monkeypatch):
    """The SDK client keeps honouring HTTP_PROXY (our accounting wraps the transport httpx
    picks for each request, proxies included): the request for another host reaches the
    proxy, here the test server, which has no route for a proxied URL (404)."""
    for name in ('NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy', 'http_proxy'):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv('HTTP_PROXY', f'http://127.0.0.1:{srv.port}')
    chat_backend = OpenAIChat(model='m', base_url='http://llm.invalid/v1', api_key_env=None)
    try:
        result, = chat_backend.chat_results(chats(['drop']))
    finally:
        chat_backend.close()
    assert result.error == 'other' and result.requests == 1
    assert 'no route POST http://llm.invalid/v1/chat/completions' in result.detail
