"""Fault injection: ``kill -9`` of a training at random points, then ``--resume auto``.

A chain of real ``tools/train.py`` runs (one process, or two gloo processes through
``tools/dist_train.sh``) on a tiny generated demo, every run started with ``--resume auto``:
each run but the last is SIGKILLed (its whole process group: torchrun and its workers) at a
point drawn by a seeded RNG: at start-up, during a training step, while the epoch checkpoint
is written, during validation. After every kill:

* every checkpoint in the work dir loads under ``weights_only`` and holds the epoch its name
  says; ``latest.pth`` (if any) points at a complete file; temporary files of an interrupted
  write may remain, are never taken for checkpoints, and the next run removes them;
* ``--resume auto`` picks the newest complete checkpoint: no epoch is lost beyond the one in
  flight;
* the next run continues from it: its first step is the epoch after the checkpoint's, it
  logs the checkpoint's random state, optimizer and LR-scheduler digests, every rank holds the
  checkpoint's agent state (descriptions, masks, version, rounds), the LR of every logged step
  follows the cosine schedule of the uninterrupted run, and the round that was pending at the
  kill is discarded (a resumed run installs only rounds it started itself);

and the last run completes: the final epoch checkpoint exists, agent versions never go back.

The default run does 2 kills of each kind; ``-m faults_slow`` runs the 10-kill versions
(``SKELETONAGENT_KILL_TRIALS`` changes the number).
"""
from __future__ import annotations

import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from skeletonagent.agent.state import AgentState
from skeletonagent.engine.checkpoint import find_resume_checkpoint, load_checkpoint_file
from skeletonagent.engine.hooks import resume_digests

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / 'configs' / 'demo' / 'j.py'
BASE_LR = 0.1

pytestmark = [pytest.mark.faults, pytest.mark.slow]


def _env() -> dict:
    env = dict(os.environ)
    env['PYTHONPATH'] = str(ROOT) + os.pathsep + env.get('PYTHONPATH', '')
    env.setdefault('OMP_NUM_THREADS', '1')
    env['HF_HUB_OFFLINE'] = '1'
    env['PYTHONUNBUFFERED'] = '1'
    return env


@pytest.fixture(scope='module')
def small_demo(tmp_path_factory):
    from skeletonagent.datasets.synthetic import ensure_demo_data
    path = tmp_path_factory.mktemp('demo') / 'demo_small.pkl'
    return ensure_demo_data(path, num_train_per_class=4, num_val_per_class=2,
                            num_test_per_class=2)


def _command(nproc: int, work_dir: Path, data: Path, epochs: int) -> list[str]:
    opts = ['--validate', '--seed', '0', '--resume', 'auto', '--cfg-options',
            f'work_dir={work_dir}', f'total_epochs={epochs}', f'data.train.ann_file={data}',
            f'data.val.ann_file={data}', f'data.test.ann_file={data}', 'data.workers_per_gpu=0',
            'log_config.interval=1', 'agent.interval=1', 'checkpoint_config.max_keep_ckpts=-1']
    if nproc == 1:
        return [sys.executable, 'tools/train.py', str(CONFIG), *opts]
    return ['bash', 'tools/dist_train.sh', str(CONFIG), str(nproc), *opts]


# ------------------------------------------------------------------------------ kill points
@dataclass
class KillPoint:
    """Where to kill: ``event`` of epoch ``epoch``, ``delay`` seconds after it shows in the log."""
    event: str          # 'startup' | 'step' | 'save' | 'write' | 'val'
    epoch: int
    delay: float

    def pattern(self) -> str | None:
        if self.event == 'step':
            return f'Epoch(train) [{self.epoch}]['
        if self.event in ('save', 'val'):
            return f'Saving checkpoint at {self.epoch} epochs'
        return None             # 'startup': from the launch; 'write': watched on disk


