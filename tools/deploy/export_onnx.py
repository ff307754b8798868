#!/usr/bin/env python
"""Export a trained recognizer to ONNX and check it against torch.

    python tools/deploy/export_onnx.py CONFIG CHECKPOINT --out model.onnx [--ann ANN.pkl]

The graph takes the test pipeline's output (keypoint N × clips × M × T × V × C; batch, clips,
persons and frames dynamic) and returns the clip-averaged class scores (N × Class). It is
checked with onnxruntime against torch (fused and unfused) on the first test samples of the
config's annotation file (or --ann): the largest absolute difference is printed and must be
at most --tolerance (1e-4). Run it with: python tools/infer.py CONFIG model.onnx INPUT
--backend onnxruntime. Needs the video extra (onnx, onnxruntime): pip install -e ".[video]".
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's package first

from skeletonagent.engine.tool import tool_main  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('--out', required=True, help='the .onnx file to write')
    p.add_argument('--ann', help='annotation file whose first samples check the export '
                                 '(default: the config\'s test ann_file)')
    p.add_argument('--tolerance', type=float, default=1e-4)
    p.add_argument('--opset', type=int, default=17)
    p.add_argument('--debug', action='store_true', help='show the traceback of an error')
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from skeletonagent.apis.onnx_export import export_onnx
    from skeletonagent.pose import require
    require('onnx'), require('onnxruntime')
    result = export_onnx(args.config, args.checkpoint, args.out, ann_file=args.ann,
                         tolerance=args.tolerance, opset=args.opset)
    print(f'{result.path}: checked on test inputs {result.inputs_shape}; max abs difference of the '
          f'scores, onnxruntime vs torch: {result.max_abs_diff:.3g} (fused), '
          f'{result.max_abs_diff_unfused:.3g} (unfused); tolerance {args.tolerance:g}')
    print(f'the graph: {result.metadata["graph"]}')
    return 0


if __name__ == '__main__':
    tool_main(main)
