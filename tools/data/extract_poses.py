#!/usr/bin/env python
"""Your own videos → a PYSKL training pickle, a label map, and a report of skipped videos.

    python tools/data/extract_poses.py videos/ --out data/custom/custom_2d.pkl
        # videos/<class name>/*.mp4; writes data/custom/label_map.txt beside the pickle
    python tools/data/extract_poses.py list.txt --out data/custom/custom_2d.pkl
        # list.txt: one "path label" per line (a class name, or an index with --label-map)

Poses by MediaPipe (default, offline, one person, COCO-17), ``--backend mediapipe_hands``
(hands, the handmp layout) or ``--backend rtmlib`` (several persons; its models are
downloaded on first use). Splits: a seeded share of each class (``--val-ratio``,
``--test-ratio``, ``--seed``) or your own lists (``--split train=a.txt val=b.txt``).
Parallel (``--workers``), with a progress bar, resumable: each video's result is cached in
``--work-dir`` as soon as it is done, so a rerun after an interruption only does the rest.
Needs the video extra: pip install -e ".[video]".
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's package first

from skeletonagent.engine.tool import tool_main  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('source', help='a folder of class folders of videos, or a "path label" list file')
    p.add_argument('--out', default='data/custom/custom_2d.pkl', help='the pickle to write')
    p.add_argument('--label-map', help='class names in label order (default: the folder names, '
                                       'sorted, or the list\'s labels in order)')
    p.add_argument('--label-map-out', help='where the label map goes (default: OUT_DIR/label_map.txt)')
    p.add_argument('--backend', default='mediapipe', choices=['mediapipe', 'mediapipe_hands', 'rtmlib'])
    p.add_argument('--max-persons', type=int, default=2, help='persons (hands) kept per video')
    p.add_argument('--val-ratio', type=float, default=0.2)
    p.add_argument('--test-ratio', type=float, default=0.0)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--split', nargs='+', metavar='NAME=FILE', default=None,
                   help='your own splits: lists of videos, e.g. train=train.txt val=val.txt')
    p.add_argument('--workers', type=int, default=1, help='processes')
    p.add_argument('--work-dir', help='per-video cache (default OUT_DIR/.videos_work)')
    p.add_argument('--no-progress', action='store_true')
    p.add_argument('--debug', action='store_true', help='show the traceback of an error')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from skeletonagent.pose import require
    from skeletonagent.pose.dataset import prepare_videos
    require('cv2')                                   # the extra, before any video is looked at
    if args.backend.startswith('mediapipe'):
        require('mediapipe')
    splits = None
    if args.split:
        splits = {}
        for item in args.split:
            name, sep, path = item.partition('=')
            if not sep or not name or not path:
                raise ValueError(f'--split {item!r}: give NAME=FILE')
            splits[name] = path
    backend_kwargs = {'max_hands': args.max_persons} if args.backend == 'mediapipe_hands' else {}
    result = prepare_videos(args.source, args.out, label_map=args.label_map,
                            label_map_out=args.label_map_out, backend=args.backend,
                            backend_kwargs=backend_kwargs, max_persons=args.max_persons,
                            val_ratio=args.val_ratio, test_ratio=args.test_ratio, seed=args.seed,
                            split_lists=splits, workers=args.workers, work_dir=args.work_dir,
                            progress=not args.no_progress)
    return 2 if result.unreadable else 0


if __name__ == '__main__':
    tool_main(main)
