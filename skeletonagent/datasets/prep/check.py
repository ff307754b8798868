"""Check an annotation pickle against the PYSKL schema and summarise it.

Every sample goes through :func:`skeletonagent.datasets.annotations.validate_annotation`
(the check :class:`~skeletonagent.datasets.PoseDataset` runs on load); on top of it the file
is checked as a whole: the top level, the split dict (every name a split lists must be an
annotation), duplicate sample names, class names. The first problem raises
:class:`~skeletonagent.datasets.errors.DataError` naming the file, the sample and the field.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from mmengine.config import Config

from ..annotations import expected_joints, load_annotation_file, validate_annotation
from ..errors import DataError
from ..pipelines import Compose

__all__ = ['check_annotation_file', 'config_joints', 'format_summary', 'main']


def _identifier(annotations: Sequence) -> str:
    first = annotations[0] if annotations else None
    if isinstance(first, Mapping) and 'frame_dir' not in first and 'filename' in first:
        return 'filename'
    return 'frame_dir'


def _stats(values: Sequence[float]) -> dict | None:
    if not len(values):
        return None
    arr = np.asarray(values, dtype=np.float64)
    return dict(min=float(arr.min()), mean=float(arr.mean()), max=float(arr.max()))


def config_joints(config: str | os.PathLike, section: str = 'train') -> tuple[int, str] | None:
    """The joints a training config's ``data.<section>`` dataset expects: its ``layout=``
    or its pipeline's first layout-dependent transform (as :class:`PoseDataset` decides).

    Raises:
        ValueError: naming the config when it cannot be read or has no such section.
    """
    try:
        cfg = Config.fromfile(os.fspath(config))
    except Exception as exc:  # noqa: BLE001 - any failure to read the config, said in one line
        raise ValueError(f'cannot read config {config}: {type(exc).__name__}: {exc}') from exc
    dataset = (cfg.get('data') or {}).get(section)
    while isinstance(dataset, Mapping) and 'dataset' in dataset and 'pipeline' not in dataset:
        dataset = dataset['dataset']             # RepeatDataset and other wrappers
    if not isinstance(dataset, Mapping):
        raise ValueError(f'config {config} has no data.{section} dataset')
    joints = expected_joints(dataset.get('layout'), Compose(list(dataset.get('pipeline') or [])))
    return None if joints is None else (joints[0], f'{joints[1]} of {config}')


def check_annotation_file(path: str | os.PathLike, split: str | None = None,
                          num_classes: int | None = None, multi_class: bool = False,
                          expect_joints: tuple[int, str] | None = None) -> dict:
    """Validate ``path`` (only the samples of ``split`` when given) and return a summary.

    ``num_classes`` bounds the labels (default: the number of the file's ``classes`` when it
    has them, else labels are only checked to be non-negative ints). ``expect_joints`` is
    ``(V, who expects it)`` (from :func:`config_joints` or
    :func:`~skeletonagent.datasets.annotations.expected_joints`): every keypoint array must
    have V joints.
    """
    file = os.fspath(path)
    data = load_annotation_file(file)
    splits: dict[str, list] = {}
    classes = None
    if isinstance(data, (list, tuple)):
        annotations = list(data)
    elif isinstance(data, Mapping):
        if 'annotations' not in data:
            raise DataError(f'top-level dict has no annotations (keys: '
                            f'{", ".join(map(str, data))})', file=file, field='annotations')
        annotations = data['annotations']
        if not isinstance(annotations, (list, tuple)):
            raise DataError(f'must be a list, got {type(annotations).__name__}', file=file,
                            field='annotations')
        raw_splits = data.get('split', {})
        if not isinstance(raw_splits, Mapping):
            raise DataError(f'must be a dict of name -> sample names, got '
                            f'{type(raw_splits).__name__}', file=file, field='split')
        for name, members in raw_splits.items():
            if not isinstance(members, (list, tuple)):
                raise DataError(f'split {name!r} must be a list of sample names, got '
                                f'{type(members).__name__}', file=file, field='split')
            splits[name] = list(members)
        classes = data.get('classes')
        if classes is not None and (not isinstance(classes, (list, tuple))
                                    or not all(isinstance(c, str) for c in classes)):
            raise DataError('must be a list of class names (strings)', file=file,
                            field='classes')
    else:
        raise DataError(f'top level must be a dict (split, annotations) or a list of '
                        f'annotations, got {type(data).__name__}', file=file)
    if not annotations:
        raise DataError('the file holds no annotations', file=file, field='annotations')
    if num_classes is None and classes is not None:
        num_classes = len(classes)

    identifier = _identifier(annotations)
    index_of: dict[Any, int] = {}
    for index, ann in enumerate(annotations):
        if not isinstance(ann, Mapping):
            raise DataError(f'annotation #{index} must be a dict, got {type(ann).__name__}',
                            file=file, field='annotations')
        name = ann.get(identifier)
        if name is None:
            raise DataError(f'annotation #{index} has no {identifier!r}', file=file,
                            frame_dir=f'#{index}', field=identifier)
        try:
            hash(name)
        except TypeError:
            raise DataError(f'must be a string, got {type(name).__name__}', file=file,
                            frame_dir=f'#{index}', field=identifier) from None
        if name in index_of:
            raise DataError(f'annotations #{index_of[name]} and #{index} share this name',
                            file=file, frame_dir=name, field=identifier)
        index_of[name] = index
    for split_name, members in splits.items():
        if not members:
            raise DataError(f'split {split_name!r} is empty', file=file, field='split')
        seen = set()
        for member in members:
            if member not in index_of:
                raise DataError(f'split {split_name!r} names a sample absent from the '
                                'annotations', file=file, frame_dir=member, field='split')
            if member in seen:
                raise DataError(f'split {split_name!r} names this sample twice', file=file,
                                frame_dir=member, field='split')
            seen.add(member)

    if split is not None:
        if split not in splits:
            raise DataError(f'unknown split {split!r}; available: '
                            f'{", ".join(map(repr, splits)) or "none"}', file=file,
                            field='split')
        chosen = [index_of[name] for name in splits[split]]
    else:
        chosen = list(range(len(annotations)))

    labels: Counter = Counter()
    frames, persons, joints, channels, dtypes = [], [], Counter(), Counter(), Counter()
    coord_acc: dict[int, list] = {}          # channel -> [min, max, sum, count]
    score_samples, score_lo, score_hi = 0, np.inf, -np.inf
    for index in chosen:
        ann = annotations[index]
        need_keypoint = 'keypoint' in ann or 'raw_file' not in ann
        validate_annotation(ann, file=file, index=index, num_classes=num_classes,
                            multi_class=multi_class, need_keypoint=need_keypoint,
                            identifier=identifier, joints=expect_joints)
        label = ann['label']
        labels.update(label if isinstance(label, (list, tuple)) else [label])
        frames.append(ann['total_frames'])
        if 'keypoint' not in ann:
            continue
        kp = ann['keypoint']
        m, _t, v, c = kp.shape
        persons.append(m)
        joints[v] += 1
        channels[c] += 1
        dtypes[str(kp.dtype)] += 1
        if kp.size:
            flat = kp.reshape(-1, c)
            for ch in range(c):
                col = flat[:, ch].astype(np.float64, copy=False)
                acc = coord_acc.setdefault(ch, [np.inf, -np.inf, 0.0, 0])
                acc[0] = min(acc[0], float(col.min()))
                acc[1] = max(acc[1], float(col.max()))
                acc[2] += float(col.sum())
                acc[3] += col.size
        if 'keypoint_score' in ann:
            score_samples += 1
            score = np.asarray(ann['keypoint_score'])
            if score.size:
                score_lo = min(score_lo, float(score.min()))
                score_hi = max(score_hi, float(score.max()))

    coord = [dict(min=lo, mean=total / max(n, 1), max=hi)
             for _ch, (lo, hi, total, n) in sorted(coord_acc.items())] or None
    return dict(
        file=file, split=split, samples=len(chosen), total_annotations=len(annotations),
        splits={name: len(members) for name, members in splits.items()},
        num_classes_seen=len(labels), label_range=(min(labels), max(labels)) if labels else None,
        class_names=len(classes) if classes is not None else None,
        num_classes=num_classes, frames=_stats(frames), persons=_stats(persons),
        joints_checked=expect_joints,
        joints=dict(joints), channels=dict(channels), dtypes=dict(dtypes), coords=coord,
        keypoint_score=dict(samples=score_samples,
                            range=(score_lo, score_hi) if score_samples and
                            np.isfinite(score_lo) else None),
        without_keypoint=len(chosen) - len(persons))


def _fmt_stats(stats: dict | None, digits: int = 1) -> str:
    if stats is None:
        return 'n/a'
    return (f'min {stats["min"]:.{digits}f}  mean {stats["mean"]:.{digits}f}  '
            f'max {stats["max"]:.{digits}f}')


def format_summary(summary: dict) -> str:
    """The summary as the lines ``tools/data/check.py`` prints."""
    s = summary
    lines = [f'{s["file"]}: OK' + (f' (split {s["split"]!r})' if s['split'] else '')]
    lines.append(f'  samples: {s["samples"]}' + (
        f' of {s["total_annotations"]} annotations' if s['split'] else ''))
    if s['splits']:
        lines.append('  splits: ' + ', '.join(f'{k} {v}' for k, v in s['splits'].items()))
    else:
        lines.append('  splits: none (a bare list of annotations, or no split dict)')
    classes = f'  classes: {s["num_classes_seen"]} labels seen'
    if s['label_range'] is not None:
        classes += f', range {s["label_range"][0]}..{s["label_range"][1]}'
    if s['class_names'] is not None:
        classes += f'; {s["class_names"]} class names in the file'
    elif s['num_classes'] is not None:
        classes += f'; checked against num_classes={s["num_classes"]}'
    lines.append(classes)
    lines.append(f'  frames: {_fmt_stats(s["frames"])}')
    lines.append(f'  persons: {_fmt_stats(s["persons"], 2)}')
    lines.append('  joints (V): ' + (', '.join(f'{k} in {v} samples' for k, v
                                              in sorted(s['joints'].items())) or 'n/a')
                 + (f' (checked: {s["joints_checked"][1]} needs {s["joints_checked"][0]})'
                    if s.get('joints_checked') and s['joints'] else '')
                 + ';  channels (C): ' + (', '.join(f'{k} in {v} samples' for k, v
                                                    in sorted(s['channels'].items())) or 'n/a')
                 + ';  dtype: ' + (', '.join(sorted(s['dtypes'])) or 'n/a'))
    if s['coords']:
        for c, st in enumerate(s['coords']):
            lines.append(f'  channel {c}: min {st["min"]:.4g}  mean {st["mean"]:.4g}  '
                         f'max {st["max"]:.4g}')
    score = s['keypoint_score']
    if score['samples']:
        rng = score['range']
        lines.append(f'  keypoint_score: present in {score["samples"]} samples'
                     + (f', range {rng[0]:.4g}..{rng[1]:.4g}' if rng else ''))
    else:
        lines.append('  keypoint_score: absent')
    if s['without_keypoint']:
        lines.append(f'  {s["without_keypoint"]} samples carry no keypoint '
                     '(kept in kpfiles: raw_file)')
    return '\n'.join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``check.py ANN.pkl [--split S] [--num-classes N] [--layout L | --config CFG]``: 0 when
    valid, 1 otherwise."""

    parser = argparse.ArgumentParser(
        prog='check.py', description='Validate a PYSKL annotation pickle and summarise it.')
    parser.add_argument('ann_file', help='the annotation pickle')
    parser.add_argument('--split', help='check and summarise only this split')
    parser.add_argument('--num-classes', type=int,
                        help='labels must be below this (default: the file\'s class names)')
    parser.add_argument('--multi-class', action='store_true',
                        help='labels may be lists of class indices')
    layout = parser.add_mutually_exclusive_group()
    layout.add_argument('--layout', help='the skeleton layout the keypoints must have '
                                         '(nturgb+d, coco, ...): checks the number of joints')
    layout.add_argument('--config', help='a training config: check the number of joints its '
                                         'data.train pipeline (or layout=) expects')
    args = parser.parse_args(argv)
    try:
        joints = (expected_joints(args.layout) if args.layout
                  else config_joints(args.config) if args.config else None)
    except (KeyError, ValueError) as exc:
        print(f'ERROR: {exc.args[0] if isinstance(exc, KeyError) else exc}', file=sys.stderr)
        return 1
    if args.config and joints is None:
        print(f'note: the pipeline of {args.config} fixes no layout; joints not checked',
              file=sys.stderr)
    try:
        summary = check_annotation_file(args.ann_file, split=args.split,
                                        num_classes=args.num_classes,
                                        multi_class=args.multi_class, expect_joints=joints)
    except DataError as exc:
        print(f'ERROR: {exc}', file=sys.stderr)
        return 1
    print(format_summary(summary))
    return 0
