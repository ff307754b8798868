#!/usr/bin/env python
"""Draw one sample of a PYSKL annotation pickle, optionally with a class's critical joints.

``python tools/vis_skeleton.py ANN.pkl --index I | --frame-dir NAME [--layout L]
[--mask MASKS.npy --class C | --joints 6,7] [--label-map NAME | --config CFG]
--out out.gif|out.mp4|out.png [--fps 15]``

PNG: a grid of evenly spaced frames; GIF: an animation (pillow); MP4: a video (needs ffmpeg).
The layout is inferred from the number of joints unless given (17 joints: 'coco'; pass
``--layout uav`` for UAV-Human). MASKS.npy is a Class×V×V Selector mask array (as
``tools/agent/build_masks.py`` writes): the critical joints of class C are its non-zero rows.
The title names the sample's class: from ``--label-map`` (a shipped name such as ``ntu60``,
or a file), else the pickle's own ``classes`` list, else ``--config``'s label map.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package first

import numpy as np  # noqa: E402

from skeletonagent.apis.inference import load_labelled_sample  # noqa: E402
from skeletonagent.datasets.config_view import class_names_for  # noqa: E402
from skeletonagent.engine.tool import tool_main  # noqa: E402
from skeletonagent.visualization import critical_joints_from_mask, draw_skeleton_sequence, sample_title  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Draw a skeleton sequence (PNG grid, GIF or MP4)')
    p.add_argument('ann_file', help='PYSKL annotation pickle (or a pickle of one sample)')
    which = p.add_mutually_exclusive_group()
    which.add_argument('--index', type=int, default=None)
    which.add_argument('--frame-dir', default=None)
    p.add_argument('--layout', default=None, help='layout name (default: inferred from V)')
    p.add_argument('--mask', default=None, help='Class×V×V mask .npy (needs --class)')
    p.add_argument('--class', dest='cls', type=int, default=None,
                   help='class whose critical joints to highlight')
    p.add_argument('--joints', default=None, help='critical joints, 0-based, comma separated')
    names = p.add_mutually_exclusive_group()
    names.add_argument('--label-map', default=None,
                       help="class names for the title: a shipped map ('ntu60', 'ntu120', "
                            "'k400', 'uav', ...) or a file of one name per line")
    names.add_argument('--config', default=None,
                       help="take the class names from this config's label map")
    p.add_argument('--out', required=True, help='out.png, out.gif or out.mp4')
    p.add_argument('--fps', type=float, default=15)
    p.add_argument('--stride', type=int, default=1, help='animate every n-th frame')
    p.add_argument('--panels', type=int, default=6, help='frames in a PNG grid')
    p.add_argument('--dim', type=int, choices=[2, 3], default=None,
                   help='force 2D or 3D drawing (default: guessed from the data)')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.mask is not None and args.cls is None:
            raise ValueError('--mask needs --class C')
        ann, file_classes = load_labelled_sample(args.ann_file, index=args.index,
                                                 frame_dir=args.frame_dir)
        class_names, _ = class_names_for(args.label_map, file_classes, args.config)
        critical = []
        if args.mask is not None:
            critical = critical_joints_from_mask(np.load(args.mask), args.cls)
        if args.joints:
            critical += [int(j) for j in args.joints.split(',') if j.strip()]
        title = sample_title(ann, class_names, critical_class=args.cls)
        out = draw_skeleton_sequence(ann['keypoint'], args.out, args.layout,
                                     keypoint_score=ann.get('keypoint_score'), critical=critical,
                                     fps=args.fps, num_panels=args.panels, dim=args.dim,
                                     title=title, stride=args.stride)
    except (ValueError, KeyError, FileNotFoundError, RuntimeError) as exc:
        sys.exit(f'error: {exc}')
    print(f'wrote {out} ({title})')


if __name__ == '__main__':
    tool_main(main)
