"""FakeLLMServer, the OpenAI-compatible test server: driven with the real ``openai`` client."""
import json
import urllib.error
import urllib.request

import openai
import pytest

from skeletonagent.agent import PromptSet
from skeletonagent.skeleton import get_layout
from skeletonagent.testing import FakeLLMServer, Fault, asks_about
from skeletonagent.testing.llm_server import BAD_JOINTS_TEXT, REFUSAL_TEXT

QUESTION = PromptSet().initial_questions('drink water', get_layout('nturgb+d'))[2]


def client(srv, timeout=5.0):
    return openai.OpenAI(api_key='EMPTY', base_url=srv.base_url, max_retries=0, timeout=timeout)


def ask(srv, question=QUESTION, **kwargs):
    return client(srv, **kwargs).chat.completions.create(
        model='fake-llm', messages=[{'role': 'user', 'content': question}])


def test_answers_like_an_openai_server():
    with FakeLLMServer() as srv:
        assert srv.base_url == f'http://127.0.0.1:{srv.port}/v1' and srv.port > 0
        completion = ask(srv)
        numbers = [int(n) for n in completion.choices[0].message.content.split(', ')]
        assert numbers and all(1 <= n <= 25 for n in numbers)   # the Offline answer
        assert completion.object == 'chat.completion' and completion.choices[0].finish_reason == 'stop'
        assert completion.usage.prompt_tokens > 0 and completion.usage.total_tokens > 0
        assert [m.id for m in client(srv).models.list().data] == ['fake-llm']
        assert srv.requests[0]['messages'][0]['content'] == QUESTION
        assert srv.request_count == 1 and srv.counts == {'ok': 1}


def test_custom_responder_and_its_errors():
    with FakeLLMServer(responder=lambda body: body['messages'][-1]['content'].upper()) as srv:
        assert ask(srv, 'hello').choices[0].message.content == 'HELLO'
    with FakeLLMServer(responder=lambda body: 1 / 0) as srv:
        with pytest.raises(openai.InternalServerError, match='ZeroDivisionError'):
            ask(srv)
        assert srv.counts == {'responder error': 1}


def test_script_is_applied_in_order_then_normal_answers():
    with FakeLLMServer(responder=lambda body: 'fine') as srv:
        srv.script([Fault.status(429, retry_after=2), Fault.status(500, times=2),
                    Fault.bad_joints(), Fault.refusal()])
        with pytest.raises(openai.RateLimitError) as info:
            ask(srv)
        assert info.value.response.headers['retry-after'] == '2'
        for _ in range(2):
            with pytest.raises(openai.InternalServerError):
                ask(srv)
        assert ask(srv).choices[0].message.content == BAD_JOINTS_TEXT
        assert ask(srv).choices[0].message.content == REFUSAL_TEXT
        assert ask(srv).choices[0].message.content == 'fine'
        assert srv.counts == {'status 429': 1, 'status 500': 2, 'reply': 2, 'ok': 1}


def test_faults_by_predicate():
    with FakeLLMServer(responder=lambda body: 'fine') as srv:
        srv.when(asks_about('drink water'), Fault.status(503, times=None))
        for _ in range(3):
            with pytest.raises(openai.InternalServerError):
                ask(srv)
        assert ask(srv, "How does 'eat meal' look?").choices[0].message.content == 'fine'


def test_refusal_styles_empty_and_malformed():
    with FakeLLMServer() as srv:
        srv.script([Fault.refusal('field'), Fault.refusal('filter'), Fault.empty(), Fault.malformed()])
        message = ask(srv).choices[0].message
        assert message.content is None and message.refusal == REFUSAL_TEXT
        choice = ask(srv).choices[0]
        assert choice.finish_reason == 'content_filter' and choice.message.content is None
        assert ask(srv).choices[0].message.content == ''
        with pytest.raises(ValueError):   # the client cannot parse the body
            ask(srv)


def test_hang_drop_and_down():
    with FakeLLMServer() as srv:
        srv.script([Fault.hang(5.0), Fault.drop()])
        with pytest.raises(openai.APITimeoutError):      # the client gives up, not the server
            ask(srv, timeout=0.3)
        with pytest.raises(openai.APIConnectionError):
            ask(srv)
        srv.down()
        assert not srv.running
        with pytest.raises(openai.APIConnectionError):
            ask(srv)
        srv.up()
        assert ask(srv).choices[0].message.content
        assert srv.counts == {'hang': 1, 'drop': 1, 'ok': 1}   # refused connections never arrive
    # stop() wakes the hanging request instead of waiting it out
    assert not srv.running


def test_requests_are_answered_concurrently():
    """Six requests, each waiting out its latency in its own thread, reach the responder
    together: a barrier of six passes only if none waits for another to be answered. (How
    long they take: bench/llm_server.py.)"""
    import threading
    barrier = threading.Barrier(6, timeout=60)

    def responder(body):
        return f'ok {barrier.wait()}'
    with FakeLLMServer(responder=responder, latency=0.3) as srv:
        replies = []
        threads = [threading.Thread(target=lambda: replies.append(
            ask(srv, timeout=120).choices[0].message.content)) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert srv.request_count == 6 and srv.counts == {'ok': 6}
    assert sorted(replies) == [f'ok {i}' for i in range(6)]


def test_bad_request_and_unknown_route():
    with FakeLLMServer() as srv:
        request = urllib.request.Request(f'{srv.base_url}/chat/completions', data=b'{not json',
                                         headers={'Content-Type': 'application/json'})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=5)
        assert info.value.code == 400 and 'messages' in json.load(info.value)['error']['message']
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f'{srv.base_url}/nothing', timeout=5)
        assert info.value.code == 404
        assert srv.counts == {'bad request': 1}


def test_reset_and_fault_validation():
    with FakeLLMServer(responder=lambda body: 'fine') as srv:
        srv.script([Fault.status(500, times=None)])
        srv.reset()
        assert ask(srv).choices[0].message.content == 'fine' and srv.request_count == 1
    with pytest.raises(ValueError, match='4xx or 5xx'):
        Fault.status(200)
    with pytest.raises(ValueError, match='refusal style'):
        Fault.refusal('polite')
