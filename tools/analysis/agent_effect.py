#!/usr/bin/env python
"""The effect of each agent round of a finished run: ``python tools/analysis/agent_effect.py
WORK_DIR [--baseline OTHER_WORK_DIR] [--json OUT]``.

For each round installed during training: the pairs it asked the LLM about, their
validation confusions before the install and at the last validation before the next round,
beside every other pair (from ``WORK_DIR/agent/rounds/round_NNN.json`` and the kept
validation matrices ``WORK_DIR/val_confusion/``; train with ``--validate``). With
``--baseline OTHER_WORK_DIR`` (a run without the agent, say) the same pairs' confusions in
that run at the same validations, beside them.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's package first

from skeletonagent.engine.errors import run_tool  # noqa: E402
from skeletonagent.engine.tool import tool_main  # noqa: E402
from skeletonagent.evaluation.agent_effect import (  # noqa: E402
    baseline_table,
    effect_table,
    work_dir_effects,
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='The effect of each agent round of a run')
    p.add_argument('work_dir', help='the training work dir')
    p.add_argument('--baseline', default=None, metavar='WORK_DIR',
                   help="another run's work dir (e.g. the same config without the agent, "
                        'trained with --validate): the same pairs there, at the same '
                        'validations')
    p.add_argument('--json', default=None, help='also write the figures of every round here')
    p.add_argument('--debug', action='store_true', help='show the traceback of an error')
    return p.parse_args(argv)


def _main(argv):
    args = parse_args(argv)
    work_dir = Path(args.work_dir)
    if not work_dir.is_dir():
        raise FileNotFoundError(f'no work dir {work_dir}')
    effects = work_dir_effects(work_dir)
    if not effects:
        raise ValueError(f'{work_dir}: no installed agent round (agent/rounds/round_NNN.json '
                         'with installed_after_epoch); was the agent on, with rounds?')
    print(effect_table(effects))
    print()
    for effect in effects:
        print(effect.line())
    if args.baseline:
        from skeletonagent.evaluation.val_confusion import read_val_confusions
        baseline = read_val_confusions(args.baseline)
        if not baseline:
            raise ValueError(f'{args.baseline}: no kept validation confusion (val_confusion/'
                             'epoch_NNN.npy); was it trained with --validate?')
        print()
        print(f"each round's asked pairs, confusions in this run and in {args.baseline}:")
        print(baseline_table(effects, baseline))
    if args.json:
        Path(args.json).write_text(json.dumps([e.as_dict() for e in effects], indent=1,
                                              ensure_ascii=False) + '\n', encoding='utf-8')
        print(f'figures: {args.json}')
    return 0


def main(argv=None):
    return run_tool(_main, argv)


if __name__ == '__main__':
    tool_main(main)