def _draw(rng: random.Random, start: int, epochs: int) -> KillPoint:
    """A kill point in one of the next two epochs of a run resumed after epoch ``start``."""
    event = rng.choice(['startup', 'step', 'step', 'save', 'write', 'val'])
    last = min(start + 2, epochs)
    epoch = rng.randint(start + 1, last) if start < epochs else epochs
    if epoch >= epochs and event == 'val':   # after the last save the run just ends
        event = 'save'
    delay = {'startup': rng.uniform(0.5, 8.0), 'step': rng.uniform(0.0, 0.8), 'write': 0.0,
             'save': rng.uniform(0.0, 0.04) if epoch < epochs else 0.0,
             'val': rng.uniform(0.1, 0.6)}[event]
    return KillPoint(event, epoch, delay)


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (torchrun starts its workers in sessions of their own)."""
    children: dict[int, list[int]] = {}
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try:
            text = stat.read_text()
        except OSError:
            continue
        ppid = int(text[text.rindex(')') + 2:].split()[1])
        children.setdefault(ppid, []).append(int(stat.parent.name))
    tree, todo = [pid], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            tree.append(child)
            todo.append(child)
    return tree


def _alive(pid: int) -> bool:
    try:
        text = Path(f'/proc/{pid}/stat').read_text()
    except OSError:
        return False
    return text[text.rindex(')') + 2:].split()[0] not in ('Z', 'X')


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the whole run at once, as a scheduler does: its process group and every
    descendant (torchrun's workers have process groups of their own), then wait it out."""
    tree = _process_tree(proc.pid)
    for pid in tree:
        for kill in (lambda p: os.killpg(p, signal.SIGKILL), lambda p: os.kill(p, signal.SIGKILL)):
            try:
                kill(pid)
            except (ProcessLookupError, PermissionError):
                pass
    proc.wait(timeout=30)
    deadline = time.time() + 30
    while any(_alive(pid) for pid in tree):
        assert time.time() < deadline, f'processes {tree} survived SIGKILL'
        time.sleep(0.05)


def _run_until(cmd: list[str], out: Path, point: KillPoint | None, work_dir: Path,
               timeout: float = 300):
    """Start ``cmd`` (output to ``out``); kill it at ``point``, or let it finish (None).

    Returns (killed, returncode)."""
    with open(out, 'wb') as sink:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=sink, stderr=subprocess.STDOUT,
                                start_new_session=True)
    start = time.time()
    try:
        if point is None:
            return False, proc.wait(timeout=timeout)
        pattern = point.pattern()
        seen_at = start if point.event == 'startup' else None
        while time.time() - start < timeout:
            if seen_at is None and point.event == 'write':
                # the checkpoint's temporary file is there: kill in the middle of the write
                # (or, if the write was quicker than this poll, right after the rename)
                if list(work_dir.glob(f'.epoch_{point.epoch}.pth.*.tmp')) \
                        or (work_dir / f'epoch_{point.epoch}.pth').exists():
                    seen_at = time.time()
            elif seen_at is None and pattern in out.read_text(errors='replace'):
                seen_at = time.time()
            if seen_at is not None and time.time() >= seen_at + point.delay:
                if proc.poll() is not None:
                    return False, proc.returncode
                _kill_group(proc)
                return True, proc.returncode
            if proc.poll() is not None:     # finished (or failed) before the kill point
                return False, proc.returncode
            time.sleep(0.005)
        raise AssertionError(f'run did not reach {point} in {timeout} s:\n'
                             + out.read_text(errors='replace')[-3000:])
    finally:
        if proc.poll() is None:
            _kill_group(proc)


# ------------------------------------------------------------------------------ checks
def _epoch_files(work_dir: Path) -> dict[int, Path]:
    found = {}
    for path in work_dir.glob('epoch_*.pth'):
        m = re.fullmatch(r'epoch_(\d+)\.pth', path.name)
        if m:
            found[int(m.group(1))] = path
    return found


def _check_files_after_kill(work_dir: Path) -> dict:
    """Every checkpoint complete; the link valid; return what the next run must resume."""
    for path in work_dir.glob('*.pth'):
        if path.is_symlink():
            continue
        ckpt = load_checkpoint_file(path)             # raises on a half-written file
        m = re.fullmatch(r'epoch_(\d+)\.pth', path.name)
        if m:
            assert ckpt['meta']['epoch'] == int(m.group(1)), path
    link = work_dir / 'latest.pth'
    if link.is_symlink():
        assert link.exists(), f'latest.pth points at a missing file: {os.readlink(link)}'
        load_checkpoint_file(link)
    temps = sorted(p for p in work_dir.rglob('.*.tmp'))
    files = _epoch_files(work_dir)
    found = find_resume_checkpoint(work_dir)
    if not files:
        assert found is None or not found.name.startswith('epoch_'), found
        return dict(epoch=0, path=None, temps=temps)
    newest = max(files)
    assert found == files[newest].resolve(), (found, files)   # the newest complete checkpoint
    return dict(epoch=newest, path=found, temps=temps)


def _started_epochs(log: str) -> list[int]:
    return sorted({int(e) for e in re.findall(r'Epoch\(train\)\s*\[(\d+)\]\[', log)})


def _check_lr(log: str, epochs: int, nproc: int = 1) -> int:
    """Every logged LR is the cosine schedule's at that step (none restarted), from the
    config's lr scaled by the number of processes (auto_scale_lr: the demo's lr is for one
    process's batch)."""
    base = BASE_LR * nproc
    n = 0
    for e, j, per, lr in re.findall(r'Epoch\(train\)\s*\[(\d+)\]\[\s*(\d+)/(\d+)\]\s+lr: (\S+)',
                                    log):
        g = (int(e) - 1) * int(per) + int(j) - 1
        expected = 0.5 * base * (1 + math.cos(math.pi * g / (epochs * int(per))))
        assert abs(float(lr) - expected) <= 1e-4 * base, (e, j, lr, expected)
        n += 1
    return n


