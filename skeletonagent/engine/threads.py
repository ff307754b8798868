"""How many CPU threads a run's main process uses (torch's intra-op threads).

torch starts one OpenMP thread per core it sees. That is the fastest choice on a quiet machine
of its own, and by far the slowest on a shared one: OpenMP threads meet at a barrier after
every parallel operator, so when another process holds one of the cores, every operator waits
for the thread that core has descheduled. On a 2-core machine beside one other CPU-bound
process, two threads made the demo's step many times slower than one, while on the quiet
machine two were faster (``bench/threads.py``; the figures are in ``bench/README.md``). Too
many threads can cost an order of magnitude, too few at most the parallel speed-up: so when in
doubt, fewer.

The rule (:func:`choose_threads`), in order:

1. ``--threads N`` (``tools/train.py``, ``tools/test.py``): N.
2. ``OMP_NUM_THREADS`` set in the environment: torch already uses it; it is left alone. (torchrun
   sets it to 1 for runs of several processes per node unless it is already set.)
3. A GPU run: torch's default (the CPU threads only feed the device).
4. Otherwise, at start:

   * ``cpus``: the CPUs this process may run on (``os.sched_getaffinity``: taskset, cpusets,
     Slurm), capped by a cgroup CPU quota (``cpu.max``, containers);
   * ``busy``: the CPUs other processes keep busy *now*: the runnable tasks the kernel counts
     (``procs_running`` in ``/proc/stat``), sampled 5 times over 0.2 s, median, less this
     process. Only when ``cpus`` is the whole machine: the count is machine-wide, and a
     container or a pinned run sharing a large host would count strangers' cores. The load
     average is not used for the decision (it is logged): it is a one-minute moving average,
     so it still counts a run that has just ended (a test right after training would get one
     thread on a quiet machine) and barely counts one that has just started;
   * ``share = (cpus - busy) // local processes`` (``LOCAL_WORLD_SIZE``, torchrun's processes
     on this node, 1 otherwise), at least 1;
   * data workers: a DataLoader worker runs with one thread (PyTorch's own setting) and only
     while it prepares a batch. Skeleton pipelines are cheap next to a training step (the
     demo's batch takes a small fraction of its step's CPU time), so a worker costs the step
     about its own CPU time when it borrows a core, while a core kept free for it costs the
     step a whole thread: half the cores on a 2-core machine. So a core is kept free for the
     workers only when the share is large (``>= 8``, where one thread is a few percent);
   * ``threads = share`` (less that one core), at least 1.

The choice is made once, at start: a process that starts competing later is not seen (give
``--threads`` for a machine you share). :class:`ThreadChoice` says what was chosen and why;
the runner logs it and puts it in the run's start block.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable

import torch

__all__ = ['ThreadChoice', 'choose_threads', 'choose_workers', 'apply_threads', 'configure_threads',
           'usable_cpus', 'busy_cpus', 'threads_arg', 'WORKER_RESERVE_FROM']

#: From this many cores per process on, one is left free for the data workers.
WORKER_RESERVE_FROM = 8


@dataclass(frozen=True)
class ThreadChoice:
    """The intra-op threads of this process and how they were chosen.

    Attributes:
        threads: the number of threads (``torch.get_num_threads()`` after
            :func:`apply_threads`).
        source: ``'--threads'``, ``'OMP_NUM_THREADS'``, ``'GPU run'`` or ``'automatic'``.
        reason: the figures behind the choice, for the log.
    """
    threads: int
    source: str
    reason: str

    def line(self) -> str:
        """One line for the log and the start block."""
        return f'{self.threads} ({self.source}: {self.reason})'


def _cgroup_quota() -> float | None:
    """CPUs allowed by a cgroup quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``), or None."""
    try:
        with open('/sys/fs/cgroup/cpu.max') as f:
            quota, period = f.read().split()[:2]
        if quota != 'max':
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        with open('/sys/fs/cgroup/cpu/cpu.cfs_quota_us') as f:
            quota = int(f.read())
        with open('/sys/fs/cgroup/cpu/cpu.cfs_period_us') as f:
            period = int(f.read())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def usable_cpus() -> int:
    """The CPUs this process may use: its affinity mask, capped by a cgroup CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        cpus = min(cpus, max(1, int(quota)))
    return max(1, cpus)


def _procs_running() -> int | None:
    try:
        with open('/proc/stat') as f:
            for line in f:
                if line.startswith('procs_running '):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def busy_cpus(samples: int = 5, interval: float = 0.05,
              read: Callable[[], int | None] = _procs_running) -> int | None:
    """CPUs other processes keep busy now: the median number of runnable tasks on the
    machine over ``samples`` readings ``interval`` seconds apart, less this process (which
    is running while it reads). None where the kernel does not say (not Linux)."""
    counts = []
    for i in range(samples):
        if i:
            time.sleep(interval)
        value = read()
        if value is None:
            return None
        counts.append(value)
    return max(0, int(statistics.median(counts)) - 1)


def _load_text() -> str:
    try:
        return 'load average ' + ' '.join(f'{x:.2f}' for x in os.getloadavg())
    except (AttributeError, OSError):
        return 'load average unknown'


