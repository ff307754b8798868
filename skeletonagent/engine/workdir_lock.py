"""A training run owns its work dir for its whole life.

Two runs writing into one work dir replace each other's checkpoints, ``latest.pth`` and dumped
config without a word. A run therefore takes an OS lock on ``WORK_DIR/.run.lock`` before it
writes anything there and keeps it until the process ends. The lock is ``flock``: the kernel
drops it when the last process holding the open file ends, however it ends (a ``kill -9``
leaves no stale lock; forked DataLoader workers close their copy of the descriptor at once).
A POSIX record lock (``lockf``) would not do: any ``close()`` of the file by the holder, even
of another descriptor opened to read it, drops that kind of lock. The file itself holds the
holder's PID, host, start time and command, for the message another run gets. Only rank 0
of a distributed run locks; it tells the other ranks whether it got the lock. Testing and
evaluation only read a work dir and take no lock.
"""
from __future__ import annotations

import fcntl
import json
import os
import shlex
import socket
import sys
import time
from pathlib import Path

from mmengine.dist import broadcast_object_list, get_rank, get_world_size

from .errors import ConfigError

__all__ = ['LOCK_NAME', 'WorkDirBusy', 'hold_work_dir', 'lock_holder', 'hold_work_dir_all_ranks']

#: The lock file's name inside the work dir.
LOCK_NAME = '.run.lock'

# The lock files' descriptors of this process, by work dir (kept open: closing the last one
# would drop the lock).
_HELD: dict[str, int] = {}


class WorkDirBusy(ConfigError):
    """Another live run holds the work dir."""


def _command() -> str:
    return shlex.join([Path(sys.executable).name, *sys.argv])


def lock_holder(work_dir: str | os.PathLike) -> dict | None:
    """What the lock file says about its last holder (pid, host, started, command), or None."""
    try:
        text = (Path(work_dir) / LOCK_NAME).read_text()
        holder = json.loads(text)
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _busy_message(work_dir: Path, holder: dict | None) -> str:
    if holder:
        who = (f"PID {holder.get('pid')}" + (f" on {holder['host']}"
                                             if holder.get('host') != socket.gethostname() else '')
               + f" (started {holder.get('started', '?')}: {holder.get('command', '?')})")
    else:
        who = 'another process (it has not written its PID yet)'
    pid = holder.get('pid') if holder else None
    stop = f'stop it (kill {pid})' if pid else 'stop it'
    return (f'the work dir {work_dir} is in use by another run: {who}; wait for it to end, '
            f'give this run another work dir (--work-dir), or {stop}')


def _close_in_child() -> None:
    """In a forked child (a DataLoader worker): close the lock's descriptors, so that the lock
    ends with the run's own process, not with its last worker (the parent's descriptor keeps
    the lock)."""
    for fd in _HELD.values():
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


def hold_work_dir(work_dir: str | os.PathLike) -> Path:
    """Lock ``work_dir`` (created if needed) for this process's life; the lock file then names
    this process. Raises :class:`WorkDirBusy` naming the live holder. Holding it again in the
    same process is a no-op."""
    path = Path(work_dir).expanduser()
    key = str(path.resolve())
    if key in _HELD:
        return path
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise WorkDirBusy(_busy_message(path, lock_holder(path))) from None
    record = json.dumps(dict(pid=os.getpid(), host=socket.gethostname(),
                             started=time.strftime('%Y-%m-%d %H:%M:%S'), command=_command()))
    os.ftruncate(fd, 0)
    os.pwrite(fd, (record + '\n').encode(), 0)
    if not _HELD:
        os.register_at_fork(after_in_child=_close_in_child)
    _HELD[key] = fd
    return path


def hold_work_dir_all_ranks(work_dir: str | os.PathLike) -> None:
    """:func:`hold_work_dir` on rank 0 of a distributed run (every process otherwise); every
    rank raises :class:`WorkDirBusy` when rank 0 could not take the lock."""
    problem = [None]
    if get_rank() == 0:
        try:
            hold_work_dir(work_dir)
        except WorkDirBusy as exc:
            problem = [str(exc)]
    if get_world_size() > 1:
        broadcast_object_list(problem, src=0)
    if problem[0]:
        raise WorkDirBusy(problem[0])
