#!/usr/bin/env python
"""Sample videos of a real person, to try "Your own actions" before filming your own.

    python tools/data/sample_videos.py videos/ [--per-class 10] [--frames 48] [--size 480x640]

Writes videos/<class>/*.mp4 for two classes, 'slide to the left' and 'slide to the right':
scikit-image's astronaut photograph (a real photo of a person facing the camera, at --scale
of the frame's height) sliding sideways over a plain background by a random span, some videos
mirrored, made offline from the photo that the scikit-image wheel ships. Needs the video
extra: pip install -e ".[video]".
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's package first

from skeletonagent.engine.tool import tool_main  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('out', help='folder to write <class>/*.mp4 into')
    p.add_argument('--per-class', type=int, default=10, help='videos per class')
    p.add_argument('--frames', type=int, default=48, help='frames per video')
    p.add_argument('--size', default='480x640', help='HEIGHTxWIDTH (the width must exceed the height)')
    p.add_argument('--fps', type=float, default=25.0)
    p.add_argument('--scale', type=float, default=0.6,
                   help="the photo's height as a share of the frame's (smaller: a longer slide)")
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--debug', action='store_true', help='show the traceback of an error')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from skeletonagent.pose import require
    require('cv2')
    from skeletonagent.pose.sample_videos import make_sample_videos
    try:
        height, width = (int(v) for v in args.size.lower().split('x'))
    except ValueError:
        raise ValueError(f'--size {args.size!r}: give HEIGHTxWIDTH, e.g. 480x640') from None
    if width <= height or min(height, width) < 64:
        raise ValueError(f'--size {args.size}: the width must exceed the height (the person slides '
                         'sideways), and both be at least 64')
    if args.per_class < 1 or args.frames < 2 or not 0.2 <= args.scale <= 1:
        raise ValueError('--per-class must be at least 1, --frames at least 2 and --scale in [0.2, 1]')
    files = make_sample_videos(args.out, per_class=args.per_class, num_frames=args.frames,
                               size=(height, width), fps=args.fps, seed=args.seed, scale=args.scale)
    classes = sorted({f.parent.name for f in files})
    print(f'{len(files)} videos ({args.frames} frames of {width}x{height} at {args.fps:g} fps) of '
          f'{len(classes)} classes ({", ".join(classes)}) -> {args.out}')
    return 0


if __name__ == '__main__':
    tool_main(main)
