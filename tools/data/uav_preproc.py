#!/usr/bin/env python
"""UAV-Human skeleton ``.txt`` files → one pickle with the CSv1 / CSv2 splits.

    python tools/data/uav_preproc.py --root data/uav/Skeleton --out data/uav/uav_human.pkl \
        --workers 8

Splits csv1_train / csv1_val / csv2_train / csv2_val (the names the official configs use);
17 joints, 2D (x, y) keypoints with keypoint_score 1 where a body is present. Resumable
(--work-dir cache); unreadable files are skipped, listed, and make the exit status 2
(--strict stops at the first). See skeletonagent/datasets/prep/uav.py for the details.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's package first

from skeletonagent.datasets.prep import prepare_uav  # noqa: E402
from skeletonagent.engine.tool import tool_main  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--root', nargs='+', required=True,
                        help='folder(s) holding the UAV-Human skeleton .txt files')
    parser.add_argument('--out', default='data/uav/uav_human.pkl', help='the pickle to write')
    parser.add_argument('--work-dir', help='per-sample cache (default: beside --out, .uav_work)')
    parser.add_argument('--workers', type=int, default=1, help='processes')
    parser.add_argument('--strict', action='store_true',
                        help='stop at the first unreadable file')
    parser.add_argument('--dtype', default='float32', choices=['float32', 'float16'])
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    out = prepare_uav(args.root, args.out, work_dir=args.work_dir, workers=args.workers,
                      strict=args.strict, dtype=args.dtype, progress=not args.no_progress)
    return 2 if out['result'].failed else 0


if __name__ == '__main__':
    tool_main(main)
