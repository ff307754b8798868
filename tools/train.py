#!/usr/bin/env python
"""Train a recognizer: ``python tools/train.py CONFIG [options]`` (or through torchrun).

A run that cannot start ends with one ``error: ...`` line (``--debug`` shows the traceback).
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
    p = argparse.ArgumentParser(description='Train a SkeletonAgent recognizer')
    p.add_argument('config', help='config file')
    p.add_argument('--validate', action='store_true', help='validate every evaluation.interval')
    p.add_argument('--test-last', action='store_true', help='test the last checkpoint')
    p.add_argument('--test-best', action='store_true', help='test the best checkpoint')
    p.add_argument('--seed', type=int, default=None)
    p.add_argument('--deterministic', action='store_true')
    p.add_argument('--resume', nargs='?', const='auto', default=None,
                   help="'auto' (default when given alone): continue from work_dir/latest.pth "
                        "if it exists; or a checkpoint path (as the config's resume_from)")
    p.add_argument('--amp', action='store_true', help='mixed precision')
    p.add_argument('--compile', action='store_true', help='torch.compile the model')
    p.add_argument('--work-dir', default=None)
    p.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction, default=None,
                   help='override config keys, e.g. data.videos_per_gpu=8')
    p.add_argument('--threads', type=threads_arg, default=None,
                   help='CPU threads of each process (default: chosen from the free cores; '
                        'OMP_NUM_THREADS when set)')
    p.add_argument('--debug', action='store_true', help='show the traceback of an error')
    p.add_argument('--launcher', default=None, help=argparse.SUPPRESS)  # torchrun sets env
    p.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _main(argv):
    # the run's modules (torch, the models) load after the malloc settings above
    from skeletonagent.engine.dist import init_distributed
    from skeletonagent.engine.preflight import preflight
    from skeletonagent.engine.runner import train
    from skeletonagent.engine.spec import resolve_run
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    if args.work_dir:
        cfg.work_dir = args.work_dir
    opts = RunOptions(validate=args.validate, seed=args.seed, deterministic=args.deterministic,
                      resume=args.resume, amp=args.amp, compile=args.compile)
    splits = ['train'] + (['val'] if args.validate else []) \
        + (['test'] if args.test_last or args.test_best else [])
    # the config read, checked, translated and resolved once (docs/architecture.md)
    spec = resolve_run(cfg, opts, 'train', splits)
    # work dir, data, plugins' checks, every sample: before memcached, the model and any LLM
    spec = preflight(spec)
    init_distributed()
    return train(spec, test_last=args.test_last, test_best=args.test_best,
                 threads=args.threads)


def main(argv=None):
    try:
        return run_tool(_main, argv)
    except KeyboardInterrupt as exc:   # Ctrl-C / SIGTERM: the run has logged what to do next
        raise SystemExit(getattr(exc, 'exit_status', 130)) from None


if __name__ == '__main__':
    main()
