"""A run owns its work dir, ranks end with their launcher, a failed start leaves its log only
(issue 22). Real processes: tools/train.py, tools/test.py and tools/dist_train.sh as a user
runs them, on the tiny demo data."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import DEMO_CONFIG, ROOT, data_options, tool_env

pytestmark = pytest.mark.slow


def _train_cmd(work_dir: Path, data: Path, epochs: int, *extra: str) -> list[str]:
    return [sys.executable, 'tools/train.py', str(DEMO_CONFIG), '--threads', '1', '--seed', '0',
            '--cfg-options', f'work_dir={work_dir}', f'total_epochs={epochs}',
            'data.workers_per_gpu=0', 'agent.interval=0', *data_options(data), *extra]


def _wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f'{what}: the process ended ({proc.returncode}): {out[-2000:]} {err[-3000:]}')
        time.sleep(0.2)
    pytest.fail(f'timed out waiting for {what}')


def _holder_pid(work_dir: Path) -> int | None:
    try:
        return json.loads((work_dir / '.run.lock').read_text()).get('pid')
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    """Running (a zombie nobody reaps counts as ended)."""
    try:
        fields = Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()
    except OSError:
        return False
    return fields[0] not in ('Z', 'X')


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc: ranks in their own sessions included)."""
    children: dict[int, list[int]] = {}
    for entry in Path('/proc').iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / 'stat').read_text().rsplit(')', 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _cmdline(pid: int) -> str:
    try:
        return Path(f'/proc/{pid}/cmdline').read_bytes().replace(b'\0', b' ').decode()
    except OSError:
        return ''


def test_second_run_in_a_held_work_dir_is_refused(demo_data, demo_run, tmp_path):
    work_dir = tmp_path / 'run'
    holder = subprocess.Popen(_train_cmd(work_dir, demo_data, 200), cwd=ROOT, env=tool_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: _holder_pid(work_dir) == holder.pid
                  and (work_dir / 'epoch_1.pth').exists(), 240, 'the first run to hold its '
                  'work dir and train', holder)
        runs_before = sorted(p.name for p in work_dir.glob('2*_*') if p.is_dir())
        config_before = (work_dir / DEMO_CONFIG.name).stat().st_mtime_ns
        second = subprocess.run(_train_cmd(work_dir, demo_data, 1, 'log_config.interval=1'),
                                cwd=ROOT, env=tool_env(), capture_output=True, text=True,
                                timeout=300)
        assert second.returncode == 1, second.stdout[-2000:] + second.stderr[-2000:]
        errors = [line for line in second.stderr.splitlines() if line.startswith('error: ')]
        assert len(errors) == 1 and 'Traceback' not in second.stderr
        assert errors[0].startswith(f'error: the work dir {work_dir} is in use by another run: '
                                    f'PID {holder.pid} (started ')
        assert 'tools/train.py' in errors[0] and f'kill {holder.pid}' in errors[0]
        assert '--work-dir' in errors[0]
        # the refused run wrote nothing: no timestamped folder, no dumped config of its own
        assert sorted(p.name for p in work_dir.glob('2*_*') if p.is_dir()) == runs_before
        assert (work_dir / DEMO_CONFIG.name).stat().st_mtime_ns == config_before
        assert _holder_pid(work_dir) == holder.pid
        # testing only reads a work dir: not blocked by the run that holds it
        ckpt = demo_run.work_dir / 'epoch_2.pth'
        test = subprocess.run([sys.executable, 'tools/test.py', str(DEMO_CONFIG), str(ckpt),
                               '--threads', '1', '--cfg-options', f'work_dir={work_dir}',
                               'data.workers_per_gpu=0', *data_options(demo_data)],
                              cwd=ROOT, env=tool_env(), capture_output=True, text=True,
                              timeout=300)
        assert test.returncode == 0, test.stdout[-2000:] + test.stderr[-3000:]
    finally:
        holder.kill()          # kill -9: the kernel drops the lock with the process
        holder.communicate()
    # the next run there is not blocked by the killed one
    third = subprocess.run(_train_cmd(work_dir, demo_data, 1), cwd=ROOT, env=tool_env(),
                           capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stdout[-2000:] + third.stderr[-3000:]
    assert (work_dir / 'epoch_1.pth').is_file()
    assert json.loads((work_dir / '.run.lock').read_text())['pid'] != holder.pid


def test_killed_launcher_takes_its_ranks_and_workers(demo_data, tmp_path):
    """``kill -9`` of the launcher's process group during training: no rank and no DataLoader
    worker is left within a few seconds (they used to go on with PPID 1 and write epoch_2)."""
    work_dir = tmp_path / 'run'
    cmd = ['bash', 'tools/dist_train.sh', str(DEMO_CONFIG), '2', '--threads', '1',
           '--cfg-options', f'work_dir={work_dir}', 'total_epochs=200', 'agent.interval=0',
           'data.workers_per_gpu=1', 'log_config.interval=1', *data_options(demo_data)]
    launcher = subprocess.Popen(cmd, cwd=ROOT, env=tool_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)

    def ranks_and_workers():
        procs = _descendants(launcher.pid)
        # the ranks: the launcher's own children (their forked workers run the same command)
        ranks = [p for p in procs if 'tools/train.py' in _cmdline(p) and _ppid(p) == launcher.pid]
        # each rank's DataLoader worker: a forked child of a rank
        workers = [c for r in ranks for c in _descendants(r)]
        training = (work_dir / 'epoch_1.pth').exists()
        return (procs, ranks, workers) if training and len(ranks) == 2 and workers else None

    try:
        procs, ranks, workers = _wait_for(ranks_and_workers, 600, 'two ranks training with '
                                          'their workers', launcher)
        os.killpg(launcher.pid, signal.SIGKILL)
        launcher.communicate()
        left = _wait_for(lambda: not [p for p in procs if _alive(p)] or None, 20,
                         'every rank and worker to end')
        assert left
    finally:
        for pid in _descendants(launcher.pid) | {launcher.pid}:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    assert not [p for p in ranks + workers if _alive(p)]


def test_failed_start_leaves_its_log_only(tmp_path):
    from skeletonagent.engine.failed_start import WorkDirSnapshot
    work_dir = tmp_path / 'run'
    work_dir.mkdir()
    (work_dir / 'run_info.json').write_text('{"old": 1}')
    (work_dir / 'epoch_3.pth').write_bytes(b'old weights')
    (work_dir / '.run.lock').write_text('{}')
    snapshot = WorkDirSnapshot(work_dir)
    # what a start writes before it fails
    log_dir = work_dir / '20261207_120000'
    (log_dir / 'vis_data').mkdir(parents=True)
    (log_dir / '20261207_120000.log').write_text('the error\n')
    (log_dir / 'vis_data' / 'events.out.tfevents.1').write_bytes(b'tb')
    (work_dir / 'j.py').write_text('cfg')
    (work_dir / 'agent').mkdir()
    (work_dir / 'run_info.json').write_text('{"new": 2}')
    (work_dir / '.run.lock').write_text('{"pid": 1}')
    done = snapshot.restore(log_dir, keep=('.run.lock',))
    assert sorted(done) == ['20261207_120000/vis_data', 'agent', 'j.py', 'run_info.json']
    assert sorted(p.relative_to(work_dir).as_posix() for p in work_dir.rglob('*')) == [
        '.run.lock', '20261207_120000', '20261207_120000/20261207_120000.log', 'epoch_3.pth',
        'run_info.json']
    assert (work_dir / 'run_info.json').read_text() == '{"old": 1}'
    assert (work_dir / 'epoch_3.pth').read_bytes() == b'old weights'
    assert (work_dir / '.run.lock').read_text() == '{"pid": 1}'


def test_lock_is_per_process_and_names_its_holder(tmp_path):
    from skeletonagent.engine.workdir_lock import WorkDirBusy, hold_work_dir, lock_holder
    work_dir = tmp_path / 'w'
    hold_work_dir(work_dir)
    hold_work_dir(work_dir)                         # again in the same process: a no-op
    assert lock_holder(work_dir)['pid'] == os.getpid()
    code = ('import sys; from skeletonagent.engine.workdir_lock import hold_work_dir; '
            'hold_work_dir(sys.argv[1])')
    other = subprocess.run([sys.executable, '-c', code, str(work_dir)], cwd=ROOT,
                           env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
                           text=True, timeout=120)
    assert other.returncode == 1
    assert f'WorkDirBusy: the work dir {work_dir} is in use by another run: PID {os.getpid()}' \
        in other.stderr
    assert issubclass(WorkDirBusy, ValueError)     # a user error: one line from the tools


def test_sigterm_to_the_launcher_stops_every_rank_with_one_line(demo_data, tmp_path):
    """SIGTERM to the launcher only (as a scheduler sends it): the ranks stop as a single
    process does, rank 0 says how to resume, the launcher exits 143 without a traceback."""
    work_dir = tmp_path / 'run'
    cmd = ['bash', 'tools/dist_train.sh', str(DEMO_CONFIG), '2', '--threads', '1',
           '--cfg-options', f'work_dir={work_dir}', 'total_epochs=200', 'agent.interval=0',
           'data.workers_per_gpu=1', *data_options(demo_data)]
    launcher = subprocess.Popen(cmd, cwd=ROOT, env=tool_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_for(lambda: (work_dir / 'epoch_1.pth').exists(), 300, 'the first epoch', launcher)
        procs = _descendants(launcher.pid)
        launcher.send_signal(signal.SIGTERM)
        out, err = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
    assert launcher.returncode == 128 + signal.SIGTERM
    assert 'Traceback' not in out + err and 'death signal' not in err
    stopped = [line for line in (out + err).splitlines() if 'stopped by SIGTERM' in line]
    assert len(stopped) == 1 and '--resume auto' in stopped[0]
    _wait_for(lambda: not [p for p in procs if _alive(p)] or None, 20, 'every rank to end')


def test_console_shows_the_run_and_the_log_file_the_rest(demo_run):
    """The environment, the config and the hook table (about 330 lines) are in the log file
    only; on the console the start block comes within the first lines."""
    console = demo_run.log.splitlines()
    start = next(i for i, line in enumerate(console) if 'this run uses:' in line)
    assert start < 20, console[:start]
    for text in ('System environment:', 'Config:', 'Hooks will be executed'):
        assert not any(text in line for line in console), text
    log_file = next(demo_run.work_dir.glob('2*_*/2*_*.log')).read_text()
    for text in ('System environment:', 'Config:', 'Hooks will be executed'):
        assert text in log_file
    assert 'data workers' in demo_run.log


def test_forked_workers_do_not_keep_the_lock_after_their_run(tmp_path):
    """A run killed while its forked DataLoader workers still live: the next run gets the
    work dir at once (the workers closed their copy of the lock at fork)."""
    work_dir = tmp_path / 'w'
    code = ('import os, sys, time; from skeletonagent.engine.workdir_lock import hold_work_dir; '
            'hold_work_dir(sys.argv[1]); pid = os.fork()\n'
            'if pid == 0:\n    null = os.open(os.devnull, os.O_WRONLY); os.dup2(null, 1); '
            'os.dup2(null, 2); time.sleep(60); os._exit(0)\n'
            'print(pid, flush=True); os._exit(0)')
    run = subprocess.run([sys.executable, '-c', code, str(work_dir)], cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
                         text=True, timeout=120)
    worker = int(run.stdout.split()[0])
    try:
        assert _alive(worker)                      # the run ended, its worker lives on
        again = ('import sys; from skeletonagent.engine.workdir_lock import hold_work_dir; '
                 'hold_work_dir(sys.argv[1]); print("held")')
        second = subprocess.run([sys.executable, '-c', again, str(work_dir)], cwd=ROOT,
                                env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
                                text=True, timeout=120)
        assert second.stdout.strip() == 'held', second.stderr[-2000:]
    finally:
        os.kill(worker, signal.SIGKILL)
