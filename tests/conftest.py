"""Shared fixtures: one trained demo run for every test that only reads a run's outputs.

``demo_run`` is a real ``tools/train.py`` run, started once per test session: the demo config
for 2 epochs on ``demo_data`` (4 training, 2 validation and 2 test samples per class),
``--validate --test-last --test-best``, an agent round after epoch 1 installed at once
(``agent.background=False``), every iteration logged. It leaves checkpoints (``epoch_1.pth``,
``epoch_2.pth``, ``latest.pth``, a best one), ``last_pred.pkl`` / ``best_pred.pkl``, the
logs, ``run_info.json``, the agent's transcripts and rounds, and the report.

The run is shared: a test must not write into ``demo_run.work_dir`` (the fixture checks at
the end of the session that no file there was added, removed or changed). A test that
continues the run (``--resume``) does so in its own copy, the ``demo_run_copy`` fixture. Tests
that need a run of their own (killed, resumed mid-way, 2 processes, faults injected,
another config) keep starting their own.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = ROOT / 'configs' / 'demo' / 'j.py'


def tool_env() -> dict:
    """Environment of a tool subprocess: this checkout first on the path, one thread, no
    network for the text encoder, no progress bars."""
    env = dict(os.environ)
    env['PYTHONPATH'] = str(ROOT) + os.pathsep + env.get('PYTHONPATH', '')
    env.setdefault('OMP_NUM_THREADS', '1')
    env['HF_HUB_OFFLINE'] = '1'
    env['SKELETONAGENT_PROGRESS'] = '0'
    return env


def data_options(data: Path) -> list[str]:
    """cfg-options reading every split from ``data`` with the plain PoseDataset (the demo
    dataset class generates its file only at the demo's own path)."""
    opts = []
    for split in ('train', 'val', 'test'):
        opts += [f'data.{split}.type=PoseDataset', f'data.{split}.ann_file={data}']
    return opts


@dataclass(frozen=True)
class DemoRun:
    work_dir: Path      # the run's folder (read only)
    data: Path          # the annotation file it trained, validated and tested on
    log: str            # the tool's stdout and stderr
    config: Path = DEMO_CONFIG


def _listing(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns)
            for p in sorted(root.rglob('*'))}


@pytest.fixture(scope='session')
def demo_data(tmp_path_factory) -> Path:
    """A tiny demo annotation file: 12 classes, 4 / 2 / 2 samples per class."""
    from skeletonagent.datasets.synthetic import ensure_demo_data
    path = tmp_path_factory.mktemp('demo_data') / 'demo_tiny.pkl'
    return Path(ensure_demo_data(path, num_train_per_class=4, num_val_per_class=2,
                                 num_test_per_class=2))


def _train_demo_run(work_dir: Path, data: Path) -> str:
    """The shared run's ``tools/train.py`` (see the module docstring); its stdout and stderr."""
    opts = [f'work_dir={work_dir}', 'total_epochs=2', 'data.workers_per_gpu=0',
            'log_config.interval=1', 'agent.interval=1', 'agent.background=False',
            *data_options(data)]
    proc = subprocess.run([sys.executable, 'tools/train.py', str(DEMO_CONFIG), '--validate',
                           '--test-last', '--test-best', '--seed', '0', '--cfg-options', *opts],
                          cwd=ROOT, env=tool_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout + proc.stderr


def _shared_demo_run(tmp_path_factory, data: Path) -> DemoRun:
    """Under pytest-xdist (``-n 2``): one run for all workers, trained by the first worker that
    needs it, in the folder above the workers' own temporary folders. A file lock makes the
    others wait for it; the run is recorded (``run.json``) only once it succeeded, so after a
    failure each worker trains it again and reports its own error."""
    from filelock import FileLock
    shared = tmp_path_factory.getbasetemp().parent / 'demo_run_shared'
    shared.mkdir(exist_ok=True)
    record = shared / 'run.json'
    with FileLock(str(shared / 'lock')):
        if not record.is_file():
            work_dir = shared / 'work_dir'
            shutil.rmtree(work_dir, ignore_errors=True)     # what a failed attempt left
            work_dir.mkdir()
            log = _train_demo_run(work_dir, data)
            record.write_text(json.dumps(dict(work_dir=str(work_dir), data=str(data), log=log)))
    run = json.loads(record.read_text())
    return DemoRun(Path(run['work_dir']), Path(run['data']), run['log'])


@pytest.fixture(scope='session')
def demo_run(tmp_path_factory, demo_data) -> DemoRun:
    """The shared 2-epoch demo run (see the module docstring); one for the whole session, also
    across pytest-xdist's workers."""
    if not os.environ.get('PYTEST_XDIST_WORKER'):      # not a pytest-xdist worker
        work_dir = tmp_path_factory.mktemp('demo_run')
        run = DemoRun(work_dir, demo_data, _train_demo_run(work_dir, demo_data))
    else:
        run = _shared_demo_run(tmp_path_factory, demo_data)
    before = _listing(run.work_dir)
    yield run
    assert _listing(run.work_dir) == before, 'a test wrote into the shared demo run (use demo_run_copy)'


@pytest.fixture
def demo_run_copy(demo_run, tmp_path) -> DemoRun:
    """A copy of the shared run (links, modes and times kept) that the test may continue;
    mmengine's ``last_checkpoint`` record is pointed at the copy."""
    dest = tmp_path / 'demo_run'
    shutil.copytree(demo_run.work_dir, dest, symlinks=True)
    record = dest / 'last_checkpoint'
    if record.is_file():
        record.write_text(record.read_text().replace(str(demo_run.work_dir), str(dest)))
    return DemoRun(dest, demo_run.data, demo_run.log)


@pytest.fixture(scope='module')
def single_thread():
    """One intra-op thread for the module: tiny tensors run fastest that way, and a busy
    machine cannot slow them down (``pytestmark = pytest.mark.usefixtures('single_thread')``)."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
