#!/usr/bin/env python
"""Recognise the action in one skeleton sequence: prints the top-k classes with scores.

``python tools/infer.py CONFIG CKPT INPUT [--top-k 5] [--device cpu]`` where INPUT is

* a PYSKL annotation pickle (choose the sample with ``--index I`` or ``--frame-dir NAME``) or a
  pickle of one annotation dict;
* a ``.npy`` keypoint array M×T×V×C;
* a ``.json`` of keypoints: ``{"keypoint": [...], "keypoint_score": [...], "label": N}``
  (score and label optional) or a bare nested list M×T×V×C.

When the input has a true label (a pickle's sample, a JSON ``label``), a last line names it
and says where the model ranks it.

``--backend onnxruntime`` runs a model exported by ``tools/deploy/export_onnx.py`` (give the
``.onnx`` file as CKPT): the config's test pipeline prepares the input, onnxruntime scores it,
torch's model code is not used.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package first

from skeletonagent.apis import inference_recognizer, init_recognizer, load_keypoint_input  # noqa: E402
from skeletonagent.apis.inference import sample_label  # noqa: E402
from skeletonagent.engine.tool import tool_main  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Recognise the action in a skeleton sequence')
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('input', help='.pkl (PYSKL annotations or one sample), .npy or .json')
    which = p.add_mutually_exclusive_group()
    which.add_argument('--index', type=int, default=None, help='sample index in a .pkl file')
    which.add_argument('--frame-dir', default=None, help='sample frame_dir in a .pkl file')
    p.add_argument('--top-k', type=int, default=5)
    p.add_argument('--device', default='cpu')
    p.add_argument('--backend', default='torch', choices=['torch', 'onnxruntime'],
                   help='onnxruntime: CKPT is an .onnx file from tools/deploy/export_onnx.py')
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        sample = load_keypoint_input(args.input, index=args.index, frame_dir=args.frame_dir)
        if args.backend == 'onnxruntime':
            from skeletonagent.apis.onnx_export import OnnxRecognizer, inference_onnx
            model = OnnxRecognizer(args.checkpoint, args.config)
            ranked = inference_onnx(model, sample, top_k=len(model.class_names))
        else:
            model = init_recognizer(args.config, args.checkpoint, device=args.device)
            ranked = inference_recognizer(model, sample, top_k=len(model.class_names))
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        sys.exit(f'error: {exc}')
    results = ranked[:max(1, args.top_k)]
    width = max(len(name) for _, name, _ in results)
    for rank, (index, name, score) in enumerate(results, 1):
        print(f'{rank}. {name:<{width}}  {score:.4f}  (class {index})')
    label = sample_label(sample)
    if label is not None:
        rank = next((r for r, (index, _, _) in enumerate(ranked, 1) if index == label), None)
        name = model.class_names[label] if label < len(model.class_names) else '?'
        where = (f'ranked {rank} of {len(ranked)}' if rank is not None
                 else f'outside the model\'s {len(ranked)} classes')
        print(f'true label: {name} (class {label}), {where}')


if __name__ == '__main__':
    tool_main(main)
