#!/usr/bin/env python
"""Test a checkpoint: ``python tools/test.py CONFIG CKPT [--eval ...] [--out result.pkl]``."""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmengine.config import DictAction  # noqa: E402

from skeletonagent.datasets.memcache import MemcachedError  # noqa: E402
from skeletonagent.engine import RunOptions, init_distributed, load_config  # noqa: E402
from skeletonagent.engine.runner import test  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Test a SkeletonAgent checkpoint')
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--eval', nargs='+', default=['top_k_accuracy', 'mean_class_accuracy'],
                   choices=['top_k_accuracy', 'mean_class_accuracy'])
    p.add_argument('--out', default=None, help='pickle of per-sample score arrays')
    p.add_argument('--work-dir', default=None)
    p.add_argument('--cfg-options', nargs='+', action=DictAction, default=None)
    p.add_argument('--launcher', default=None, help=argparse.SUPPRESS)
    p.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    cfg = load_config(args.config, args.cfg_options)
    if args.work_dir:
        cfg.work_dir = args.work_dir
    cfg.setdefault('evaluation', {})
    cfg.evaluation['metrics'] = args.eval
    launcher = init_distributed()
    try:
        test(cfg, args.checkpoint, RunOptions(launcher=launcher), args.out)
    except MemcachedError as exc:
        raise SystemExit(f'error: {exc}') from exc


if __name__ == '__main__':
    main()