def _rank_records(work_dir: Path, nproc: int) -> list[list[dict]]:
    out = []
    for rank in range(nproc):
        path = work_dir / 'agent' / 'ranks' / f'rank{rank}.jsonl'
        out.append([json.loads(line) for line in path.read_text().splitlines()]
                   if path.is_file() else [])
    return out


def _check_resumed(log: str, resumed: dict, before: list[list[dict]], work_dir: Path,
                   nproc: int, killed: bool) -> None:
    """The run after a kill continued from ``resumed`` with the checkpoint's state."""
    path, epoch = resumed['path'], resumed['epoch']
    started = _started_epochs(log)
    if path is None:
        assert 'resuming from' not in log
        if started:
            assert started[0] == 1
        return
    if 'resuming from' not in log:          # killed before it got that far
        assert killed and not started, log[-3000:]
        return
    assert f'resuming from {path}' in log, log[-3000:]
    ckpt = load_checkpoint_file(path)
    assert ckpt['meta']['epoch'] == epoch
    # its first step is the epoch after the checkpoint's
    if started:
        assert started[0] == epoch + 1, (started, epoch)
    # random state, optimizer and LR schedulers are the checkpoint's (rank 0 logs them;
    # the checkpoint holds the random state of every rank)
    assert len(ckpt['random_state']) == nproc
    digests = resume_digests(ckpt, 0)
    line = (f'resumed at epoch {epoch}, iter {ckpt["meta"]["iter"]}: random state of rank 0 '
            'restored; ' + ', '.join(f'{k} {v}' for k, v in digests.items()))
    if started or not killed:
        assert line in log, (line, re.findall(r'resumed at epoch.*', log))
    # every rank installed the checkpoint's agent state first (the pending round is gone)
    state = AgentState.from_state_dict(ckpt['agent_state']).digests()
    rounds = int(ckpt['agent_rounds'])
    after = _rank_records(work_dir, nproc)
    for rank in range(nproc):
        new = after[rank][len(before[rank]):]
        if not new:
            assert not started and killed, f'rank {rank} logged no agent state'
            continue
        first = new[0]
        assert first['rounds'] == rounds
        for key in ('version', 'descriptions', 'masks'):
            assert first[key] == state[key], (rank, key)
        assert [r['version'] for r in new] == sorted(r['version'] for r in new)
    # only rounds this run started are installed (on confusions of epochs after the checkpoint)
    for up_to in re.findall(r'agent: round \d+ \(confusions up to epoch (\d+)\) installed', log):
        assert int(up_to) > epoch, (up_to, epoch)


@dataclass
class Tally:
    kills: int = 0
    survived: int = 0
    lost_epochs: int = 0
    mid_write: int = 0          # kills that cut a checkpoint write (a temp file was left)
    points: list = field(default_factory=list)


