"""Fault injection: the disk fills while a checkpoint or a transcript is written.

Two ways to fill it: the low-level write inside the atomic writer raises
``OSError(ENOSPC)`` after writing part of the data (a full disk), and a real process whose
file size limit (``RLIMIT_FSIZE``, SIGXFSZ ignored) makes writes fail with ``EFBIG``. Either
way the previous file stays valid (the previous checkpoint loads, ``latest.pth`` still points
at a complete file, the previous transcript reads back unchanged), no temporary file is left,
and the error names the file being written and what ran out.
"""
from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from skeletonagent.agent.transcripts import Turn, read_transcript, write_transcript
from skeletonagent.engine.checkpoint import ATOMIC_BACKEND_ARGS, load_checkpoint_file, update_latest_link
from skeletonagent.utils import fileio

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / 'configs' / 'demo' / 'j.py'

pytestmark = pytest.mark.faults


class _FullDisk:
    """``os`` for the atomic writer, with files whose writes fill the disk half-way."""

    def __init__(self, real=os, room: int = 16) -> None:
        self._real, self.room, self.calls = real, room, 0

    def __getattr__(self, name):
        return getattr(self._real, name)

    def fdopen(self, fd, mode='r', *args, **kwargs):
        f = self._real.fdopen(fd, mode, *args, **kwargs)
        disk = self

        class _File:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                f.close()
                return False

            def write(self, data):
                disk.calls += 1
                f.write(data[:disk.room])          # some of it lands, then the disk is full
                f.flush()
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            def __getattr__(self, name):
                return getattr(f, name)
        return _File()


@pytest.fixture
def full_disk(monkeypatch):
    disk = _FullDisk()
    monkeypatch.setattr(fileio, 'os', disk)
    return disk


def _temps(folder: Path) -> list[Path]:
    return sorted(folder.rglob('.*.tmp'))


def _assert_says_disk_full(exc: BaseException, path: Path) -> None:
    text = str(exc)
    assert str(path) in text, text
    assert 'No space left on device' in text and 'disk is full' in text, text


def test_checkpoint_write_on_full_disk_keeps_the_previous_one(tmp_path, full_disk):
    from mmengine.runner.checkpoint import save_checkpoint
    old = {'state_dict': {'w': torch.arange(1000.)}, 'meta': {'epoch': 1}}
    fileio.os = os                                       # the first checkpoint fits
    save_checkpoint(old, str(tmp_path / 'epoch_1.pth'), backend_args=ATOMIC_BACKEND_ARGS)
    update_latest_link(tmp_path, tmp_path / 'epoch_1.pth')
    fileio.os = full_disk                                # then the disk fills
    new = {'state_dict': {'w': torch.zeros(1000)}, 'meta': {'epoch': 2}}
    for name in ('epoch_2.pth', 'epoch_1.pth'):          # a new file, and over the old one
        with pytest.raises(OSError) as info:
            save_checkpoint(new, str(tmp_path / name), backend_args=ATOMIC_BACKEND_ARGS)
        assert info.value.errno == errno.ENOSPC
        _assert_says_disk_full(info.value, tmp_path / name)
    assert full_disk.calls == 2
    assert not (tmp_path / 'epoch_2.pth').exists() and not _temps(tmp_path)
    ckpt = load_checkpoint_file(tmp_path / 'latest.pth')
    assert os.readlink(tmp_path / 'latest.pth') == 'epoch_1.pth'
    assert ckpt['meta']['epoch'] == 1 and torch.equal(ckpt['state_dict']['w'], torch.arange(1000.))


def test_transcript_write_on_full_disk_keeps_the_previous_one(tmp_path, full_disk):
    path = tmp_path / 'agent' / 'transcripts' / '001_drink_water.txt'
    before = [Turn('Describe drink water.', 'The hand lifts a cup to the mouth.')]
    fileio.os = os
    write_transcript(path, before)
    text = path.read_bytes()
    fileio.os = full_disk
    with pytest.raises(OSError) as info:
        write_transcript(path, before + [Turn('Which joints?', 'Right hand, right elbow.')])
    _assert_says_disk_full(info.value, path)
    assert path.read_bytes() == text and read_transcript(path) == before
    assert not _temps(tmp_path)


