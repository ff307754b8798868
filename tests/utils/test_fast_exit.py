"""skeletonagent.utils.fast_exit: a tool process skips the cycle collection of its objects at
exit, and everything else at exit still happens."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Prints how many objects are frozen when the last exit handler runs; a reference cycle with a
# __del__ reports whether the collection at exit reached it; a logging file handler holds a
# line that only its close at exit writes out.
CHILD = r'''
import atexit, gc, logging, os, sys
gc.disable()                     # the cycle below stays until the interpreter's own clean-up
atexit.register(lambda: print('frozen', gc.get_freeze_count(), flush=True))   # first in: runs last
sys.path.insert(0, sys.argv[1])
from skeletonagent.utils.fast_exit import skip_exit_collection
before = atexit._ncallbacks()
if sys.argv[2] == 'skip':
    skip_exit_collection()
    skip_exit_collection()
print('registered', atexit._ncallbacks() - before, flush=True)

class Cycle:
    def __del__(self, write=os.write):
        write(1, b'cycle collected\n')

cycle = Cycle()
cycle.self = cycle
del cycle
handler = logging.FileHandler(sys.argv[3], delay=False)
handler.stream = open(sys.argv[3], 'w', buffering=1 << 20)   # nothing reaches the file before close
logging.getLogger('probe').addHandler(handler)
logging.getLogger('probe').warning('last line')
'''


def _run(mode: str, log: Path) -> list[str]:
    proc = subprocess.run([sys.executable, '-c', CHILD, str(ROOT), mode, str(log)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr == '', proc.stdout + proc.stderr
    return proc.stdout.splitlines()


def test_exit_skips_the_cycle_collection_and_keeps_the_exit_handlers(tmp_path):
    log = tmp_path / 'skip.log'
    lines = _run('skip', log)
    assert lines[0] == 'registered 1', lines                 # once, however often it is called
    frozen = int(lines[1].split()[1])
    assert lines[1].startswith('frozen') and frozen > 1000, lines
    assert 'cycle collected' not in lines, lines             # the collector did not run over it
    assert log.read_text() == 'last line\n'                  # logging.shutdown still closed the file


def test_without_it_the_exit_collection_runs(tmp_path):
    log = tmp_path / 'plain.log'
    lines = _run('plain', log)
    assert lines[:2] == ['registered 0', 'frozen 0'], lines
    assert lines[2:] == ['cycle collected'], lines           # the interpreter's collection at exit
    assert log.read_text() == 'last line\n'
