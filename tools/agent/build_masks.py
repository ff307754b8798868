"""Build the Class x V x V critical-joint masks from a folder of dialogue transcripts.

    python tools/agent/build_masks.py --transcripts DIR --label-map ntu60 \\
        --layout nturgb+d --modality j --out work_dirs/ntu60_j_critical_joints.npy

Prints the critical joints (1-based, as the transcripts write them) of every class and the
numbers that named no joint of the layout.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's package first

import numpy as np  # noqa: E402

from skeletonagent.agent import build_masks, critical_joints_from_transcript, read_transcript_dir  # noqa: E402
from skeletonagent.datasets.label_map import load_label_map  # noqa: E402
from skeletonagent.engine.tool import tool_main  # noqa: E402
from skeletonagent.skeleton import get_layout  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--transcripts', required=True, help='folder of NNN_<class>.txt files')
    parser.add_argument('--label-map', required=True, help='label map name or file')
    parser.add_argument('--layout', required=True, help="skeleton layout, e.g. 'nturgb+d'")
    parser.add_argument('--modality', required=True, choices=('j', 'b', 'k'))
    parser.add_argument('--out', required=True, help='output .npy file')
    parser.add_argument('--row-index', default='pair', choices=('pair', 'joint'),
                        help="bone/k-bone rows: 'pair' (official) or 'joint' (bone[v1])")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    layout = get_layout(args.layout)
    class_names = load_label_map(args.label_map)
    transcripts = read_transcript_dir(args.transcripts, class_names)
    selections = [critical_joints_from_transcript(turns, layout) for turns in transcripts]
    masks = build_masks([s.joints for s in selections], layout, args.modality, args.row_index)

    for i, (name, selection) in enumerate(zip(class_names, selections)):
        joints = ', '.join(str(j + 1) for j in selection.joints) or '(none)'
        dropped = f'  dropped: {selection.dropped}' if selection.dropped else ''
        print(f'{i + 1:03d} {name}: joints {joints}{dropped}')
    num_dropped = sum(len(s.dropped) for s in selections)
    num_empty = sum(not s.joints for s in selections)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, masks)
    print(f'saved {out} {masks.shape} {masks.dtype}; {num_dropped} numbers dropped, '
          f'{num_empty} classes without critical joints')
    return 0


if __name__ == '__main__':
    tool_main(main)
