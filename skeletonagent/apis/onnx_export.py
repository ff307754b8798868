"""ONNX export of a trained recognizer, its parity check, and inference through onnxruntime.

The exported graph is the recognizer's test path: ``keypoint`` (N × clips × M × T × V × C,
the test pipeline's output; batch, clip, person and frame axes dynamic) → the backbone's main
path (with its batch norms folded into the convolutions, ``fuse()``) → the head's classifier
→ the clip average of ``test_cfg.average_clips`` → ``scores`` (N × Class). What the agent
gave the model is in the graph as the weights it trained; the agent's own state is not read
at test time (the joint masks drive the local-constraint branch and the text embeddings the
alignment branch, both training losses, skipped at test time as in the official code), so
those branches are left out of the graph. The state is recorded in the model's metadata
(``metadata_props``): class names, layout and input shape, the class descriptions, the
masks' digest and version, so a deployment knows which agent state trained it.

:func:`export_onnx` writes the file and checks it against torch on the test pipeline's
output (the largest absolute difference of the scores, at most ``tolerance``);
:class:`OnnxRecognizer` and :func:`inference_onnx` run it with onnxruntime, through the same
test pipeline, without building the torch model.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..agent.state import masks_digest
from ..engine.checkpoint import load_checkpoint_file
from ..errors import SkeletonAgentError
from ..pose.extra import require
from .inference import (
    InputSpec,
    _config,
    _pipeline,
    _prepare,
    _results,
    init_recognizer,
    input_spec,
    load_annotation_sample,
    test_dataset_cfg,
)

__all__ = ['ExportResult', 'export_onnx', 'trace_test_path', 'OnnxRecognizer', 'inference_onnx', 'test_inputs',
           'ParityError']

DEFAULT_OPSET = 17


class ParityError(SkeletonAgentError, RuntimeError):
    """onnxruntime and torch disagree by more than the tolerance."""


class _TestPath(nn.Module):
    """The recognizer's test scoring as one traceable function of the keypoint tensor."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.average = model.test_cfg.get('average_clips', 'prob')
        backbone = model.backbone
        # A backbone whose input batch norm spans persons (PYSKL's data_bn 'MVC') takes exactly
        # num_person persons: the graph pads (or cuts) the persons axis to it, as the test
        # pipeline's FormatGCNInput does, so that axis stays dynamic for the caller.
        self.num_person = (int(getattr(backbone, 'num_person', 0) or 0)
                           if getattr(backbone, 'data_bn_type', None) == 'MVC' else 0)

    def forward(self, keypoint: torch.Tensor) -> torch.Tensor:
        bs, nc = keypoint.shape[0], keypoint.shape[1]
        if self.num_person:
            pad = torch.zeros_like(keypoint[:, :, :1]).expand(-1, -1, self.num_person, -1, -1, -1)
            keypoint = torch.cat([keypoint, pad], dim=2)[:, :, :self.num_person]
        clips = keypoint.flatten(0, 1)
        score = self.model.cls_head(self.model.extract_feat(clips))
        score = score.reshape(bs, nc, score.shape[-1])
        if self.average == 'prob':
            return torch.softmax(score, dim=2).mean(dim=1)
        if self.average == 'score':
            return score.mean(dim=1)
        return score


@dataclass
class ExportResult:
    path: Path
    max_abs_diff: float          # onnxruntime against torch (fused, eager) on the test inputs
    max_abs_diff_unfused: float  # against the model before its batch norms were folded
    inputs_shape: tuple[int, ...]
    metadata: dict[str, str]


def test_inputs(model: nn.Module, ann_file: str | os.PathLike | None = None, count: int = 2) -> np.ndarray:
    """The test pipeline's output for the first ``count`` samples of ``ann_file`` (default:
    the config's test annotation file), stacked: N × clips × M × T × V × C float32. Samples
    with fewer persons are padded with zeros to the largest M, as the pipeline pads to
    ``num_person``."""
    dataset = test_dataset_cfg(model.cfg)
    ann_file = ann_file or dataset.get('ann_file')
    if not ann_file or not Path(ann_file).is_file():
        raise FileNotFoundError(f'the parity check needs test samples: no annotation file {ann_file} '
                                '(give one with --ann)')
    out = []
    for index in range(count):
        try:
            sample = load_annotation_sample(ann_file, index=index)
        except ValueError:
            break
        extras = {k: sample[k] for k in ('keypoint_score', 'img_shape', 'original_shape') if k in sample}
        data = _pipeline(model)(_results(np.asarray(sample['keypoint'], np.float32), extras, dataset))
        out.append(np.asarray(data['keypoint'], np.float32))
    if not out:
        raise ValueError(f'{ann_file}: no sample to check the export on')
    return np.stack(out)


def _metadata(model: nn.Module, state: Any) -> dict[str, str]:
    spec = input_spec(model)
    meta = dict(class_names=json.dumps(list(model.class_names)), layout=spec.layout,
                input_layout=spec.input_layout, num_joints=str(spec.num_joints),
                channels=str(spec.channels), is_2d=str(spec.is_2d).lower(),
                average_clips=str(model.test_cfg.get('average_clips', 'prob')),
                graph='backbone main path (batch norms folded) + classifier + clip average; '
                      'agent masks and text embeddings are not read at test time')
    if isinstance(state, dict) and state:
        meta['agent_descriptions'] = json.dumps(list(state.get('descriptions') or []))
        meta['agent_version'] = str(state.get('version', ''))
    examplar = getattr(getattr(model, 'backbone', None), 'examplar', None)
    if examplar is not None:
        meta['agent_masks_sha256'] = masks_digest(examplar.detach().cpu().numpy())
    return meta


