"""Recognise actions in skeleton sequences from scripts and notebooks.

::

    from skeletonagent.apis import init_recognizer, inference_recognizer
    model = init_recognizer('configs/demo/j.py', 'work_dirs/demo/j/latest.pth')
    for index, name, score in inference_recognizer(model, keypoints):   # M×T×V×C array
        print(f'{name}: {score:.3f}')

The keypoints go through the config's *test* pipeline (normalisation, features, test-time
clip sampling, formatting), exactly as :class:`~skeletonagent.datasets.PoseDataset` would
hand a test sample to it, and the recognizer averages its clip scores. Building the model
for inference never loads the text encoder: no text weights, no LLM, no API key.
"""
from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from mmengine.config import Config

from ..datasets.annotations import load_annotation_file
from ..datasets.config_view import config_class_names, config_datasets
from ..datasets.pipelines import Compose
from ..engine import load_config
from ..engine.checkpoint import load_model_weights
from ..engine.runner import build_model
from ..models.gcn import fuse_for_inference
from ..skeleton import LAYOUTS, get_layout

__all__ = ['init_recognizer', 'inference_recognizer', 'input_spec', 'InputSpec',
           'test_dataset_cfg', 'load_keypoint_input', 'load_annotation_sample',
           'load_labelled_sample', 'sample_label']

ConfigArg = Union[str, os.PathLike, Config]


# --------------------------------------------------------------------------- model building
def _config(config: ConfigArg) -> Config:
    if isinstance(config, Config):
        return copy.deepcopy(config)
    if isinstance(config, (str, os.PathLike)):
        return load_config(config)
    raise TypeError(f'config must be a path or an mmengine Config, got {type(config).__name__}')


def test_dataset_cfg(cfg: Config) -> dict:
    """The test (else val) dataset config of a PYSKL-schema or an mmengine-schema config:
    the innermost dataset that reads files (:func:`~skeletonagent.datasets.config_view.config_datasets`)."""
    for split in ('test', 'val'):
        found = config_datasets(cfg, split)
        if found:
            return dict(found[0].settings)
    raise ValueError('the config has no test data settings (data.test.pipeline or '
                     'test_dataloader.dataset.pipeline): inference runs the test pipeline')


def _test_pipeline_cfg(cfg: Config) -> list:
    pipeline = test_dataset_cfg(cfg).get('pipeline')
    if not pipeline:
        raise ValueError('the config\'s test dataset has no pipeline')
    return [dict(t) if isinstance(t, Mapping) else t for t in pipeline]


def init_recognizer(config: ConfigArg, checkpoint: str | os.PathLike | None = None,
                    device: str | torch.device = 'cpu', fuse: bool = True) -> torch.nn.Module:
    """Build the recognizer of ``config`` for inference, with ``checkpoint``'s weights.

    Args:
        config: a config path or an mmengine ``Config`` (PYSKL or mmengine schema).
        checkpoint: a checkpoint written by training (``{'state_dict': ..., 'meta': ...}``)
            or a bare state dict; loaded with ``weights_only=True``, refused when it was
            trained for another stream or dataset than ``config`` (as ``tools/test.py``
            does). ``None`` keeps the random initialisation (for tests and smoke runs).
        device: where the model runs ('cpu', 'cuda', 'cuda:0'...).
        fuse: fold the batch norms into the convolutions before them, once (the backbone's
            ``fuse()``): same outputs, faster; the folded model's state_dict lacks the BN
            entries, so pass False to save or train the model.

    Returns:
        the model in eval mode (fused unless ``fuse=False``) with ``model.cfg`` (the config),
        ``model.class_names`` (one name per class) and ``model.checkpoint_meta`` (the
        checkpoint's ``meta`` or ``{}``).

    Raises:
        FileNotFoundError: the config or checkpoint does not exist.
        CheckpointError (a ValueError): the checkpoint is unreadable, not a checkpoint, or
            does not fit the config (``CheckpointMismatchError``: another stream or dataset,
            other weights).
    """
    cfg = _config(config)
    model = build_model(cfg, for_training=False)
    meta: dict = {}
    if checkpoint is not None:
        ckpt = load_model_weights(model, checkpoint, cfg=cfg)   # the loader tools/test.py uses
        meta = dict(ckpt.get('meta') or {})
    model.cfg = cfg
    model.checkpoint_meta = meta
    num_classes = int(getattr(model, 'num_classes', 0) or cfg.model.cls_head.num_classes)
    found = config_class_names(cfg, num_classes, meta)
    model.class_names = list(found.names) if found else [f'class {i}' for i in range(num_classes)]
    model.to(torch.device(device))
    model.eval()
    if fuse:
        fuse_for_inference(model)
    return model


