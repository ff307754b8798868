#!/usr/bin/env python
"""Compare two settings on the same test samples, with statistics:

    python tools/analysis/compare.py --ann ANN --split SPLIT \\
        --setting agent_on  work_dirs/on_s0/last_pred.pkl  work_dirs/on_s1/last_pred.pkl \\
        --setting agent_off work_dirs/off_s0/last_pred.pkl work_dirs/off_s1/last_pred.pkl \\
        [--top 5] [--json OUT.json] [--plot OUT.png]

Per setting top-1, top-5 and mean class accuracy (mean ± std over its runs); the difference
(second − first) with McNemar's exact test (one run a side) or a paired t-test over seeds;
the classes and confused pairs that changed most (``skeletonagent/evaluation/compare.py``).
Files scoring another split, another number of classes or another sample order are refused.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's package first

from skeletonagent.engine.errors import run_tool  # noqa: E402
from skeletonagent.engine.tool import tool_main  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Compare two settings with statistics')
    p.add_argument('--ann', required=True, help='the annotation file the predictions score')
    p.add_argument('--split', default=None, help='its split (e.g. test, xsub_val)')
    p.add_argument('--setting', nargs='+', action='append', required=True,
                   metavar=('NAME', 'PRED'),
                   help='a setting: its name, then its prediction files (one per seed); '
                        'give it twice')
    p.add_argument('--top', type=int, default=5, help='classes and pairs listed')
    p.add_argument('--json', default=None, help='write every figure here')
    p.add_argument('--plot', default=None, help='write the plot here (PNG)')
    p.add_argument('--debug', action='store_true', help='show the traceback of an error')
    return p.parse_args(argv)


def _main(argv):
    from skeletonagent.evaluation.compare import (
        CompareError,
        compare_settings,
        format_comparison,
        load_setting,
        plot_comparison,
        split_info,
    )
    args = parse_args(argv)
    if len(args.setting) != 2 or any(len(s) < 2 for s in args.setting):
        raise CompareError('give --setting NAME PRED [PRED ...] exactly twice, each with at '
                           'least one prediction file')
    if not Path(args.ann).is_file():
        raise FileNotFoundError(f'no annotation file {args.ann}')
    info = split_info(args.ann, args.split)
    a, b = (load_setting(s[0], s[1:], info) for s in args.setting)
    result = compare_settings(a, b, info, top=args.top)
    print(format_comparison(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, ensure_ascii=False) + '\n',
                                   encoding='utf-8')
        print(f'figures: {args.json}')
    if args.plot:
        print(f'plot: {plot_comparison(result, args.plot)}')
    return 0


def main(argv=None):
    return run_tool(_main, argv)


if __name__ == '__main__':
    tool_main(main)