def trace_test_path(model: nn.Module, path: str | os.PathLike, example: torch.Tensor,
                    opset: int = DEFAULT_OPSET) -> None:
    """Write the test path of ``model`` (as it is: fuse it first for the folded graph) to
    ``path`` as ONNX, traced on ``example`` (1 × clips × M × T × V × C), with dynamic batch,
    clip, person and frame axes; no metadata and no check (:func:`export_onnx` adds both)."""
    with torch.no_grad(), warnings.catch_warnings():
        # shape checks (V, channels) are constants of the graph: the tracer's warning about
        # them says nothing about the dynamic axes, which the checks run at other sizes
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        warnings.simplefilter('ignore', DeprecationWarning)
        torch.onnx.export(_TestPath(model).eval(), (example,), os.fspath(path), dynamo=False,
                          opset_version=opset, input_names=['keypoint'], output_names=['scores'],
                          dynamic_axes={'keypoint': {0: 'batch', 1: 'clips', 2: 'persons', 3: 'frames'},
                                        'scores': {0: 'batch'}})


def export_onnx(config: Any, checkpoint: str | os.PathLike, out: str | os.PathLike, *,
                ann_file: str | os.PathLike | None = None, tolerance: float = 1e-4,
                opset: int = DEFAULT_OPSET) -> ExportResult:
    """Export ``config`` + ``checkpoint`` to ``out`` and check it (see the module docstring).

    Raises:
        ParityError: onnxruntime's scores differ from torch's by more than ``tolerance``
            (the file is kept, for a look); VideoExtraMissing: no onnx / onnxruntime.
    """
    onnx = require('onnx')
    ort = require('onnxruntime')
    plain = init_recognizer(config, checkpoint, fuse=False)
    model = init_recognizer(config, checkpoint, fuse=True)
    inputs = test_inputs(model, ann_file)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + '.part')
    trace_test_path(model, tmp, torch.from_numpy(inputs[:1]), opset=opset)
    proto = onnx.load(os.fspath(tmp))
    meta = _metadata(model, load_checkpoint_file(checkpoint).get('agent_state'))
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    onnx.save(proto, os.fspath(tmp))
    os.replace(tmp, out)
    session = ort.InferenceSession(os.fspath(out), providers=['CPUExecutionProvider'])
    got = session.run(['scores'], {'keypoint': inputs})[0]
    with torch.no_grad():
        fused = _TestPath(model)(torch.from_numpy(inputs)).numpy()
        unfused = _TestPath(plain.eval())(torch.from_numpy(inputs)).numpy()
    diff, diff_plain = float(np.abs(got - fused).max()), float(np.abs(got - unfused).max())
    result = ExportResult(out, diff, diff_plain, tuple(inputs.shape), meta)
    if max(diff, diff_plain) > tolerance:
        raise ParityError(f'{out}: onnxruntime differs from torch by {max(diff, diff_plain):.3g} '
                          f'(tolerance {tolerance:g}) on inputs {tuple(inputs.shape)}')
    return result


class OnnxRecognizer:
    """An exported recognizer run by onnxruntime, with the config's test pipeline.

    Attributes: ``cfg`` (the config), ``class_names``, ``spec`` (the input it expects, from the
    file's metadata), ``session``.
    """

    def __init__(self, path: str | os.PathLike, config: Any, threads: int | None = None) -> None:
        ort = require('onnxruntime')
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f'ONNX model not found: {path}')
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(os.fspath(path), options, providers=['CPUExecutionProvider'])
        except Exception as exc:  # noqa: BLE001 - onnxruntime's own errors, said in one line
            raise ValueError(f'{path}: not a model onnxruntime can load ({type(exc).__name__}: '
                             f'{str(exc).splitlines()[0]})') from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if 'num_joints' not in meta:
            raise ValueError(f'{path}: no SkeletonAgent metadata; export it with tools/deploy/export_onnx.py')
        self.cfg = _config(config)
        self.class_names = json.loads(meta['class_names'])
        self.metadata = dict(meta)
        self.spec = InputSpec(int(meta['num_joints']), int(meta['channels']), meta['is_2d'] == 'true',
                              meta['layout'], meta['input_layout'])

    def scores(self, keypoint: np.ndarray) -> np.ndarray:
        """N × clips × M × T × V × C → N × Class."""
        return self.session.run(['scores'], {'keypoint': np.ascontiguousarray(keypoint, np.float32)})[0]


def inference_onnx(model: OnnxRecognizer, keypoints: Any, keypoint_score: Any = None,
                   top_k: int = 5) -> list[tuple[int, str, float]]:
    """:func:`~skeletonagent.apis.inference_recognizer` for an :class:`OnnxRecognizer`."""
    extras, kp = _prepare(model.spec, keypoints, keypoint_score)
    data = _pipeline(model)(_results(kp, extras, test_dataset_cfg(model.cfg)))
    keypoint = data['keypoint']
    keypoint = keypoint.numpy() if torch.is_tensor(keypoint) else np.asarray(keypoint)
    scores = model.scores(keypoint[None])[0]
    order = np.argsort(-scores)[:max(1, min(int(top_k), len(scores)))]
    return [(int(i), str(model.class_names[i]), float(scores[i])) for i in order]