# --------------------------------------------------------------------------- input checking
class InputSpec:
    """What a model's test pipeline expects as raw keypoints.

    Attributes:
        num_joints: V of the input (the graph's V less the joints the pipeline derives).
        channels: C of ``keypoint`` when no ``keypoint_score`` is given.
        is_2d: 2D keypoints (x, y) + score; 3D keypoints otherwise.
        layout: the graph's layout name; ``input_layout``: the input's (they differ when
            ``Kinetics_Transform`` adds centre joints).
    """

    def __init__(self, num_joints: int, channels: int, is_2d: bool, layout: str,
                 input_layout: str) -> None:
        self.num_joints = num_joints
        self.channels = channels
        self.is_2d = is_2d
        self.layout = layout
        self.input_layout = input_layout

    @property
    def shape(self) -> str:
        """The expected shape, e.g. ``(M, T, 25, 3)``."""
        return f'(M, T, {self.num_joints}, {self.channels})'

    def describe(self) -> str:
        """A sentence naming the expected shape, for error messages."""
        if self.is_2d and self.channels == 3:
            what = ('C = 3 (x, y, score), or C = 2 (x, y) with keypoint_score of shape '
                    f'(M, T, {self.num_joints})')
        elif self.is_2d:
            what = f'C = {self.channels}'
        else:
            what = f'C = {self.channels} coordinates' + (' (x, y, z)' if self.channels == 3 else '')
        return (f'expected keypoints of shape {self.shape}: M persons, T frames, '
                f'{self.num_joints} joints of layout {self.input_layout!r}, {what}')

    def __repr__(self) -> str:
        return (f'InputSpec(shape={self.shape}, is_2d={self.is_2d}, layout={self.layout!r}, '
                f'input_layout={self.input_layout!r})')


def _backbone_layout(model) -> Any:
    graph = getattr(getattr(model, 'backbone', None), 'graph', None)
    layout = getattr(graph, 'layout', None)
    if layout is None:
        graph_cfg = model.cfg.model.backbone.get('graph_cfg') or {}
        layout = get_layout(graph_cfg.get('layout', 'nturgb+d'))
    return layout


def input_spec(model) -> InputSpec:
    """The raw input :class:`InputSpec` of ``model`` (built by :func:`init_recognizer`)."""
    layout = _backbone_layout(model)
    pipeline = _test_pipeline_cfg(model.cfg)
    types = {t.get('type') for t in pipeline if isinstance(t, Mapping)}
    num_joints = layout.num_joints
    input_layout = layout.name
    if 'Kinetics_Transform' in types and layout.derived_joints:
        num_joints -= len(layout.derived_joints)
        for name, other in _layouts_with(num_joints):
            if set(other.joint_names) <= set(layout.joint_names):
                input_layout = name
                break
    # channels per feature: the backbone's in_channels split over GenSkeFeat's features
    in_channels = int(getattr(model.backbone, 'in_channels', 3))
    num_feats = 1
    for t in pipeline:
        if isinstance(t, Mapping) and t.get('type') == 'GenSkeFeat':
            num_feats = max(1, len(t.get('feats', ['j'])))
    channels = in_channels // num_feats if in_channels % num_feats == 0 else in_channels
    is_2d = ('PreNormalize2D' in types
             or ('PreNormalize3D' not in types and layout.name != 'nturgb+d'
                 and get_layout(layout.name).score_channel_pairs))
    return InputSpec(num_joints, channels, is_2d, layout.name, input_layout)


def _layouts_with(num_joints: int):
    return [(n, lay) for n, lay in LAYOUTS.items() if lay.num_joints == num_joints]


def _as_array(value: Any, name: str) -> np.ndarray:
    if torch.is_tensor(value):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ValueError(f'{name} must be a numeric array (ragged nested lists?): {exc}') from None
    return array


