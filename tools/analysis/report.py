#!/usr/bin/env python
"""Evaluation report of a work dir: ``python tools/analysis/report.py WORK_DIR [options]``.

Writes ``WORK_DIR/report/``: confusion matrix (PNG, CSV), per-class accuracy (CSV, bar plot),
the most confused class pairs, training curves and ``index.html`` with the agent's rounds.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's package first

from skeletonagent.engine.tool import tool_main  # noqa: E402
from skeletonagent.evaluation.report import write_report  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Write the evaluation report of a work dir')
    p.add_argument('work_dir', help='the training work dir')
    p.add_argument('--pred', default=None,
                   help='predictions pickle (default: best_pred.pkl, else last_pred.pkl)')
    p.add_argument('--ann', default=None,
                   help='annotation file to read the labels from (default: the confusion '
                        'matrix dumped beside the predictions)')
    p.add_argument('--split', default=None, help='split of --ann the predictions are for')
    p.add_argument('--top-n', type=int, default=20,
                   help='confused pairs listed; classes shown when there are too many for '
                        'the whole confusion matrix')
    p.add_argument('--out', default=None, help='output folder (default: WORK_DIR/report)')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not Path(args.work_dir).is_dir():
        raise SystemExit(f'error: no work dir {args.work_dir}')
    try:
        index = write_report(args.work_dir, pred=args.pred, ann=args.ann, split=args.split,
                             top_n=args.top_n, out_dir=args.out)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f'error: {exc}') from exc
    print(index)


if __name__ == '__main__':
    tool_main(main)