def _positive_int(text: str) -> int | None:
    try:
        value = int(str(text).strip())
    except ValueError:
        return None
    return value if value > 0 else None


def threads_arg(text: str) -> int:
    """``--threads`` of the tools: a positive number (argparse ``type``)."""
    value = _positive_int(text)
    if value is None:
        raise argparse.ArgumentTypeError(f'a positive number of threads, not {text!r}')
    return value


def choose_threads(requested: int | None = None, *, workers: int = 0, cuda: bool = False,
                   env: Mapping[str, str] | None = None, cpus: int | None = None,
                   machine_cpus: int | None = None, busy: int | None = -1,
                   current: int | None = None, load: str | None = None) -> ThreadChoice:
    """The threads this process should use (the rule of the module docstring).

    Args:
        requested: ``--threads N`` (None: not given).
        workers: DataLoader workers of this process (``workers_per_gpu``).
        cuda: the run trains or tests on a GPU.
        env: the environment (default ``os.environ``): ``OMP_NUM_THREADS``,
            ``LOCAL_WORLD_SIZE``.
        cpus, machine_cpus, busy, current, load: measured when not given (for tests):
            usable CPUs, the machine's CPUs (``os.cpu_count()``), CPUs busy with other
            processes (-1: measure; None: unknown), torch's current threads, the load text.

    Raises:
        ValueError: ``requested`` is not a positive number.
    """
    env = os.environ if env is None else env
    if requested is not None:
        if int(requested) < 1:
            raise ValueError(f'--threads must be a positive number of threads, got {requested}')
        return ThreadChoice(int(requested), '--threads', 'given on the command line')
    omp = env.get('OMP_NUM_THREADS')
    if omp is not None and omp.strip():
        value = _positive_int(omp)
        if value is not None:
            return ThreadChoice(value, 'OMP_NUM_THREADS', f'OMP_NUM_THREADS={omp.strip()} in the '
                                                          'environment')
    if current is None:
        current = torch.get_num_threads()
    if cuda:
        return ThreadChoice(current, 'GPU run', "torch's default")
    cpus = usable_cpus() if cpus is None else int(cpus)
    machine_cpus = (os.cpu_count() or cpus) if machine_cpus is None else int(machine_cpus)
    local = _positive_int(env.get('LOCAL_WORLD_SIZE', '1')) or 1
    if busy == -1:
        busy = busy_cpus() if cpus >= machine_cpus else None
    busy_note = (f'{busy} busy with other processes' if busy is not None
                 else 'others not counted: this process may use only part of the machine')
    free = max(1, cpus - (busy or 0))
    share = max(1, free // local)
    reserve = 1 if workers > 0 and share >= WORKER_RESERVE_FROM else 0
    threads = max(1, share - reserve)
    parts = [f'{cpus} usable CPU{"s" if cpus != 1 else ""}', busy_note]
    if local > 1:
        parts.append(f'{local} processes on this node')
    if workers:
        parts.append(f'{workers} data worker{"s" if workers != 1 else ""}'
                     + (' (1 core left for them)' if reserve else ''))
    parts.append(load or _load_text())
    if threads != current:
        parts.append(f"torch's default {current}")
    return ThreadChoice(threads, 'automatic', ', '.join(parts))


def apply_threads(choice: ThreadChoice) -> None:
    """Set torch's intra-op threads to the choice (nothing to do for OMP_NUM_THREADS)."""
    if torch.get_num_threads() != choice.threads:
        torch.set_num_threads(choice.threads)


def configure_threads(requested: int | None = None, workers: int = 0,
                      cuda: bool | None = None) -> ThreadChoice:
    """:func:`choose_threads` for this process and :func:`apply_threads`; returns the choice."""
    if cuda is None:
        cuda = torch.cuda.is_available()
    choice = choose_threads(requested, workers=workers, cuda=cuda)
    apply_threads(choice)
    return choice


def _local_processes() -> int:
    try:
        return max(1, int(os.environ.get('LOCAL_WORLD_SIZE', '1')))
    except ValueError:
        return 1


def choose_workers(requested: int, cpus: int | None = None,
                   local_processes: int | None = None) -> tuple[int, str]:
    """DataLoader workers per process, chosen as the threads are, from what the machine has:
    the config's number, at most this process's share of the CPUs (``usable_cpus() //
    LOCAL_WORLD_SIZE``, at least 1). More workers than that only compete with the training
    step for the same cores (and make torch warn once per loader). Returns (workers, a line
    for the log)."""
    cpus = usable_cpus() if cpus is None else cpus
    local = _local_processes() if local_processes is None else local_processes
    if requested <= 0:
        return 0, '0 (the config asks for none: batches are prepared in the main process)'
    share = max(1, cpus // local)
    where = f'{cpus} CPU{"s" if cpus != 1 else ""}' + (f', {local} processes on this node'
                                                      if local > 1 else '')
    if requested <= share:
        return requested, f'{requested} per process (as the config asks; {where})'
    return share, f'{share} per process (the config asks {requested}; {where})'
