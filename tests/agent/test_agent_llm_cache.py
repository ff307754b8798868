"""ResponseCache on its own and inside OpenAIChat (through the real client and server)."""
import json
import logging
import multiprocessing
import threading

import pytest

from skeletonagent.agent import PromptSet
from skeletonagent.agent.llm import OpenAIChat, ResponseCache
from skeletonagent.agent.llm.cache import request_key
from skeletonagent.skeleton import get_layout
from skeletonagent.testing import FakeLLMServer, Fault, asks_about

NAMES = ['drink water', 'eat meal', 'drop', 'pickup']
PROMPTS = PromptSet()


def chats(names=NAMES):
    return [[{'role': 'user', 'content': PROMPTS.initial_questions(n, get_layout('nturgb+d'))[0]}]
            for n in names]


def request(content='q', temperature=0.0):
    return dict(model='m', messages=[{'role': 'user', 'content': content}],
                temperature=temperature, max_tokens=16)


def backend(srv, cache_dir, **kwargs):
    args = dict(model='fake-llm', base_url=srv.base_url, api_key_env=None, cache_dir=cache_dir)
    args.update(kwargs)
    return OpenAIChat(**args)


def test_put_get_and_the_key(tmp_path):
    cache = ResponseCache(tmp_path / 'cache')
    assert cache.get(request()) is None and len(cache) == 0
    path = cache.put(request(), 'an answer', dict(prompt_tokens=3))
    key = request_key(request())
    assert path == tmp_path / 'cache' / key[:2] / f'{key}.json' and len(key) == 64
    assert cache.get(request()) == 'an answer' and request() in cache
    # The key is canonical: key order does not matter, every answer-changing value does.
    assert request_key(dict(reversed(list(request().items())))) == key
    assert request_key(request(temperature=0.5)) != key
    assert request_key(request(content='q2')) != key
    assert cache.get(request(temperature=0.5)) is None
    assert not list((tmp_path / 'cache').rglob('*.tmp'))   # written atomically
    with pytest.raises(ValueError, match='non-empty'):
        cache.put(request(), ' ')
    with pytest.raises(TypeError, match='plain JSON'):
        request_key({'model': object()})


@pytest.mark.parametrize('content', ['{"key": "x"', '[]', '{"key": "%s", "text": 3}', ''])
def test_corrupt_entries_are_ignored_and_overwritten(tmp_path, caplog, content):
    cache = ResponseCache(tmp_path)
    path = cache.put(request(), 'old')
    path.write_text(content.replace('%s', request_key(request())))
    with caplog.at_level(logging.WARNING):
        assert cache.get(request()) is None
    assert 'corrupt' in caplog.text
    cache.put(request(), 'new')
    assert cache.get(request()) == 'new'


def test_threads_share_a_cache(tmp_path):
    cache = ResponseCache(tmp_path)

    def work(offset):
        for i in range(30):
            cache.put(request(f'q{(i + offset) % 30}'), f'a{(i + offset) % 30}')
            assert cache.get(request(f'q{i}')) in (None, f'a{i}')

    threads = [threading.Thread(target=work, args=(k * 7,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [cache.get(request(f'q{i}')) for i in range(30)] == [f'a{i}' for i in range(30)]


def _fill(directory, start):
    cache = ResponseCache(directory)
    for i in range(40):
        cache.put(request(f'q{(start + i) % 40}'), f'a{(start + i) % 40}')


def test_processes_share_a_cache(tmp_path):
    context = multiprocessing.get_context('fork')
    workers = [context.Process(target=_fill, args=(tmp_path, s)) for s in (0, 13, 27)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert all(w.exitcode == 0 for w in workers)
    cache = ResponseCache(tmp_path)
    assert len(cache) == 40
    assert all(cache.get(request(f'q{i}')) == f'a{i}' for i in range(40))


def test_a_repeated_round_makes_no_requests(tmp_path):
    with FakeLLMServer() as srv:
        first = backend(srv, tmp_path).chat_results(chats())
        assert srv.request_count == len(NAMES) and not any(r.cached for r in first)
        # A new backend (a resumed run) with the same settings: all from the cache.
        second = backend(srv, tmp_path).chat_results(chats())
        assert srv.request_count == len(NAMES)
        assert [r.text for r in second] == [r.text for r in first]
        assert all(r.cached and r.requests == 0 and r.prompt_tokens == 0 for r in second)
        # A different temperature is a different question.
        backend(srv, tmp_path, temperature=0.5).chat_results(chats()[:1])
        assert srv.request_count == len(NAMES) + 1
        # So is a different system prompt.
        backend(srv, tmp_path, system_prompt='Be brief.').chat_results(chats()[:1])
        assert srv.request_count == len(NAMES) + 2


def test_only_successes_are_cached(tmp_path):
    with FakeLLMServer() as srv:
        srv.when(asks_about('drop'), Fault.empty(times=1))
        srv.when(asks_about('pickup'), Fault.status(500, times=None))
        results = backend(srv, tmp_path, max_retries=0).chat_results(chats())
        assert [r.error for r in results] == [None, None, 'empty', 'server_error']
        srv.reset()
        again = backend(srv, tmp_path, max_retries=0).chat_results(chats())
        assert [r.cached for r in again] == [True, True, False, False]
        assert srv.request_count == 2 and again[2].ok and again[3].ok


def test_an_answer_after_the_rephrase_is_cached_under_the_question(tmp_path):
    with FakeLLMServer() as srv:
        srv.script([Fault.refusal()])
        assert backend(srv, tmp_path).chat_results(chats(['drop']))[0].requests == 2
        result, = backend(srv, tmp_path).chat_results(chats(['drop']))
        assert result.cached and srv.request_count == 2
    entry = json.loads(next(tmp_path.rglob('*.json')).read_text())
    assert entry['request']['messages'] == chats(['drop'])[0]


def test_a_request_that_cannot_be_keyed_fails_at_construction(tmp_path):
    with pytest.raises(TypeError, match='plain JSON'):
        OpenAIChat(model='m', base_url='http://127.0.0.1:9/v1', api_key_env=None,
                   cache_dir=tmp_path, extra_body={'seed': object()})
