"""The round every backend shares (LLMBackend.chat_results: thread pool, progress, the one
reply validator, failure log) and the validator itself (llm/reply.py)."""
import logging
import threading
import time

import pytest

from skeletonagent.agent.llm import ChatResult, LLMBackend, checked, reply_problem
from skeletonagent.agent.llm.base import chat_label


def chat(name):
    return [{'role': 'user', 'content': f"Describe the action '{name}'."}]


class Echo(LLMBackend):
    """Answers with a scripted reply per class name; records the threads it ran on."""

    def __init__(self, replies, max_concurrency=1, delay=0.0):
        self.replies = replies
        self.max_concurrency = max_concurrency
        self.delay = delay
        self.threads = set()
        self.in_flight = self.most_in_flight = 0
        self.lock = threading.Lock()

    def chat(self, messages):
        with self.lock:
            self.threads.add(threading.current_thread().name)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(self.delay)
            name = messages[-1]['content'].split("'")[1]
            reply = self.replies[name]
            if isinstance(reply, Exception):
                raise reply
            return reply
        finally:
            with self.lock:
                self.in_flight -= 1


@pytest.mark.parametrize('kwargs,expected', [
    (dict(text='An answer.'), None),
    (dict(text=None), ('empty', 'no content')),
    (dict(text=None, finish_reason='length'), ('empty', 'no content (finish_reason length)')),
    (dict(text='  \n'), ('empty', 'blank content')),
    (dict(text=42), ('malformed', 'content of type int')),
    (dict(text='x', refusal='No.'), ('refusal', "refusal field: 'No.'")),
    (dict(text=None, finish_reason='content_filter'), ('refusal', 'finish_reason content_filter')),
    (dict(text="I'm sorry, but I can't help with that."), None),
    (dict(text="I'm sorry, but I can't help with that.", detect_refusal=True),
     ('refusal', 'declined: "I\'m sorry, but I can\'t help with that."')),
])
def test_reply_problem(kwargs, expected):
    assert reply_problem(**kwargs) == expected


def test_checked_turns_unusable_text_into_a_failure_keeping_its_cost():
    ok = ChatResult('fine', requests=2)
    assert checked(ok) is ok
    blank = checked(ChatResult('  ', requests=2, prompt_tokens=5))
    assert (blank.text, blank.error, blank.requests, blank.prompt_tokens) == (None, 'empty', 2, 5)
    typed = checked(ChatResult(['a list'], detail='from the server'))
    assert typed.error == 'malformed' and typed.detail == 'from the server'
    failed = ChatResult(None, error='timeout', detail='slow')
    assert checked(failed) is failed


def test_every_backend_gets_the_pool_the_validator_and_the_failure_log(caplog):
    names = ['wave', 'jump', 'sit', 'kick', 'drop']
    backend = Echo({'wave': 'Arm swings.', 'jump': '', 'sit': RuntimeError('boom'),
                    'kick': 7, 'drop': 'Hand opens.'}, max_concurrency=3, delay=0.2)
    seen = []
    with caplog.at_level(logging.WARNING, logger='skeletonagent.agent.llm.base'):
        results = backend.chat_results([chat(n) for n in names], progress=seen.append)
    assert [r.error for r in results] == [None, 'empty', 'other', 'malformed', None]
    assert results[0].text == 'Arm swings.' and results[2].detail == 'RuntimeError: boom'
    assert backend.most_in_flight == 3 and all(t.startswith('Echo') for t in backend.threads)
    assert len(seen) == 5 and {id(r) for r in seen} == {id(r) for r in results}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert any("chat 3 of 5 ('sit')" in w and 'other' in w for w in warnings)


def test_one_thread_by_default_and_an_empty_round():
    backend = Echo({'wave': 'Arm swings.', 'jump': 'Legs push.'})
    results = backend.chat_results([chat('wave'), chat('jump')], progress=lambda r: None)
    assert [r.text for r in results] == ['Arm swings.', 'Legs push.']
    assert backend.most_in_flight == 1 and backend.threads == {threading.current_thread().name}
    assert backend.chat_results([]) == []


def test_chat_label():
    assert chat_label(chat('drink water'), 2, 60) == "chat 3 of 60 ('drink water')"
    assert chat_label([{'role': 'user', 'content': 'no quotes'}], 0, 1) == 'chat 1 of 1'