def test_round_transcripts_on_full_disk_keep_the_previous_ones(tmp_path, full_disk):
    """The agent round's writer (several classes) stops at the first failure, naming it."""
    from skeletonagent.agent.round import save_transcripts
    names = ['drink water', 'eat meal']
    folder = tmp_path / 'transcripts'
    old = [[Turn(f'Describe {n}.', f'{n} answer.')] for n in names]
    fileio.os = os
    save_transcripts(old, names, folder)
    saved = {p.name: p.read_bytes() for p in folder.iterdir()}
    fileio.os = full_disk
    with pytest.raises(OSError) as info:
        save_transcripts([t + [Turn('More?', 'More.')] for t in old], names, folder)
    assert 'No space left on device' in str(info.value) and str(folder) in str(info.value)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == saved
    assert not _temps(tmp_path)


def _limited(limit: int):
    """A child's file size limit (writes past it fail with EFBIG instead of killing it)."""
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def _env() -> dict:
    env = dict(os.environ)
    env['PYTHONPATH'] = str(ROOT) + os.pathsep + env.get('PYTHONPATH', '')
    env.setdefault('OMP_NUM_THREADS', '1')
    env['HF_HUB_OFFLINE'] = '1'
    return env


def test_transcript_over_the_file_size_limit_in_a_real_process(tmp_path):
    path = tmp_path / '001_drink_water.txt'
    script = textwrap.dedent(f'''
        import sys
        from skeletonagent.agent.transcripts import Turn, write_transcript
        path = {str(path)!r}
        write_transcript(path, [Turn('q', 'a')])
        try:
            write_transcript(path, [Turn('q', 'a' * 4000)])
        except OSError as exc:
            print(exc)
            sys.exit(3)
    ''')
    proc = subprocess.run([sys.executable, '-c', script], env=_env(), capture_output=True,
                          text=True, timeout=120, preexec_fn=_limited(1024))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert f'could not write {path}: File too large' in proc.stdout, proc.stdout
    assert read_transcript(path) == [Turn('q', 'a')] and not _temps(tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_training_checkpoint_over_the_file_size_limit(tmp_path):
    """A real run: epoch 1 saved; the resumed run's epoch 2 checkpoint exceeds the limit."""
    from skeletonagent.datasets.synthetic import ensure_demo_data
    data = ensure_demo_data(tmp_path / 'demo.pkl', num_train_per_class=4, num_val_per_class=2,
                            num_test_per_class=2)
    work = tmp_path / 'run'

    def train(epochs, **kw):
        cmd = [sys.executable, 'tools/train.py', str(CONFIG), '--seed', '0', '--resume', 'auto',
               '--cfg-options', f'work_dir={work}', f'total_epochs={epochs}',
               f'data.train.ann_file={data}', f'data.val.ann_file={data}',
               f'data.test.ann_file={data}', 'data.workers_per_gpu=0', 'log_config.interval=5']
        return subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True,
                              timeout=300, **kw)

    first = train(1)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    size = (work / 'epoch_1.pth').stat().st_size
    transcripts = {p.name: p.read_bytes() for p in (work / 'agent' / 'transcripts').iterdir()}
    assert len(transcripts) == 12
    second = train(2, preexec_fn=_limited(size // 2))     # logs fit, a checkpoint does not
    out = second.stdout + second.stderr
    assert second.returncode != 0, out[-3000:]
    assert f'could not write {work / "epoch_2.pth"}: File too large' in out, out[-3000:]
    assert 'Epoch(train) [2]' in out
    # the previous checkpoint, the link and the transcripts are as they were
    assert not (work / 'epoch_2.pth').exists() and not _temps(work)
    assert os.readlink(work / 'latest.pth') == 'epoch_1.pth'
    assert load_checkpoint_file(work / 'latest.pth')['meta']['epoch'] == 1
    assert {p.name: p.read_bytes() for p in (work / 'agent' / 'transcripts').iterdir()} \
        == transcripts
