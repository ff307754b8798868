"""What the tools' malloc tuning buys: one training step with glibc's defaults and tuned, side by side.

``tools/train.py`` restarts itself with ``skeletonagent.utils.malloc.MALLOC_TUNABLES`` (freed
activations stay in the heap). This script runs the training rows of ``bench/scale.py`` (our
default path: NTU-60 joint model, frozen MiniLM, SGD, float32; one fresh child process per
row) at each ``--batches`` size twice: with glibc's defaults (the reference) and tuned, and
prints per row the median step time, the child's system CPU time and minor page faults per
step (warm-up included), its peak RSS, and the tuned/default ratios.

Usage: python bench/malloc.py [--batches 8,16] [--frames 100] [--steps 3] [--warmup 1]
       [--threads 2] [--quick]
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))


def _row(batch: int, frames: int, mode: str, args: argparse.Namespace) -> dict:
    import _common as C
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = C.run_child(str(BENCH / 'scale.py'),
                      ['--kind', 'train', '--batch', str(batch), '--frames', str(frames), '--classes', '60',
                       '--variant', 'minilm', '--steps', str(args.steps), '--warmup', str(args.warmup),
                       '--threads', str(args.threads), '--device', 'cpu'] + (['--quick'] if args.quick else []),
                      env=C.malloc_env(mode))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    steps = args.steps + args.warmup
    res['sys_s'] = (after.ru_stime - before.ru_stime) / steps
    res['faults'] = (after.ru_minflt - before.ru_minflt) / steps
    return res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--batches', default='8,16')
    parser.add_argument('--frames', type=int, default=100)
    parser.add_argument('--steps', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--quick', action='store_true', help="bench/scale.py's smoke-test model (base_channels 16)")
    args = parser.parse_args(argv)
    import _common as C
    if 'glibc.malloc.' in os.environ.get('GLIBC_TUNABLES', ''):
        parser.error('GLIBC_TUNABLES already sets malloc tunables: run this script without them')
    print(C.machine_line())
    print(f'NTU-60 joint model, MiniLM frozen, float32, T {args.frames}, threads {args.threads}, '
          f'{args.warmup} warm-up + {args.steps} timed steps per row, one process per row', flush=True)
    header = ('batch (x2 mixup)', 'malloc', 'median s', 'x default', 'sys s/step', 'faults/step',
              'peak GB', 'x default', 'others')
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    for batch in (int(b) for b in args.batches.split(',')):
        ref = None
        for mode in ('default', 'tuned'):
            res = _row(batch, args.frames, mode, args)
            ref = ref or res
            lines.append(f'| {batch} | {mode} | {res["median_s"]:.2f} | {res["median_s"] / ref["median_s"]:.2f} | '
                         f'{res["sys_s"]:.2f} | {res["faults"]:.0f} | {res["peak_gb"]:.2f} | '
                         f'{res["peak_gb"] / ref["peak_gb"]:.2f} | {res["others"]["cores"]:.2f} |')
            print(f'  batch {batch} {mode}: steps {res["times"]}, loss {res["first_loss"]:.4f}', flush=True)
    print('\n'.join(lines))
    return 0


if __name__ == '__main__':
    sys.exit(main())