def _kill_and_resume(nproc: int, trials: int, seed: int, tmp_path: Path, data: Path) -> Tally:
    rng = random.Random(seed)
    epochs = max(3, trials // 2 + 2)
    work_dir = tmp_path / 'run'
    tally = Tally()
    resumed = dict(epoch=0, path=None, temps=[])
    for trial in range(trials + 1):
        final = trial == trials
        point = None if final else _draw(rng, resumed['epoch'], epochs)
        before = _rank_records(work_dir, nproc)
        out = tmp_path / f'run{trial}.log'
        killed, code = _run_until(_command(nproc, work_dir, data, epochs), out, point, work_dir)
        log = out.read_text(errors='replace')
        if final or not killed:
            assert code == 0, f'run {trial} ({point}) failed:\n' + log[-5000:]
        _check_resumed(log, resumed, before, work_dir, nproc, killed)
        if not killed or _started_epochs(log):      # it got past start-up: half files gone
            for temp in resumed['temps']:
                assert not temp.exists(), temp
        if final:
            break
        tally.points.append((point.event, point.epoch, round(point.delay, 3), killed))
        previous = resumed['epoch']
        resumed = _check_files_after_kill(work_dir)
        if killed:
            tally.kills += 1
            tally.mid_write += any(p.name.startswith('.epoch_') for p in resumed['temps'])
            # the epoch in flight at the kill; every epoch before it must be saved
            started = _started_epochs(log)
            in_flight = started[-1] if started else previous + 1
            lost = max(0, (in_flight - 1) - resumed['epoch'])
            tally.lost_epochs += lost
            tally.survived += int(lost == 0)
        _check_lr(log, epochs, nproc)
    # the run completed, agent versions never went back
    files = _epoch_files(work_dir)
    assert max(files) == epochs and os.readlink(work_dir / 'latest.pth') == f'epoch_{epochs}.pth'
    versions = [int(load_checkpoint_file(files[e])['agent_state']['version']) for e in sorted(files)]
    assert versions == sorted(versions), versions
    assert not list(work_dir.rglob('.*.tmp'))
    print(f'\nkill -9, {nproc} process(es): {tally.kills} kills at {tally.points}; '
          f'{tally.survived} resumed with no epoch lost beyond the one in flight; '
          f'epochs lost {tally.lost_epochs}; {tally.mid_write} kills cut a checkpoint write; '
          f'agent versions by epoch {versions}')
    return tally


def _trials(slow: bool) -> int:
    return int(os.environ.get('SKELETONAGENT_KILL_TRIALS', '10')) if slow else 2


@pytest.mark.timeout(900)
@pytest.mark.parametrize('nproc', [1, 2])
def test_kill_minus_nine_then_resume_auto(nproc, small_demo, tmp_path):
    tally = _kill_and_resume(nproc, _trials(False), seed=100 + nproc, tmp_path=tmp_path,
                             data=small_demo)
    assert tally.lost_epochs == 0 and tally.survived == tally.kills


@pytest.mark.faults_slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize('nproc', [1, 2])
def test_kill_minus_nine_then_resume_auto_many(nproc, small_demo, tmp_path, request):
    if 'faults_slow' not in (request.config.getoption('markexpr') or ''):
        pytest.skip('the 10-kill loops run with -m faults_slow')
    trials = _trials(True)
    tally = _kill_and_resume(nproc, trials, seed=1000 + nproc, tmp_path=tmp_path,
                             data=small_demo)
    assert tally.lost_epochs == 0 and tally.survived == tally.kills
    assert tally.kills >= trials // 2           # most kill points are reached


# ------------------------------------------------------------------------------ the pieces
def test_resume_lookup_after_a_kill_between_save_and_link(tmp_path):
    """Killed after ``epoch_2.pth`` was renamed into place but before the link moved and the
    ``last_checkpoint`` record was rewritten (mmengine writes it in place: it may be cut)."""
    from skeletonagent.engine.checkpoint import remove_stale_temp_files, update_latest_link
    for n in (1, 2):
        torch.save({'meta': {'epoch': n}}, tmp_path / f'epoch_{n}.pth')
        os.utime(tmp_path / f'epoch_{n}.pth', ns=(n * 10**9, n * 10**9))
    update_latest_link(tmp_path, tmp_path / 'epoch_1.pth')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epo'))
    half = tmp_path / '.epoch_3.pth.k2j4.tmp'                  # a write cut by the kill
    half.write_bytes(b'half')
    (tmp_path / 'agent').mkdir()
    (tmp_path / 'agent' / '.001_a.txt.x1.tmp').write_text('half')
    assert find_resume_checkpoint(tmp_path) == (tmp_path / 'epoch_2.pth').resolve()
    assert sorted(p.name for p in remove_stale_temp_files(tmp_path)) == [
        '.001_a.txt.x1.tmp', '.epoch_3.pth.k2j4.tmp']
    assert not list(tmp_path.rglob('.*.tmp')) and (tmp_path / 'epoch_2.pth').is_file()


def test_random_state_survives_a_weights_only_checkpoint(tmp_path):
    import numpy as np

    from skeletonagent.engine.hooks import RANDOM_STATE_KEY, get_random_state, set_random_state

    def draw():
        return (torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random(),
                random.gauss(0, 1))
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    draw()
    torch.save({RANDOM_STATE_KEY: [get_random_state()]}, tmp_path / 'c.pth')
    expected = draw()
    draw()
    set_random_state(load_checkpoint_file(tmp_path / 'c.pth')[RANDOM_STATE_KEY][0])
    assert draw() == expected


def test_latest_link_moves_to_a_checkpoint_whose_record_a_kill_cut(tmp_path):
    """Killed while mmengine rewrote ``last_checkpoint`` in place (left empty) after saving
    the last epoch: the resumed run trains nothing, yet moves the link to that checkpoint."""
    from types import SimpleNamespace

    from skeletonagent.engine.checkpoint import update_latest_link
    from skeletonagent.engine.hooks import LatestCheckpointLinkHook
    for n in (2, 3):
        torch.save({'meta': {'epoch': n}}, tmp_path / f'epoch_{n}.pth')
        os.utime(tmp_path / f'epoch_{n}.pth', ns=(n * 10**9, n * 10**9))
    update_latest_link(tmp_path, tmp_path / 'epoch_2.pth')
    (tmp_path / 'last_checkpoint').write_text('')
    LatestCheckpointLinkHook().after_train(SimpleNamespace(rank=0, work_dir=str(tmp_path)))
    assert os.readlink(tmp_path / 'latest.pth') == 'epoch_3.pth'
