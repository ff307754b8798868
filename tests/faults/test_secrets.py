"""Fault injection: secrets.

A short demo training (with validation, an agent round every epoch and a test of the last
checkpoint) runs with a sentinel API key in the environment and the agent talking to the test
LLM server through ``OpenAIChat``; the server answers the first follow-up question with a 401
whose message echoes the key (as some proxies do). Afterwards every file of the work dir
(text and JSON logs, dumped config, transcripts, round reports, the evaluation report, the
response cache, checkpoints as bytes and unzipped, TensorBoard events) and the console output
are searched for the key: it must not be there. The test LLM server and memcached listen on
127.0.0.1 only.
"""
from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import threading
import uuid
import zipfile
from pathlib import Path

import pytest

from skeletonagent.agent.llm import Offline
from skeletonagent.testing import FakeLLMServer, Fault

ROOT = Path(__file__).resolve().parents[2]
KEY_ENV = 'SA_FAULTS_SECRET_KEY'
SENTINEL = f'sk-sentinel-{uuid.uuid4().hex}'
OTHER_SENTINEL = f'sk-other-{uuid.uuid4().hex}'     # OPENAI_API_KEY, read by nobody

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(400)]


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    from skeletonagent.datasets.synthetic import ensure_demo_data
    data = ensure_demo_data(tmp_path_factory.mktemp('data') / 'demo.pkl', num_train_per_class=1,
                            num_val_per_class=1, num_test_per_class=1)
    work_dir = tmp_path_factory.mktemp('secret_run')
    offline = Offline(layout='nturgb+d')
    lock = threading.Lock()

    leaked = []

    def responder(body):
        with lock:
            if 'mixes up' in body['messages'][-1]['content'] and not leaked:
                leaked.append(body)      # the first follow-up question: a leaky 401
                return Fault('status', code=401,
                             text=f'Incorrect API key provided: {SENTINEL}.', times=None)
            return offline.chat(body['messages'])

    env = dict(os.environ, OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1',
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    env[KEY_ENV] = SENTINEL
    env['OPENAI_API_KEY'] = OTHER_SENTINEL
    with FakeLLMServer(responder=responder) as server:
        cmd = [sys.executable, 'tools/train.py', 'configs/demo/j.py', '--seed', '0', '--validate',
               '--test-last', '--cfg-options', f'work_dir={work_dir}', 'total_epochs=2',
               f'data.train.ann_file={data}', f'data.val.ann_file={data}',
               f'data.test.ann_file={data}', 'data.train.type=PoseDataset',
               'data.val.type=PoseDataset', 'data.test.type=PoseDataset',
               'data.workers_per_gpu=0', 'data.videos_per_gpu=4',
               'data.test_dataloader.videos_per_gpu=12', 'log_config.interval=1',
               'agent.interval=1', 'agent.top_k=2', 'agent.update_masks=True',
               'agent.llm.type=OpenAIChat', 'agent.llm.model=fake-llm',
               f'agent.llm.base_url={server.base_url}', f'agent.llm.api_key_env={KEY_ENV}',
               'agent.llm.max_retries=1',
               f'agent.llm.cache_dir={work_dir / "agent" / "llm_cache"}']
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=360)
        records = server.records
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return work_dir, proc.stdout + proc.stderr, records


def _haystacks(path: Path):
    """The bytes of ``path``, and of every member when it is a zip (a torch checkpoint)."""
    raw = path.read_bytes()
    yield str(path), raw
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                yield f'{path}!{name}', zf.read(name)


def test_run_used_the_key_and_the_server_echoed_it(run):
    """The premise: the key was sent, a round happened and the leaky answer was given."""
    work_dir, log, records = run
    assert records and all(r.headers.get('authorization') == f'Bearer {SENTINEL}' for r in records)
    assert any(r.outcome == 'status 401' for r in records)
    assert list((work_dir / 'agent' / 'rounds').glob('round_*.md'))
    assert (work_dir / 'last_pred.pkl').is_file() and list(work_dir.glob('epoch_*.pth'))
    assert 'authentication refused' in log     # the 401 was reported, without the key
    reports = [p.read_text() for p in (work_dir / 'agent' / 'rounds').glob('round_*.md')]
    assert any('Incorrect API key provided: sk-...(redacted)' in r for r in reports)


def test_key_appears_in_no_file_of_the_work_dir(run):
    work_dir, log, _ = run
    files = [p for p in work_dir.rglob('*') if p.is_file() and not p.is_symlink()]
    kinds = {p.suffix for p in files}
    # what was searched: checkpoints, logs, JSON scalars, dumped config, transcripts, reports
    assert {'.pth', '.log', '.json', '.py', '.txt', '.md'} <= kinds, kinds
    if importlib.util.find_spec('tensorboard') is not None:
        assert any('tfevents' in p.name for p in files), 'no TensorBoard events to search'
    hits = []
    for path in files:
        for where, blob in _haystacks(path):
            for secret in (SENTINEL, OTHER_SENTINEL):
                if secret.encode() in blob or secret.encode('utf-16-le') in blob:
                    hits.append(where)
    assert not hits, f'the API key was written to {hits}'
    assert SENTINEL not in log and OTHER_SENTINEL not in log


def _listening(port: int) -> list[str]:
    """Local addresses (hex, as /proc/net/tcp{,6} write them) listening on ``port``."""
    found = []
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            addr, hexport = fields[1].rsplit(':', 1)
            if int(hexport, 16) == port and fields[3] == '0A':   # 0A: LISTEN
                found.append(addr)
    return found


def test_llm_test_server_binds_loopback_only():
    with FakeLLMServer() as server:
        host, port = server._httpd.server_address[:2]
        assert host == '127.0.0.1' and server.base_url.startswith('http://127.0.0.1:')
        assert _listening(port) == ['0100007F']               # 127.0.0.1, no other address


def test_memcached_binds_loopback_only():
    from skeletonagent.engine import memcached_server as memcache
    if memcache.shutil.which(memcache.MEMCACHED_BINARY) is None:
        pytest.skip('memcached is not installed')
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    server = memcache.MemcachedServer.start('localhost', port, item_size_mb=2, memory_mb=64)
    try:
        assert server.argv[server.argv.index('-l') + 1] == '127.0.0.1'
        assert server.argv[server.argv.index('-U') + 1] == '0'       # no UDP listener
        assert _listening(port) == ['0100007F']
    finally:
        server.stop(graceful=False)