def _prepare(spec: InputSpec, keypoints: Any, keypoint_score: Any) -> tuple[dict, np.ndarray]:
    """Validated ``(annotation extras, keypoint)``; raises ValueError naming the shape."""
    extras: dict = {}
    if isinstance(keypoints, Mapping):
        ann = keypoints
        if 'keypoint' not in ann:
            raise ValueError(f'the annotation dict has no "keypoint" (keys: '
                             f'{", ".join(map(str, ann))}); {spec.describe()}')
        if keypoint_score is None:
            keypoint_score = ann.get('keypoint_score')
        for key in ('img_shape', 'original_shape', 'frame_dir'):
            if ann.get(key) is not None:
                extras[key] = ann[key]
        keypoints = ann['keypoint']
    kp = _as_array(keypoints, 'keypoints')
    if kp.ndim == 3:        # T×V×C: one person
        kp = kp[None]
    if kp.ndim != 4:
        raise ValueError(f'keypoints have shape {kp.shape} ({kp.ndim}-d); {spec.describe()}')
    m, t, v, c = kp.shape
    if m < 1 or t < 1:
        raise ValueError(f'keypoints have shape {kp.shape}: no person or no frame; '
                         f'{spec.describe()}')
    if v != spec.num_joints:
        hint = ''
        if v == c or c == spec.num_joints:
            hint = ' (is the array transposed? the joints go on axis 2, channels last)'
        others = [n for n, _ in _layouts_with(v)]
        if others and not hint:
            hint = f' (V={v} is the layout of {", ".join(map(repr, others))})'
        raise ValueError(f'keypoints have shape {kp.shape} with V={v} joints{hint}; '
                         f'{spec.describe()}')
    score = None
    if keypoint_score is not None:
        score = _as_array(keypoint_score, 'keypoint_score')
        if score.ndim == 2 and kp.shape[0] == 1:
            score = score[None]
        if score.shape != kp.shape[:3]:
            raise ValueError(f'keypoint_score has shape {score.shape}, expected (M, T, V) = '
                             f'{kp.shape[:3]} to match keypoints {kp.shape}')
    if score is not None:
        if c + 1 != spec.channels:
            raise ValueError(f'keypoints have shape {kp.shape} with C={c} and a keypoint_score: '
                             f'{spec.describe()}')
    elif c != spec.channels:
        if spec.is_2d and c + 1 == spec.channels:
            score = np.ones(kp.shape[:3], dtype=np.float32)   # no detector scores: trust all
        else:
            raise ValueError(f'keypoints have shape {kp.shape} with C={c} channels; '
                             f'{spec.describe()}')
    if not np.isfinite(kp).all() or (score is not None and not np.isfinite(score).all()):
        raise ValueError('keypoints hold NaN or infinite values')
    if score is not None:
        extras['keypoint_score'] = score
    return extras, kp


def _pipeline(model):
    pipeline = getattr(model, '_inference_pipeline', None)
    if pipeline is None:
        pipeline = Compose(_test_pipeline_cfg(model.cfg))
        model._inference_pipeline = pipeline
    return pipeline


def _results(kp: np.ndarray, extras: dict, test_dataset: dict) -> dict:
    """The dict PoseDataset hands its pipeline for a test sample."""
    results = dict(frame_dir='inference', label=-1, total_frames=int(kp.shape[1]), keypoint=kp)
    results.update(extras)
    results['start_index'] = test_dataset.get('start_index', 0)
    results['modality'] = test_dataset.get('modality', 'Pose')
    results['test_mode'] = True
    return results


@torch.no_grad()
def inference_recognizer(model, keypoints: Any, keypoint_score: Any = None,
                         top_k: int = 5) -> list[tuple[int, str, float]]:
    """Top-``top_k`` classes for one skeleton sequence.

    Args:
        model: a recognizer from :func:`init_recognizer` (it needs ``model.cfg``).
        keypoints: an M×T×V×C array (numpy, torch or nested lists; T×V×C is taken as one
            person), or a PYSKL annotation dict (``keypoint``, optional ``keypoint_score``,
            ``img_shape``).
        keypoint_score: M×T×V detector scores for 2D keypoints (a 2D model given none
            trusts every joint: scores of 1).
        top_k: how many classes to return (at most the number of classes).

    Returns:
        ``[(class_index, class_name, score), ...]``, best first; scores are the clip-averaged
        scores of the config's ``test_cfg.average_clips`` (probabilities by default).

    Raises:
        ValueError: the input does not have the layout or shape the model expects; the
            message names the expected shape, e.g. ``(M, T, 25, 3)``.
    """
    if not hasattr(model, 'cfg'):
        raise ValueError('model has no cfg: build it with skeletonagent.apis.init_recognizer')
    spec = input_spec(model)
    extras, kp = _prepare(spec, keypoints, keypoint_score)
    results = _results(kp, extras, test_dataset_cfg(model.cfg))
    data = _pipeline(model)(results)
    keypoint = data['keypoint']
    if not torch.is_tensor(keypoint):
        keypoint = torch.as_tensor(np.asarray(keypoint))
    device = next(model.parameters()).device
    keypoint = keypoint[None].to(device=device, dtype=torch.float32)   # N=1 × nc × M×T×V×C
    model.eval()
    out = model(keypoint, mode='predict')
    scores = out[0]['pred_score'] if isinstance(out, Sequence) else out[0]
    scores = torch.as_tensor(scores).float().reshape(-1)
    names = getattr(model, 'class_names', None) or [f'class {i}' for i in range(len(scores))]
    k = max(1, min(int(top_k), scores.numel()))
    values, indices = scores.topk(k)
    return [(int(i), str(names[int(i)]), float(s)) for s, i in zip(values, indices)]


