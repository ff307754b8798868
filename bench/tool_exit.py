"""What ``skip_exit_collection`` saves: the end of a tool process, with the interpreter's default
clean-up and with the tools' setting, side by side.

Every script under ``tools/`` calls ``skeletonagent.utils.fast_exit.skip_exit_collection()``.
This script starts fresh child processes that do what a tool does before it ends: import
``skeletonagent.engine`` (torch, mmengine, mmcv, transformers) and the models, and, with
``--model``, build the NTU-60 joint model. Each child then exits. The children alternate
between the interpreter's default (the reference) and the tools' setting.

For each setting it prints the median over ``--repeats`` of:

* exit s: from the child's last ``atexit`` handler to the moment the parent has reaped it;
* process s: the child's whole wall time;
* cpu s: the child's CPU time.

Usage: python bench/tool_exit.py [--repeats 5] [--model]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

MODES = ('default', 'skip')
LABELS = {'default': 'interpreter default', 'skip': 'skip_exit_collection()'}


def child(mode: str, model: bool) -> None:
    import atexit
    # registered first, so it runs last: after every other handler, before the clean-up
    atexit.register(lambda: print('EXIT_STAMP', time.time(), flush=True))
    if mode == 'skip':
        from skeletonagent.utils.fast_exit import skip_exit_collection
        skip_exit_collection()
    import skeletonagent.engine  # noqa: F401 - what tools/train.py and tools/test.py import
    import skeletonagent.engine.runner  # noqa: F401
    import skeletonagent.models  # noqa: F401
    if model:
        import _common as C
        C.build_ntu_model('minilm', with_text=False)


def _one(mode: str, model: bool) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.time()
    proc = subprocess.run([sys.executable, __file__, '--child', mode] + (['--model'] if model else []),
                          capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS='1'))
    end = time.time()
    if proc.returncode != 0:
        raise RuntimeError(f'child {mode} failed:\n{proc.stdout}\n{proc.stderr}')
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    stamp = float(next(ln.split()[1] for ln in proc.stdout.splitlines() if ln.startswith('EXIT_STAMP')))
    return dict(exit_s=end - stamp, process_s=end - start,
                cpu_s=after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--model', action='store_true', help='build the NTU-60 joint model before exiting')
    parser.add_argument('--child', choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.model)
        return 0
    import _common as C
    print(C.machine_line())
    print(f'child: imports skeletonagent.engine, its runner and the models'
          f'{", builds the NTU-60 joint model" if args.model else ""}; then exits. '
          f'{args.repeats} children per setting, alternating; medians', flush=True)
    rows: dict[str, list[dict]] = {mode: [] for mode in MODES}
    snap = C.cpu_snapshot()
    for _ in range(args.repeats):
        for mode in MODES:
            rows[mode].append(_one(mode, args.model))
    others = C.other_cpu_use(snap, C.cpu_snapshot(), exclude={os.getpid()})
    header = ('exit', 'exit s', 'x default', 'process s', 'x default', 'cpu s', 'x default')
    print('| ' + ' | '.join(header) + ' |')
    print('|' + '---|' + '---:|' * (len(header) - 1))
    ref = {key: statistics.median(r[key] for r in rows['default']) for key in ('exit_s', 'process_s', 'cpu_s')}
    for mode in MODES:
        med = {key: statistics.median(r[key] for r in rows[mode]) for key in ref}
        cells = [LABELS[mode]]
        for key in ('exit_s', 'process_s', 'cpu_s'):
            cells += [f'{med[key]:.2f}', f'{med[key] / ref[key]:.2f}']
        print('| ' + ' | '.join(cells) + ' |')
    print(f'others (cores other processes kept busy): {others["cores"]:.2f} {json.dumps(others["top"])}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
