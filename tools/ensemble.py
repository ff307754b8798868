#!/usr/bin/env python
"""Fuse per-stream predictions and report top-1 / top-5 / mean class accuracy.

Example (NTU60 X-Sub, the paper's 2s / 4s / 6s fusions and the given weights)::

    python tools/ensemble.py --ann data/nturgbd/ntu60_3danno.pkl --split xsub_val \\
        --preds work_dirs/ntu60_xsub/{j,b,k,jm,bm,km}/best_pred.pkl --weights 2 2 2 1 1 1

See ``skeletonagent/evaluation/fusion.py`` (``--out``, ``--search``, ``--names``).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package first

from skeletonagent.engine.tool import tool_main  # noqa: E402
from skeletonagent.evaluation.fusion import main  # noqa: E402

if __name__ == '__main__':
    tool_main(main)
