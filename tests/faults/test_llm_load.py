"""Fault injection: the LLM under load.

One agent round over 200 classes, all 200 follow-up chats in flight at once through a real
``OpenAIChat`` against the test server, which fails 20% of the classes (40: five each of
HTTP 500, 429, dropped connections, timeouts, malformed bodies, empty answers, refusals and
HTTP 400). Every class must end with either its new answer or its previous description,
transcript and mask; the round's summary must count exactly the injected faults; and once the
backend is closed and the server stopped, the process holds no more threads or open file
descriptors (sockets) than before.
"""
from __future__ import annotations

import os
import threading
import time
from collections import Counter

import numpy as np
import pytest

from skeletonagent.agent import PromptSet, build_backend, build_initial_agent, run_round
from skeletonagent.agent.round import MaskFormat, RoundQuestions
from skeletonagent.testing import FakeLLMServer, Fault, asks_about

LAYOUT = 'nturgb+d'
NUM_CLASSES = 200
KEY_ENV = 'SA_FAULTS_LOAD_KEY'
TIMEOUT = 4.0          # client timeout (s); a 'hang' holds the request far longer
MAX_RETRIES = 1

pytestmark = [pytest.mark.faults, pytest.mark.timeout(180)]

#: Injected fault -> the failure kind the round must report.
FAULTS = {
    'status 500': (lambda: Fault.status(500, times=None), 'server_error'),
    'status 429': (lambda: Fault.status(429, retry_after=0.01, times=None), 'rate_limit'),
    'drop': (lambda: Fault.drop(times=None), 'connection'),
    'hang': (lambda: Fault.hang(seconds=120, times=None), 'timeout'),
    'malformed': (lambda: Fault.malformed(times=None), 'malformed'),
    'empty': (lambda: Fault.empty(times=None), 'empty'),
    'refusal': (lambda: Fault.refusal('field', times=None), 'refusal'),
    'status 400': (lambda: Fault.status(400, times=None), 'other'),
}


def _open_fds() -> set:
    return set(os.listdir('/proc/self/fd'))


def _wait_for(predicate, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture(scope='module')
def initial(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('load')
    names = [f'fake action {i:03d}' for i in range(NUM_CLASSES)]
    label_map = tmp / 'fake200.txt'
    label_map.write_text('\n'.join(names) + '\n')
    return build_initial_agent(dict(label_map=str(label_map)), NUM_CLASSES, LAYOUT, 'j',
                               tmp / 'work')


def test_200_concurrent_classes_with_20_percent_failures(initial, monkeypatch):
    import openai  # noqa: F401  (imported before the baseline: module state is no leak)
    agent = initial
    names = agent.class_names
    kinds = list(FAULTS)
    failing = {cls: kinds[i % len(kinds)] for i, cls in enumerate(range(2, NUM_CLASSES, 5))}
    assert len(failing) == NUM_CLASSES // 5                       # 20%
    similar = {cls: [(cls + 1) % NUM_CLASSES, (cls + 7) % NUM_CLASSES]
               for cls in range(NUM_CLASSES)}
    monkeypatch.setenv(KEY_ENV, 'sk-load-test-0123456789')
    monkeypatch.setenv('SKELETONAGENT_PROGRESS', '0')

    threads_before = {t.ident for t in threading.enumerate()}
    fds_before = _open_fds()
    server = FakeLLMServer().start()
    for cls, kind in failing.items():
        server.when(asks_about(names[cls]), FAULTS[kind][0]())
    backend = build_backend(dict(type='OpenAIChat', model='fake-llm', base_url=server.base_url,
                                 api_key_env=KEY_ENV, timeout=TIMEOUT, max_retries=MAX_RETRIES,
                                 max_concurrency=NUM_CLASSES))
    backend.configure(layout=LAYOUT, prompts=PromptSet())
    try:
        result = run_round(backend, RoundQuestions(agent.state, agent.transcripts, names, similar),
                           MaskFormat(LAYOUT, 'j'))
        records = server.records
    finally:
        backend.close()
        server.stop()

    # every class: its new answer, or exactly what it had
    assert len(result.classes) == NUM_CLASSES
    expected_failures = Counter(FAULTS[kind][1] for kind in failing.values())
    assert result.stats.failures == expected_failures, result.stats.summary()
    assert result.stats.chats == NUM_CLASSES and result.stats.num_failed == len(failing)
    assert sorted(result.updated) == sorted(set(range(NUM_CLASSES)) - set(failing))
    for report in result.classes:
        cls = report.index
        if cls in failing:
            assert report.error == FAULTS[failing[cls]][1], (cls, report.error, report.detail)
            assert result.state.descriptions[cls] == agent.state.descriptions[cls]
            assert result.transcripts[cls] == list(agent.transcripts[cls])
            np.testing.assert_array_equal(result.state.masks[cls], agent.state.masks[cls])
        else:
            assert report.ok and report.reply
            assert result.transcripts[cls][-1].answer == report.reply
            assert result.state.descriptions[cls] == report.description
    # the summary line counts the same, and the server saw every request the stats count
    summary = result.stats.summary()
    for kind, count in expected_failures.items():
        assert f'{kind} {count}' in summary, summary
    assert result.stats.requests == len(records)
    outcomes = Counter(r.outcome for r in records)
    retried = MAX_RETRIES + 1
    assert outcomes['ok'] == NUM_CLASSES - len(failing)
    for kind in ('status 500', 'status 429', 'hang'):
        assert outcomes[kind] == 5 * retried, outcomes
    assert outcomes['malformed'] == 5 and outcomes['status 400'] == 5
    assert outcomes['reply'] == 5 + 5 * 2        # empty once, refusal twice (rephrased)
    assert 5 <= outcomes['drop'] <= 5 * retried  # a down server stops connection retries

    # no leaked threads or sockets once the backend is closed and the server stopped
    assert _wait_for(lambda: {t.ident for t in threading.enumerate()} <= threads_before), \
        [t.name for t in threading.enumerate() if t.ident not in threads_before]
    assert _wait_for(lambda: _open_fds() <= fds_before), {
        fd: os.readlink(f'/proc/self/fd/{fd}') for fd in _open_fds() - fds_before
        if os.path.exists(f'/proc/self/fd/{fd}')}
