"""NTU RGB+D 60 / 120: raw ``.skeleton`` files → PYSKL 3D annotation pickles.

The output follows PYSKL's ``tools/data/ntu_preproc.py`` (the script behind the public
``ntu60_3danno.pkl`` / ``ntu120_3danno.pkl``)::

    dict(split=dict(xsub_train=[...], xsub_val=[...],
                    xview_train=[...], xview_val=[...]),        # NTU60
                  # xsub_train, xsub_val, xset_train, xset_val    # NTU120
         annotations=[dict(frame_dir='S001C001P001R001A001', label=0,
                           keypoint=float32 (M, T, 25, 3), total_frames=T), ...])

Body selection, as PYSKL does it (no other denoising, no normalisation):

1. Each body ID's frames are gathered (frames with no body at all are dropped, so a body's
   ``start`` counts only frames that show somebody); its *motion* is the sum over x, y, z of
   the variance of its joint coordinates.
2. One body: it is the sample (``M = 1``, its own frames only).
3. Several: bodies seen in 11 frames or fewer are dropped; then *spread denoising* drops a body
   whose frames are mostly (>= 69.754 %) wider than 0.8 × their height, and lowers the motion
   of a body with some such frames to the motion of its other frames.
4. The bodies, most active first, are laid on two tracks: a body goes on track 0 if it does
   not overlap in time what track 0 holds, else on track 1 if it does not overlap track 1
   (whose span starts at frame 0 once used: PYSKL's quirk, kept), else it is dropped. The
   result (``M = 2``) is trimmed of leading/trailing all-zero frames, and the two persons are
   swapped when the first has no spine joint in the first frame and the second has.

Where PYSKL's script would stop on an assertion (every body dropped by step 3), we keep the
most active body instead. Samples in which no body is ever seen are skipped and listed.

Splits: X-Sub trains on the official 53 (NTU120; the 20 of them below 41 for NTU60)
subjects; X-View trains on cameras 2 and 3; X-Set trains on even setups. The dataset
authors' lists of samples with missing skeletons (302 NTU60, 535 NTU120, package data in
``skeletonagent/data/ntu_missing/``) are excluded.

Raw files that cannot be read are skipped with a warning that names the file and line, and
listed at the end (and in ``failed.txt`` in the work folder); ``strict=True`` stops at the
first one instead. Per-sample results are cached in a work folder (:mod:`.runner`), so a rerun (after a crash
or Ctrl-C) only processes what is not done yet. The pickles are written atomically.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...data import Traversable, package_data
from .runner import SampleError, dump_pickle, find_files, log_skipped, run_samples

__all__ = [
    'SkeletonFileError', 'parse_skeleton_text', 'read_missing_list', 'default_missing_file',
    'missing_list_file', 'ntu_name_fields', 'ntu_sample', 'select_bodies', 'ntu_splits',
    'prepare_ntu', 'NTU_XSUB_TRAIN_SUBJECTS',
    'NTU60_XVIEW_TRAIN_CAMERAS',
]

#: Official cross-subject training subjects (NTU RGB+D 120; those <= 40 are NTU60's).
NTU_XSUB_TRAIN_SUBJECTS = frozenset((
    1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38, 45, 46, 47, 49,
    50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89, 91, 92, 93,
    94, 95, 97, 98, 100, 103))
#: Official cross-view training cameras (NTU60).
NTU60_XVIEW_TRAIN_CAMERAS = frozenset((2, 3))

NTU_NUM_JOINTS = 25
#: PYSKL's thresholds: minimum body length (frames, exclusive), spread-noise ratios.
MIN_BODY_FRAMES = 11
SPREAD_WH_RATIO = 0.8
SPREAD_NOISE_RATIO = 0.69754
ZERO_EPS = 1e-3
#: Bumped whenever the per-sample result would change: older caches are then redone.
NTU_CACHE_VERSION = 1

_NTU_NAME = re.compile(r'^S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})$')


class SkeletonFileError(SampleError):
    """A raw skeleton file is malformed; the message names the file and the line."""

    def __init__(self, message: str, file: Any = None, line: int | None = None) -> None:
        self.message = message
        self.file = None if file is None else str(file)
        self.line = line
        where = ''
        if self.file is not None:
            where = f'{self.file}' + (f', line {line}' if line is not None else '')
        super().__init__(f'{where}: {message}' if where else message)

    def __reduce__(self):
        return (type(self), (self.message, self.file, self.line))


# ---------------------------------------------------------------------------- parsing
def parse_skeleton_text(path: str | os.PathLike, num_joints: int | None = None,
                        min_columns: int = 3) -> list[list[tuple[str, np.ndarray]]]:
    """Read a Kinect-style skeleton text file (NTU ``.skeleton``, UAV-Human ``.txt``).

    Layout: the number of frames; per frame the number of bodies; per body one info line
    (body ID first, then 9 tracking values), the number of joints, and one line per joint
    (x y z depthX depthY colorX colorY orientation×4 trackingState for NTU).

    Returns, per frame, a list of ``(body_id, joints)`` with ``joints`` float32
    ``(num_joints, min_columns)`` (the first ``min_columns`` numbers of each joint line).
    Raises :class:`SkeletonFileError` naming the file and the 1-based line at fault.
    """
    path = Path(path)
    try:
        with open(path, encoding='utf-8', errors='strict') as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as exc:
        raise SkeletonFileError(f'not a text file ({exc.reason} at byte {exc.start})',
                                path) from None
    except OSError as exc:
        raise SkeletonFileError(f'cannot be read: {exc.strerror or exc}', path) from None
    # Blank lines carry nothing in this format; skip them but keep true line numbers.
    rows = [(i + 1, line.strip()) for i, line in enumerate(lines) if line.strip()]
    pos = 0

    def take(what: str) -> tuple[int, str]:
        nonlocal pos
        if pos >= len(rows):
            last = rows[-1][0] if rows else 0
            raise SkeletonFileError(f'file ends early: expected {what}', path, last + 1)
        row = rows[pos]
        pos += 1
        return row

    def count(what: str) -> int:
        lineno, text = take(what)
        try:
            value = int(text)
        except ValueError:
            raise SkeletonFileError(f'expected {what} (an integer), got {text[:60]!r}',
                                    path, lineno) from None
        if value < 0:
            raise SkeletonFileError(f'{what} must be >= 0, got {value}', path, lineno)
        return value

    frames: list[list[tuple[str, np.ndarray]]] = []
    num_frames = count('the number of frames')
    for _ in range(num_frames):
        bodies = []
        for _ in range(count('the number of bodies')):
            lineno, info = take('a body info line')
            body_id = info.split()[0]
            jl, _text = rows[pos] if pos < len(rows) else (lineno + 1, '')
            n = count('the number of joints')
            if num_joints is not None and n != num_joints:
                raise SkeletonFileError(f'expected {num_joints} joints, got {n}', path, jl)
            if pos + n > len(rows):                   # the file ends inside this body
                available = len(rows) - pos
                pos = len(rows)
                take(f'joint {available + 1} of {n}')     # raises, naming the line
            block = rows[pos:pos + n]
            try:                 # fast path: the whole body at once
                joints = np.array([text.split()[:min_columns] for _, text in block],
                                  dtype=np.float32).reshape(n, min_columns)
                ok = bool(np.isfinite(joints).all())
            except ValueError:
                ok = False
            if not ok:
                _joint_error(block, min_columns, path)
            pos += n
            bodies.append((body_id, joints))
        frames.append(bodies)
    if pos != len(rows):
        raise SkeletonFileError(f'unexpected content after the last of {num_frames} frames: '
                                f'{rows[pos][1][:60]!r}', path, rows[pos][0])
    return frames


def _joint_error(block: list[tuple[int, str]], min_columns: int, path: Path) -> None:
    """Find the bad joint line of a body that failed to parse in one go; raise for it."""
    for lineno, text in block:
        values = text.split()
        if len(values) < min_columns:
            raise SkeletonFileError(
                f'joint line needs at least {min_columns} numbers, got {len(values)}',
                path, lineno)
        try:
            numbers = [float(v) for v in values[:min_columns]]
        except ValueError:
            raise SkeletonFileError(f'joint line holds a non-number: {text[:80]!r}',
                                    path, lineno) from None
        if not all(np.isfinite(numbers)):
            raise SkeletonFileError(f'joint line holds a non-finite value: {text[:80]!r}',
                                    path, lineno)
    raise SkeletonFileError('joint lines could not be read', path, block[0][0] if block else None)


# ---------------------------------------------------------------------------- bodies
@dataclass
class _Body:
    kpt: np.ndarray            # (T_b, V, 3)
    start: int                 # index among the frames that show somebody
    motion: float

    @property
    def end(self) -> int:
        return self.start + self.kpt.shape[0]


def _motion(kpt: np.ndarray) -> float:
    return float(np.sum(np.var(kpt.reshape(-1, kpt.shape[-1]), axis=0)))


def _gather_bodies(frames: list[list[tuple[str, np.ndarray]]]) -> list[_Body]:
    """Per body ID (in order of first appearance): its joints and first frame index."""
    kpts: dict[str, list[np.ndarray]] = {}
    starts: dict[str, int] = {}
    index = 0
    for bodies in frames:
        if not bodies:
            continue
        for body_id, joints in bodies:
            if body_id not in kpts:
                kpts[body_id] = []
                starts[body_id] = index
            kpts[body_id].append(joints)
        index += 1
    out = []
    for body_id, seq in kpts.items():
        kpt = np.stack(seq)
        out.append(_Body(kpt=kpt, start=starts[body_id], motion=_motion(kpt)))
    return out


def _by_motion(bodies: list[_Body]) -> list[_Body]:
    return sorted(bodies, key=lambda b: -b.motion)      # stable: ties keep first-seen order


def _spread_denoise(bodies: list[_Body]) -> list[_Body]:
    kept = []
    for body in bodies:
        x, y = body.kpt[..., 0], body.kpt[..., 1]
        spread_ok = (x.max(1) - x.min(1)) <= SPREAD_WH_RATIO * (y.max(1) - y.min(1))
        n_ok = int(spread_ok.sum())
        if n_ok == len(spread_ok):
            kept.append(body)
            continue
        if 1 - n_ok / len(spread_ok) >= SPREAD_NOISE_RATIO:
            continue
        motion = min(body.motion, _motion(body.kpt[spread_ok]))
        kept.append(_Body(kpt=body.kpt, start=body.start, motion=motion))
    return _by_motion(kept)


def _overlaps(span: tuple[int, int], body: _Body) -> bool:
    return max(span[0], body.start) < min(span[1], body.end)


def select_bodies(frames: list[list[tuple[str, np.ndarray]]]) -> np.ndarray | None:
    """PYSKL's choice of (at most) two persons: float32 ``(M, T, V, 3)``; None if no body."""
    bodies = _by_motion(_gather_bodies(frames))
    if not bodies:
        return None
    if len(bodies) == 1:
        return bodies[0].kpt[None]
    most_active = bodies[0]
    bodies = [b for b in bodies if b.kpt.shape[0] > MIN_BODY_FRAMES]
    if len(bodies) == 1:
        return bodies[0].kpt[None]
    if not bodies:                        # PYSKL asserts here; keep the most active body
        return most_active.kpt[None]
    denoised = _spread_denoise(bodies)
    if not denoised:                      # PYSKL asserts here too
        return bodies[0].kpt[None]
    if len(denoised) == 1:
        return denoised[0].kpt[None]

    num_frames = max(b.end for b in denoised)
    num_joints = denoised[0].kpt.shape[1]
    keypoint = np.zeros((2, num_frames, num_joints, 3), np.float32)
    first = denoised[0]
    keypoint[0, first.start:first.end] = first.kpt
    spans = [(first.start, first.end), (0, 0)]
    for body in denoised[1:]:
        for track in (0, 1):
            if not _overlaps(spans[track], body):
                keypoint[track, body.start:body.end] = body.kpt
                s, e = spans[track]
                spans[track] = (min(s, body.start), max(e, body.end))
                break

    # Trim leading / trailing frames where nobody is seen.
    present = np.abs(keypoint).sum(axis=(0, 2, 3)) >= ZERO_EPS
    if present.any():
        idx = np.flatnonzero(present)
        keypoint = keypoint[:, idx[0]:idx[-1] + 1]
    # Person 0 should show a spine (joint 1) in the first frame when person 1 does.
    if (np.abs(keypoint[0, 0, 1]).sum() < ZERO_EPS
            and np.abs(keypoint[1, 0, 1]).sum() > ZERO_EPS):
        keypoint = keypoint[::-1].copy()
    return keypoint