def load_keypoint_input(path: str | os.PathLike, index: int | None = None,
                        frame_dir: str | None = None) -> Any:
    """Read an inference input file: an annotation dict or a keypoint array.

    * ``.pkl``: a PYSKL annotation file (pick the sample with ``index`` or ``frame_dir``;
      a file of one sample needs neither) or a pickle of one annotation dict;
    * ``.npy``: an M×T×V×C array;
    * ``.json``: ``{"keypoint": [...], "keypoint_score": [...] (optional), "label": N
      (optional)}`` or a bare nested list of keypoints.

    Raises:
        ValueError: an unknown suffix, an ambiguous or missing sample, an unreadable file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'input not found: {path}')
    suffix = path.suffix.lower()
    if suffix in ('.pkl', '.pickle'):
        return load_annotation_sample(path, index, frame_dir)
    if index is not None or frame_dir is not None:
        raise ValueError(f'--index / --frame-dir only apply to .pkl inputs, not {path.name}')
    if suffix == '.npy':
        return np.load(path, allow_pickle=False)
    if suffix == '.json':
        try:
            data = json.loads(path.read_text(encoding='utf-8'))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f'{path}: not valid JSON: {exc}') from None
        if isinstance(data, Mapping):
            if 'keypoint' not in data:
                raise ValueError(f'{path}: the JSON object has no "keypoint" '
                                 f'(keys: {", ".join(map(str, data))})')
            return {k: data[k] for k in ('keypoint', 'keypoint_score', 'img_shape', 'label')
                    if data.get(k) is not None}
        return data
    raise ValueError(f'{path}: unknown input kind {suffix!r}; use a .pkl (PYSKL annotations), '
                     'a .npy (M×T×V×C array) or a .json of keypoints')


def sample_label(sample: Any) -> int | None:
    """The true label of an input :func:`load_keypoint_input` read (an annotation dict with a
    ``label`` >= 0), or None (a bare array, an unlabelled sample)."""
    if not isinstance(sample, Mapping) or sample.get('label') is None:
        return None
    try:
        label = int(np.asarray(sample['label']).reshape(-1)[0])
    except (TypeError, ValueError, IndexError):
        return None
    return label if label >= 0 else None


def load_annotation_sample(path: str | os.PathLike, index: int | None = None,
                           frame_dir: str | None = None) -> dict:
    """One annotation dict from a PYSKL pickle (by ``index`` or ``frame_dir``; a file of
    one sample needs neither) or from a pickle of one annotation dict.

    Raises:
        DataError / ValueError: unreadable file, no such sample, several samples and no choice.
    """
    return load_labelled_sample(path, index, frame_dir)[0]


def load_labelled_sample(path: str | os.PathLike, index: int | None = None,
                         frame_dir: str | None = None) -> tuple[dict, list[str] | None]:
    """:func:`load_annotation_sample` and the file's class names (a PYSKL pickle's top-level
    ``classes`` list, as the demo data has), or None."""
    path = Path(path)
    data = load_annotation_file(path)
    classes = None
    if isinstance(data, Mapping) and isinstance(data.get('classes'), Sequence) \
            and not isinstance(data.get('classes'), str):
        classes = [str(c) for c in data['classes']]
    return _pick_sample(path, data, index, frame_dir), classes


def _pick_sample(path: Path, data: Any, index: int | None, frame_dir: str | None) -> dict:
    if isinstance(data, Mapping) and 'keypoint' in data:     # one annotation dict
        return dict(data)
    if isinstance(data, Mapping):
        annotations = data.get('annotations')
    else:
        annotations = data
    if not isinstance(annotations, Sequence) or not annotations:
        raise ValueError(f'{path}: neither an annotation dict nor a PYSKL file with '
                         'annotations')
    if frame_dir is not None:
        for ann in annotations:
            if isinstance(ann, Mapping) and frame_dir in (ann.get('frame_dir'),
                                                          ann.get('filename')):
                return dict(ann)
        raise ValueError(f'{path}: no sample with frame_dir {frame_dir!r}')
    if index is None:
        if len(annotations) == 1:
            return dict(annotations[0])
        raise ValueError(f'{path} holds {len(annotations)} samples: choose one with --index I '
                         'or --frame-dir NAME')
    if not -len(annotations) <= index < len(annotations):
        raise ValueError(f'{path}: --index {index} is out of range '
                         f'(0..{len(annotations) - 1})')
    return dict(annotations[index])
