"""The live agent loop end to end: 2 gloo ranks train the demo, the agent talks to the
project's OpenAI-compatible test server over HTTP (the real ``openai`` client), and the new
descriptions and masks reach every rank while training goes on."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from skeletonagent.agent.llm import Offline
from skeletonagent.datasets.label_map import load_label_map
from skeletonagent.testing import FakeLLMServer

ROOT = Path(__file__).resolve().parents[2]
NAMES = load_label_map('demo')
TOP_K = 2
FOLLOW_UP_DELAY = 1.0     # seconds the server takes for a follow-up question

pytestmark = pytest.mark.slow

_FOLLOW_UP_RE = re.compile(r"mixes up '(.+?)' with (.+?)\.\n")


def _follow_ups(requests) -> list[tuple[str, tuple[str, ...]]]:
    """(class, confused classes) of every follow-up question the server received."""
    asked = []
    for body in requests:
        match = _FOLLOW_UP_RE.search(body['messages'][-1]['content'])
        if match:
            asked.append((match.group(1), tuple(re.findall(r"'(.+?)'", match.group(2)))))
    return asked


def _top_confused(matrix: np.ndarray, k: int) -> dict[str, tuple[str, ...]]:
    """Independent reading of 'the classes each class is confused with most' (count > 0)."""
    expected = {}
    for i, row in enumerate(matrix):
        order = sorted((j for j in range(len(row)) if j != i and row[j] > 0),
                       key=lambda j: (-row[j], j))[:k]
        if order:
            expected[NAMES[i]] = tuple(NAMES[j] for j in order)
    return expected


@pytest.fixture(scope='module')
def agent_run(tmp_path_factory):
    from skeletonagent.datasets.synthetic import ensure_demo_data
    data = ensure_demo_data(tmp_path_factory.mktemp('data') / 'demo.pkl', num_train_per_class=6,
                            num_val_per_class=1, num_test_per_class=1)
    work_dir = tmp_path_factory.mktemp('agent_run')
    offline = Offline(layout='nturgb+d')
    lock = threading.Lock()

    def responder(body):
        if 'mixes up' in body['messages'][-1]['content']:
            time.sleep(FOLLOW_UP_DELAY)
        with lock:
            return offline.chat(body['messages'])

    env = dict(os.environ, SA_E2E_KEY='not-a-real-key', OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1',
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    with FakeLLMServer(responder=responder) as server:
        cmd = ['bash', 'tools/dist_train.sh', 'configs/demo/j.py', '2', '--seed', '0',
               '--cfg-options', f'work_dir={work_dir}', 'total_epochs=4',
               f'data.train.ann_file={data}', f'data.val.ann_file={data}',
               f'data.test.ann_file={data}', 'data.workers_per_gpu=0', 'data.videos_per_gpu=8',
               'agent.interval=1', f'agent.top_k={TOP_K}', 'agent.update_masks=True',
               'agent.llm.type=OpenAIChat', 'agent.llm.model=fake-llm',
               f'agent.llm.base_url={server.base_url}', 'agent.llm.api_key_env=SA_E2E_KEY']
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        requests = list(server.requests)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return work_dir, requests, proc.stdout + proc.stderr


def test_follow_ups_name_exactly_the_most_confused_classes(agent_run):
    work_dir, requests, log = agent_run
    rounds = sorted((work_dir / 'agent' / 'rounds').glob('round_*_confusion.npy'))
    # a round is asked after epochs 1, 2 and 3 of 4, unless the previous one is still running
    # (a background round may outlast a short demo epoch on a busy machine): then the log
    # says it was skipped
    skipped = re.findall(r'previous round is still running at epoch (\d+); skipping', log)
    assert len(rounds) >= 1 and len(rounds) + len(skipped) == 3, (rounds, skipped)
    asked = _follow_ups(requests)
    expected = {}
    for path in rounds:
        matrix = np.load(path)
        assert matrix.shape == (len(NAMES), len(NAMES)) and matrix.sum() > 0
        for name, confused in _top_confused(matrix, TOP_K).items():
            expected.setdefault(name, []).append(confused)
    received = {}
    for name, confused in asked:
        received.setdefault(name, []).append(confused)
    assert received == expected
    # in every round the pair confused most is asked about first
    for path in rounds:
        matrix = np.load(path)
        i, j = np.unravel_index(np.argmax(matrix), matrix.shape)
        assert any(name == NAMES[i] and confused[0] == NAMES[j] for name, confused in asked)


def test_every_rank_installs_the_same_new_state(agent_run):
    work_dir, _, _ = agent_run
    ranks = [[json.loads(line) for line in (work_dir / 'agent' / 'ranks' / f'rank{r}.jsonl')
              .read_text().splitlines()] for r in (0, 1)]
    assert ranks[0] and len(ranks[0]) == len(ranks[1])
    for a, b in zip(*ranks):
        assert {k: v for k, v in a.items() if k != 'rank'} == {k: v for k, v in b.items() if k != 'rank'}
    first, last = ranks[0][0], ranks[0][-1]
    assert first['version'] == 0 and last['version'] >= 1
    assert last['descriptions'] != first['descriptions']
    assert last['masks'] != first['masks']                  # update_masks=True
    assert last['embeddings'] is not None                  # frozen MiniLM: precomputed, broadcast


def test_training_went_on_during_rounds_and_checkpoint_has_the_state(agent_run):
    from skeletonagent.engine.checkpoint import load_checkpoint_file
    work_dir, _, log = agent_run
    during = [int(n) for n in re.findall(r'(\d+) training steps ran during the round', log)]
    assert during and max(during) > 0, log[-3000:]
    assert re.search(r'agent: round 1 .*installed after epoch', log)
    report = (work_dir / 'agent' / 'rounds' / 'round_001.md').read_text()
    assert 'Confused with:' in report and 'Reply:' in report
    ckpt = load_checkpoint_file(work_dir / 'epoch_4.pth')   # weights_only loading
    state = ckpt['agent_state']
    ranks = [json.loads(line) for line in
             (work_dir / 'agent' / 'ranks' / 'rank0.jsonl').read_text().splitlines()]
    assert state['version'] == ranks[-1]['version'] and ckpt['agent_rounds'] >= 1


def test_missing_api_key_stops_training_at_start(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1',
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    env.pop('SA_UNSET_KEY', None)
    cmd = [sys.executable, 'tools/train.py', 'configs/demo/j.py', '--cfg-options',
           f'work_dir={tmp_path}', 'agent.llm.type=OpenAIChat', 'agent.llm.model=gpt-4o',
           'agent.llm.api_key_env=SA_UNSET_KEY']
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert 'SA_UNSET_KEY' in out and 'agent.llm.type=Offline' in out, out[-3000:]
    assert not list(tmp_path.glob('*.pth'))                  # stopped before the first step