# ---------------------------------------------------------------------------- samples
def ntu_name_fields(name: str) -> dict[str, int]:
    """``'S001C002P003R001A010'`` → dict(setup=1, camera=2, subject=3, replication=1,
    action=10); ValueError if the name is not an NTU sample name."""
    match = _NTU_NAME.match(name)
    if not match:
        raise ValueError(f'not an NTU RGB+D sample name (SsssCcccPpppRrrrAaaa): {name!r}')
    setup, camera, subject, rep, action = map(int, match.groups())
    return dict(setup=setup, camera=camera, subject=subject, replication=rep, action=action)


def ntu_sample(path: str | os.PathLike, dtype: str = 'float32') -> dict | None:
    """One raw file → its PYSKL annotation (None when no body is ever seen)."""
    path = Path(path)
    name = path.name[:-len('.skeleton')] if path.name.endswith('.skeleton') else path.stem
    fields = ntu_name_fields(name)
    keypoint = select_bodies(parse_skeleton_text(path, num_joints=NTU_NUM_JOINTS))
    if keypoint is None:
        return None
    keypoint = np.ascontiguousarray(keypoint, dtype=dtype)
    return dict(frame_dir=name, label=fields['action'] - 1, keypoint=keypoint,
                total_frames=int(keypoint.shape[1]))


