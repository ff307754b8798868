#!/usr/bin/env python
"""Validate an annotation pickle against the PYSKL schema and print a summary.

    python tools/data/check.py data/nturgbd/ntu60_3danno.pkl [--split xsub_val]
        [--num-classes 60] [--layout nturgb+d | --config configs/ntu60_xsub/j.py]

Exit status 0 when every sample is well formed; 1 at the first malformed one, with the
file, the sample and the field named on stderr. --layout / --config also check that every
sample has the number of joints that layout (or the config's pipeline) needs.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's package first

from skeletonagent.datasets.prep.check import main  # noqa: E402
from skeletonagent.engine.tool import tool_main  # noqa: E402

if __name__ == '__main__':
    tool_main(main)
