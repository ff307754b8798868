"""skeletonagent.utils.malloc: the tools restart themselves with glibc's malloc tuned, so that a
freed activation's memory is reused by the next step instead of being page-faulted in again."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from skeletonagent.utils.malloc import MALLOC_TUNABLES, malloc_line, tuned_malloc_env

ROOT = Path(__file__).resolve().parents[2]
glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != 'glibc', reason='glibc tunables')

# Allocates, fills and frees a 64 MiB block twice with the C library's malloc and prints the
# page faults of the second round; before that it restarts itself with the tuned malloc.
FAULTS = r'''
import ctypes, os, resource, sys
sys.path.insert(0, sys.argv[1])
print('start', os.getpid(), flush=True)
if os.environ.get('DROP_ORIG_ARGV'):      # as on Python 3.9, which has no sys.orig_argv
    del sys.orig_argv
from skeletonagent.utils.malloc import reexec_with_tuned_malloc
reexec_with_tuned_malloc()
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
size = 64 << 20
def fill_and_free():
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    libc.free(block)
fill_and_free()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
fill_and_free()
print('faults', resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print('tunables', os.environ.get('GLIBC_TUNABLES'))
'''


def _run(tmp_path: Path, **env: str) -> tuple[list[str], int, str]:
    script = tmp_path / 'faults.py'
    script.write_text(FAULTS)
    environ = {k: v for k, v in os.environ.items()
               if k not in ('GLIBC_TUNABLES', 'SKELETONAGENT_MALLOC')}
    proc = subprocess.run([sys.executable, str(script), str(ROOT)], env={**environ, **env},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    starts = [line.split()[1] for line in lines if line.startswith('start ')]
    faults = int(next(line.split()[1] for line in lines if line.startswith('faults ')))
    tunables = next(line.split(' ', 1)[1] for line in lines if line.startswith('tunables '))
    return starts, faults, tunables


@glibc_only
def test_the_restarted_process_reuses_freed_memory_without_page_faults(tmp_path):
    starts, faults, tunables = _run(tmp_path)
    # started twice in the same process (execve keeps the PID), the second time tuned
    assert len(starts) == 2 and starts[0] == starts[1], starts
    assert tunables == MALLOC_TUNABLES
    assert faults < 100, faults                          # 64 MiB is 16384 pages of 4 KiB

    starts, faults, tunables = _run(tmp_path, DROP_ORIG_ARGV='1')
    assert len(starts) == 2 and starts[0] == starts[1] and tunables == MALLOC_TUNABLES and faults < 100

    starts, faults, tunables = _run(tmp_path, SKELETONAGENT_MALLOC='default')
    assert len(starts) == 1 and tunables == 'None'
    assert faults > 1000, faults                         # glibc's defaults: mmap'd again


@glibc_only
def test_the_users_own_malloc_tunables_are_left_as_they_are(tmp_path):
    mine = 'glibc.malloc.mmap_threshold=1048576'
    starts, _, tunables = _run(tmp_path, GLIBC_TUNABLES=mine)
    assert len(starts) == 1 and tunables == mine


def test_tuned_env_appends_to_other_tunables_and_knows_when_to_do_nothing():
    env = tuned_malloc_env({'PATH': '/bin'}, libc='glibc')
    assert env == {'PATH': '/bin', 'GLIBC_TUNABLES': MALLOC_TUNABLES}
    other = 'glibc.rtld.optional_static_tls=4096'
    assert tuned_malloc_env({'GLIBC_TUNABLES': other}, libc='glibc')['GLIBC_TUNABLES'] \
        == f'{other}:{MALLOC_TUNABLES}'
    assert tuned_malloc_env({'GLIBC_TUNABLES': MALLOC_TUNABLES}, libc='glibc') is None
    assert tuned_malloc_env({'SKELETONAGENT_MALLOC': 'default'}, libc='glibc') is None
    assert tuned_malloc_env({'SKELETONAGENT_MALLOC': 'Tuned'}, libc='glibc') is not None
    assert tuned_malloc_env({}, libc='') is None                 # musl, macOS: not glibc
    with pytest.raises(ValueError, match='SKELETONAGENT_MALLOC=.fast.'):
        tuned_malloc_env({'SKELETONAGENT_MALLOC': 'fast'}, libc='glibc')


def test_the_log_line_says_which_settings_run():
    assert malloc_line({'GLIBC_TUNABLES': MALLOC_TUNABLES}).startswith('tuned')
    assert 'SKELETONAGENT_MALLOC=default' in malloc_line({'SKELETONAGENT_MALLOC': 'default'})
    assert 'glibc.malloc.mxfast=0' in malloc_line({'GLIBC_TUNABLES': 'glibc.malloc.mxfast=0'})


def test_the_training_run_logged_the_tuned_malloc(demo_run):
    assert 'malloc: tuned' in demo_run.log
