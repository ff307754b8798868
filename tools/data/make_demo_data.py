#!/usr/bin/env python
"""Write the synthetic demo dataset (PYSKL pickle, NTU 25-joint 3D skeletons).

    python tools/data/make_demo_data.py --out data/demo/demo_3danno.pkl
    python tools/data/make_demo_data.py --label-map skeletonagent/data/label_map/demo.txt
    python tools/data/make_demo_data.py --variant hard --out data/demo/demo_hard_3danno.pkl
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's package first

from skeletonagent.datasets.synthetic import (  # noqa: E402
    DEMO_VARIANTS,
    demo_classes,
    ensure_demo_data,
)
from skeletonagent.engine.tool import tool_main  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='data/demo/demo_3danno.pkl', help='pickle to write')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--num-train-per-class', type=int, default=40)
    parser.add_argument('--num-val-per-class', type=int, default=10)
    parser.add_argument('--num-test-per-class', type=int, default=10)
    parser.add_argument('--variant', default='standard', choices=sorted(DEMO_VARIANTS),
                        help="the classes: 'standard' (12 actions) or 'hard' (pairs that "
                             'differ in a side or a few joints)')
    parser.add_argument('--force', action='store_true', help='regenerate an existing file')
    parser.add_argument('--label-map', help='also write the class names here, one per line')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    path = ensure_demo_data(args.out, seed=args.seed, overwrite=args.force,
                            num_train_per_class=args.num_train_per_class,
                            num_val_per_class=args.num_val_per_class,
                            num_test_per_class=args.num_test_per_class, variant=args.variant)
    print(f'demo data: {path}')
    if args.label_map:
        Path(args.label_map).write_text('\n'.join(demo_classes(args.variant)) + '\n',
                                        encoding='utf-8')
        print(f'label map: {args.label_map}')


if __name__ == '__main__':
    tool_main(main)
