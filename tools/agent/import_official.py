#!/usr/bin/env python
"""Import the official GPT-4o dialogues, critical-joint masks and prompts from a clone of the
official SkeletonAgent repository into the folder the paper configs read.

    git clone https://github.com/firework8/SkeletonAgent /path/to/SkeletonAgent
    python tools/agent/import_official.py --repo /path/to/SkeletonAgent [--out data/agent] \\
        [--datasets ntu60 ntu120 k400 finegym uav]

Writes ``<out>/<dataset>/{transcripts/,masks/{j,b,k}.npy,prompts.json,manifest.json}`` after
checking every class of our label maps against the dialogues, the joint numbers against the
layouts and the masks' shapes; prints what it wrote with digests. Nothing of a dataset is
written when a check fails (exit status 1, one line naming the file).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's package first

from skeletonagent.agent.official import DEFAULT_OUT, OFFICIAL_DATASETS, OfficialImportError, import_official  # noqa: E402
from skeletonagent.engine.tool import tool_main  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--repo', required=True, help='a clone of firework8/SkeletonAgent')
    parser.add_argument('--out', default=str(DEFAULT_OUT),
                        help=f'import folder (default {DEFAULT_OUT}, where the configs look)')
    parser.add_argument('--datasets', nargs='+', default=None, choices=list(OFFICIAL_DATASETS),
                        help='datasets to import (default: all five)')
    parser.add_argument('--no-prompts', action='store_true',
                        help='leave out the prompt templates (agent.prompts=official needs them)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        records = import_official(args.repo, args.out, datasets=args.datasets,
                                  with_prompts=not args.no_prompts, log=print)
    except (OfficialImportError, OSError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    print(f'imported {len(records)} dataset(s) into {args.out}; the paper configs now start '
          f'from them (agent.transcripts/masks/prompts=official)')
    return 0


if __name__ == '__main__':
    tool_main(main)
