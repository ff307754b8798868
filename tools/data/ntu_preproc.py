#!/usr/bin/env python
"""NTU RGB+D 60/120 raw ``.skeleton`` files → ``ntu60_3danno.pkl`` / ``ntu120_3danno.pkl``.

    python tools/data/ntu_preproc.py --root data/nturgbd/nturgb+d_skeletons \
        --out-dir data/nturgbd --workers 8

PYSKL's conventions (two most active bodies, its denoising, float keypoints (M, T, 25, 3));
official X-Sub / X-View (NTU60) and X-Sub / X-Set (NTU120) splits; the dataset authors'
missing-skeleton samples excluded (skeletonagent/data/ntu_missing/). Resumable: per-sample results
are cached in --work-dir, so rerunning after an interruption skips finished samples.
Unreadable raw files are skipped with a warning naming file and line, listed at the end and
in WORK_DIR/failed.txt (--strict stops at the first one); the exit status is then 2.
See skeletonagent/datasets/prep/ntu.py for the details.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's package first

from skeletonagent.datasets.prep import prepare_ntu  # noqa: E402
from skeletonagent.engine.tool import tool_main  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--root', nargs='+', required=True,
                        help='folder(s) holding the .skeleton files (NTU60 and/or NTU120)')
    parser.add_argument('--out-dir', default='data/nturgbd', help='where the pickles go')
    parser.add_argument('--work-dir', help='per-sample cache (default OUT_DIR/.ntu_work)')
    parser.add_argument('--dataset', default='auto', choices=['auto', 'ntu60', 'ntu120', 'both'],
                        help='auto: ntu60, plus ntu120 when actions above 60 are present')
    parser.add_argument('--missing', default='default',
                        help='missing-skeleton list to exclude (default: the shipped NTU120 '
                             'list, a superset of NTU60\'s); "none" keeps every sample')
    parser.add_argument('--workers', type=int, default=1, help='processes')
    parser.add_argument('--strict', action='store_true',
                        help='stop at the first unreadable raw file')
    parser.add_argument('--dtype', default='float32', choices=['float32', 'float16'],
                        help='keypoint dtype (PYSKL\'s own pickles hold float16)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    missing = None if args.missing.lower() == 'none' else args.missing
    out = prepare_ntu(args.root, args.out_dir, work_dir=args.work_dir, dataset=args.dataset,
                      missing=missing, workers=args.workers, strict=args.strict,
                      dtype=args.dtype, progress=not args.no_progress)
    return 2 if out['result'].failed else 0


if __name__ == '__main__':
    tool_main(main)