def ntu_splits(names: Sequence[str], dataset: str) -> dict[str, list[str]]:
    """The official splits of ``names`` (kept in the given order) for 'ntu60' or 'ntu120'."""
    info = {name: ntu_name_fields(name) for name in names}
    in_xsub = {n: info[n]['subject'] in NTU_XSUB_TRAIN_SUBJECTS for n in names}
    split = dict(xsub_train=[n for n in names if in_xsub[n]],
                 xsub_val=[n for n in names if not in_xsub[n]])
    if dataset == 'ntu60':
        in_view = {n: info[n]['camera'] in NTU60_XVIEW_TRAIN_CAMERAS for n in names}
        split['xview_train'] = [n for n in names if in_view[n]]
        split['xview_val'] = [n for n in names if not in_view[n]]
    elif dataset == 'ntu120':
        split['xset_train'] = [n for n in names if info[n]['setup'] % 2 == 0]
        split['xset_val'] = [n for n in names if info[n]['setup'] % 2 == 1]
    else:
        raise ValueError(f"dataset must be 'ntu60' or 'ntu120', got {dataset!r}")
    return split


def missing_list_file(dataset: str = 'ntu120') -> Traversable:
    """The shipped missing-skeleton list of ``dataset`` ('ntu60' or 'ntu120'; package data)."""
    if dataset not in ('ntu60', 'ntu120'):
        raise ValueError(f"dataset must be 'ntu60' or 'ntu120', got {dataset!r}")
    return package_data('ntu_missing', f'{dataset}_missing.txt')


