#!/usr/bin/env python
"""Test a checkpoint: ``python tools/test.py CONFIG CKPT [--eval ...] [--out result.pkl]``.

Logs go to ``--work-dir`` when given, else to ``<config work_dir>/test/<timestamp>``. A run
that cannot start ends with one ``error: ...`` line (``--debug`` shows the traceback).
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package first

if __name__ == '__main__':      # first, before torch: glibc reads its malloc settings at start
    from skeletonagent.utils.fast_exit import skip_exit_collection
    from skeletonagent.utils.malloc import reexec_with_tuned_malloc
    reexec_with_tuned_malloc()
    skip_exit_collection()      # no cycle collection of torch's objects at exit

from skeletonagent.engine.config import CfgOptionsAction, RunOptions, load_config  # noqa: E402
from skeletonagent.engine.errors import run_tool  # noqa: E402
from skeletonagent.engine.threads import threads_arg  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Test a SkeletonAgent checkpoint')
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--eval', nargs='+', default=None,
                   choices=['top_k_accuracy', 'mean_class_accuracy'],
                   help='metrics to report (default: both)')
    p.add_argument('--out', default=None, help='pickle of per-sample score arrays')
    p.add_argument('--work-dir', default=None,
                   help='where the logs go (default: the config work_dir/test)')
    p.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction, default=None)
    p.add_argument('--threads', type=threads_arg, default=None,
                   help='CPU threads of each process (default: chosen from the free cores; '
                        'OMP_NUM_THREADS when set)')
    p.add_argument('--debug', action='store_true', help='show the traceback of an error')
    p.add_argument('--launcher', default=None, help=argparse.SUPPRESS)
    p.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _main(argv):
    # the run's modules (torch, the models) load after the malloc settings above
    from skeletonagent.engine.dist import init_distributed
    from skeletonagent.engine.preflight import preflight
    from skeletonagent.engine.runner import test
    from skeletonagent.engine.spec import resolve_run
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    opts = RunOptions(work_dir=args.work_dir, metrics=args.eval, out_file=args.out)
    spec = resolve_run(cfg, opts, 'test')   # the config read, checked and translated once
    spec = preflight(spec)   # log dir, test data, every sample: before memcached and the model
    init_distributed()
    return test(spec, args.checkpoint, threads=args.threads)


def main(argv=None):
    try:
        return run_tool(_main, argv)
    except KeyboardInterrupt:
        print('stopped by Ctrl-C', file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == '__main__':
    main()
