"""UAV-Human: skeleton ``.txt`` files → one PYSKL pickle with the CSv1 and CSv2 splits.

The skeleton files (``Skeleton/P000S00G10B10H10UC022000LC021000A000R0_08241716.txt``) use
the NTU text layout with 17 COCO-order joints per body. As in the pickle the official
SkeletonAgent configs read (``uav_human.pkl``, splits ``csv1_train`` / ``csv1_val`` /
``csv2_train`` / ``csv2_val``), each sample keeps the first two numbers of every joint line
(x, y: the data are 2D) and gets a ``keypoint_score`` of 1 where a body is present; the
pipeline's GenSkeFeat appends it as the third channel::

    dict(frame_dir='P000S00G10B10H10UC022000LC021000A000R0_08241716', label=0,
         keypoint=float32 (M, T, 17, 2), keypoint_score=float32 (M, T, 17), total_frames=T)

``T`` is the file's frame count (frames without a body stay zero); ``M`` is the largest
number of bodies in one frame, a frame's bodies filling persons 0, 1, ... in file order
(where the official conversion assumes a constant body count, this is the same). The label
is the file's ``A`` number (UAV-Human's actions are numbered from 0, 155 classes). Subjects
(the ``P`` number) split the data by the dataset's official Cross-Subject v1 / v2 lists.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .ntu import SkeletonFileError, parse_skeleton_text
from .runner import dump_pickle, find_files, log_skipped, run_samples

__all__ = ['UAV_CSV1_TRAIN_SUBJECTS', 'UAV_CSV2_TRAIN_SUBJECTS', 'uav_name_fields',
           'uav_sample', 'uav_splits', 'prepare_uav']

#: Official training subjects (github.com/sutdcv/UAV-Human, README); the rest are tested.
UAV_CSV1_TRAIN_SUBJECTS = frozenset((
    0, 2, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 25, 26, 27, 28, 29, 30,
    32, 33, 34, 35, 36, 37, 38, 39, 40, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 55, 56,
    57, 59, 61, 62, 63, 64, 65, 67, 68, 69, 70, 71, 73, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85,
    86, 87, 88, 89, 90, 98, 100, 102, 103, 105, 106, 110, 111, 112, 114, 115, 116, 117, 118))
UAV_CSV2_TRAIN_SUBJECTS = frozenset((
    0, 3, 4, 5, 6, 8, 10, 11, 12, 14, 16, 18, 19, 20, 21, 22, 24, 26, 29, 30, 31, 32, 35, 36,
    37, 38, 39, 40, 43, 44, 45, 46, 47, 49, 52, 54, 56, 57, 59, 60, 61, 62, 63, 64, 66, 67, 69,
    70, 71, 72, 73, 74, 75, 77, 78, 79, 80, 81, 83, 84, 86, 87, 88, 89, 91, 92, 93, 94, 95, 96,
    97, 99, 100, 101, 102, 103, 104, 106, 107, 108, 109, 110, 111, 112, 113, 114, 115, 117,
    118))

UAV_NUM_JOINTS = 17
UAV_NUM_CLASSES = 155
UAV_CACHE_VERSION = 1
_UAV_NAME = re.compile(r'^P(\d+)S(\d+)G(\d+)B(\d+)H(\d+)UC(\d+)LC(\d+)A(\d+)R(\d+)_(\d+)$')


def uav_name_fields(name: str) -> dict[str, int]:
    """``'P070S01G10B00H10UC102000LC092000A031R0_09131758'`` → dict(subject=70, setup=1,
    action=31, replication=0); ValueError for other names."""
    match = _UAV_NAME.match(name)
    if not match:
        raise ValueError(f'not a UAV-Human sample name (P..S..G..B..H..UC..LC..A..R.._time): '
                         f'{name!r}')
    groups = match.groups()
    return dict(subject=int(groups[0]), setup=int(groups[1]), action=int(groups[7]),
                replication=int(groups[8]))


def uav_sample(path: str | os.PathLike, dtype: str = 'float32') -> dict | None:
    """One UAV-Human skeleton file → its annotation (None when no body is ever seen)."""
    path = Path(path)
    name = path.name[:-len('.txt')] if path.name.endswith('.txt') else path.stem
    fields = uav_name_fields(name)
    frames = parse_skeleton_text(path, num_joints=UAV_NUM_JOINTS, min_columns=2)
    num_persons = max((len(bodies) for bodies in frames), default=0)
    if num_persons == 0:
        return None
    keypoint = np.zeros((num_persons, len(frames), UAV_NUM_JOINTS, 2), dtype)
    score = np.zeros((num_persons, len(frames), UAV_NUM_JOINTS), dtype)
    for t, bodies in enumerate(frames):
        for m, (_body_id, joints) in enumerate(bodies):
            keypoint[m, t] = joints
            score[m, t] = 1.0
    return dict(frame_dir=name, label=fields['action'], keypoint=keypoint,
                keypoint_score=score, total_frames=len(frames))


def uav_splits(names: Sequence[str]) -> dict[str, list[str]]:
    """The CSv1 and CSv2 splits of ``names`` (kept in the given order)."""
    subject = {name: uav_name_fields(name)['subject'] for name in names}
    split = {}
    for tag, train in (('csv1', UAV_CSV1_TRAIN_SUBJECTS), ('csv2', UAV_CSV2_TRAIN_SUBJECTS)):
        split[f'{tag}_train'] = [n for n in names if subject[n] in train]
        split[f'{tag}_val'] = [n for n in names if subject[n] not in train]
    return split


def prepare_uav(roots: str | os.PathLike | Sequence[str | os.PathLike],
                out: str | os.PathLike, *, work_dir: str | os.PathLike | None = None,
                workers: int = 1, strict: bool = False, dtype: str = 'float32',
                progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """UAV-Human skeleton folder(s) → ``out`` (``uav_human.pkl``), resumable like NTU's.

    Returns ``dict(output=path, result=RunResult)``.
    """
    if isinstance(roots, (str, os.PathLike)):
        roots = [roots]
    if dtype not in ('float32', 'float16'):
        raise ValueError(f"dtype must be 'float32' or 'float16', got {dtype!r}")
    out = Path(out)
    work_dir = Path(work_dir) if work_dir is not None else out.parent / '.uav_work'
    items = find_files(roots, '.txt')
    bad_names = [name for name, _ in items if not _UAV_NAME.match(name)]
    if bad_names:
        raise ValueError(f'{len(bad_names)} .txt file(s) are not named like UAV-Human samples '
                         f'(P..S..G..B..H..UC..LC..A..R.._time.txt), e.g. {bad_names[:3]}')
    if not items:
        raise FileNotFoundError(f'no .txt files in {", ".join(map(str, roots))}')
    log(f'{len(items)} samples to convert')
    result = run_samples(items, uav_sample, work_dir, key=('uav', UAV_CACHE_VERSION, dtype),
                         workers=workers, strict=strict, progress=progress,
                         desc='UAV-Human skeletons', fn_kwargs=dict(dtype=dtype),
                         error=SkeletonFileError)
    log(f'{result.processed} processed, {result.cached} from the cache in {work_dir}')
    names = sorted(result.annotations)
    if not names:
        raise ValueError('no sample could be converted; nothing written')
    labels = [result.annotations[n]['label'] for n in names]
    if max(labels) >= UAV_NUM_CLASSES:
        log(f'warning: labels up to {max(labels)}, UAV-Human has {UAV_NUM_CLASSES} classes')
    data = dict(split=uav_splits(names), annotations=[result.annotations[n] for n in names])
    output = dump_pickle(out, data)
    sizes = ', '.join(f'{k} {len(v)}' for k, v in data['split'].items())
    log(f'uav_human: {len(names)} samples ({sizes}) -> {output}')
    log_skipped(result, work_dir, log)
    return dict(output=output, result=result)