def default_missing_file() -> Traversable:
    """The shipped NTU120 list (a superset of NTU60's)."""
    return missing_list_file('ntu120')


def read_missing_list(path: str | os.PathLike | Traversable) -> set[str]:
    """Sample names in a missing-skeleton list: one per line; ``#`` comments and lines that
    are not sample names (the official files' two-line header) are ignored."""
    source = Path(path) if isinstance(path, (str, os.PathLike)) else path
    names = set()
    for line in source.read_text(encoding='utf-8').splitlines():
        token = line.split('#', 1)[0].strip()
        if token.endswith('.skeleton'):
            token = token[:-len('.skeleton')]
        if _NTU_NAME.match(token):
            names.add(token)
    return names


def prepare_ntu(roots: str | os.PathLike | Sequence[str | os.PathLike],
                out_dir: str | os.PathLike, *, work_dir: str | os.PathLike | None = None,
                dataset: str = 'auto', missing: str | os.PathLike | None = 'default',
                workers: int = 1, strict: bool = False, dtype: str = 'float32',
                progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """Raw NTU ``.skeleton`` folder(s) → ``ntu60_3danno.pkl`` (and ``ntu120_3danno.pkl``).

    Args:
        roots: folder(s) holding the ``.skeleton`` files (not searched recursively).
        out_dir: where the pickles go.
        work_dir: per-sample cache (default ``<out_dir>/.ntu_work``); a rerun reuses it.
        dataset: 'ntu60', 'ntu120', 'both' or 'auto' (ntu60, plus ntu120 when samples with
            actions above 60 are present, as PYSKL's script does).
        missing: a missing-skeleton list (default: the shipped NTU120 list); None keeps all.
        workers: processes; strict: stop at the first unreadable file.
        dtype: keypoint dtype, 'float32' (default) or 'float16' (what PYSKL's script stores).

    Returns ``dict(outputs={dataset: path}, result=RunResult, excluded_missing=int)``.
    """
    if isinstance(roots, (str, os.PathLike)):
        roots = [roots]
    if dtype not in ('float32', 'float16'):
        raise ValueError(f"dtype must be 'float32' or 'float16', got {dtype!r}")
    if dataset not in ('auto', 'ntu60', 'ntu120', 'both'):
        raise ValueError(f"dataset must be auto, ntu60, ntu120 or both, got {dataset!r}")
    out_dir = Path(out_dir)
    work_dir = Path(work_dir) if work_dir is not None else out_dir / '.ntu_work'

    items = find_files(roots, '.skeleton')
    bad_names = [name for name, _ in items if not _NTU_NAME.match(name)]
    if bad_names:
        raise ValueError(f'{len(bad_names)} file(s) are not named like NTU samples '
                         f'(SsssCcccPpppRrrrAaaa.skeleton), e.g. {bad_names[:3]}')
    if not items:
        raise FileNotFoundError(f'no .skeleton files in {", ".join(map(str, roots))}')
    if missing == 'default':
        missing = default_missing_file()
        if not missing.is_file():
            raise FileNotFoundError(f'the shipped missing-skeleton list {missing} is not '
                                    'there; pass missing=FILE (or None to keep all samples)')
    missing_names = read_missing_list(missing) if missing is not None else set()
    excluded = sum(1 for name, _ in items if name in missing_names)
    items = [(name, path) for name, path in items if name not in missing_names]
    log(f'{len(items)} samples to convert ({excluded} excluded by the missing-skeleton list)')

    key = ('ntu', NTU_CACHE_VERSION, dtype)
    result = run_samples(items, ntu_sample, work_dir, key=key, workers=workers,
                         strict=strict, progress=progress, desc='NTU skeletons',
                         fn_kwargs=dict(dtype=dtype), error=SkeletonFileError)
    log(f'{result.processed} processed, {result.cached} from the cache in {work_dir}')

    names = sorted(result.annotations)
    is60 = {n: ntu_name_fields(n)['action'] <= 60 and ntu_name_fields(n)['setup'] <= 17
            for n in names}
    has120 = any(not v for v in is60.values())
    wanted = {'auto': ['ntu60'] + (['ntu120'] if has120 else []), 'both': ['ntu60', 'ntu120'],
              'ntu60': ['ntu60'], 'ntu120': ['ntu120']}[dataset]
    outputs = {}
    for ds in wanted:
        ds_names = [n for n in names if is60[n]] if ds == 'ntu60' else names
        if not ds_names:
            log(f'{ds}: no samples, nothing written')
            continue
        data = dict(split=ntu_splits(ds_names, ds),
                    annotations=[result.annotations[n] for n in ds_names])
        outputs[ds] = dump_pickle(out_dir / f'{ds}_3danno.pkl', data)
        sizes = ', '.join(f'{k} {len(v)}' for k, v in data['split'].items())
        log(f'{ds}: {len(ds_names)} samples ({sizes}) -> {outputs[ds]}')
    log_skipped(result, work_dir, log)
    return dict(outputs=outputs, result=result, excluded_missing=excluded)
