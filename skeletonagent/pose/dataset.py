"""A folder of a person's own videos → a PYSKL training pickle, a label map and a report.

Input: ``ROOT/<class name>/*.mp4`` (one folder per class), or a list file of ``path label``
lines (the label is the rest of the line: a class name, or a class index when a label map
is given; relative paths are read from the list file's folder). Every video goes through
:func:`~skeletonagent.pose.video.extract_video` in worker processes with a progress bar; each
result is cached in ``WORK_DIR/samples/`` as soon as it is done (the runner of the NTU
preparation, :func:`~skeletonagent.datasets.prep.runner.run_samples`), so a killed run loses nothing
and a rerun only does what is missing. Videos that cannot be read, and videos in which
nobody was found, are skipped and named in the report.
"""
from __future__ import annotations

import os
import pickle
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..datasets.label_map import load_label_map
from ..datasets.prep.runner import run_samples
from ..utils.fileio import atomic_write_bytes, atomic_write_text
from .base import build_estimator
from .video import VIDEO_SUFFIXES, extract_video

__all__ = ['VideoItem', 'scan_video_folder', 'read_video_list', 'split_by_ratio', 'prepare_videos',
           'VIDEOS_CACHE_VERSION']

#: Bumped when a cached result would differ for the same video and settings.
VIDEOS_CACHE_VERSION = 1


@dataclass(frozen=True)
class VideoItem:
    name: str         # the sample's frame_dir: '<class>/<file stem>' or the list's stem
    path: Path
    label: int


def _class_names_from_map(label_map: str | os.PathLike | None) -> list[str] | None:
    if label_map is None:
        return None
    return load_label_map(label_map)


def scan_video_folder(root: str | os.PathLike, label_map: str | os.PathLike | None = None
                      ) -> tuple[list[VideoItem], list[str]]:
    """``root/<class>/*.<video suffix>`` → items and class names (the label map's order, else
    the folders' sorted names).

    Raises:
        FileNotFoundError: no such folder; ValueError: no class folder holds a video, or a
            folder is not in the given label map.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f'no such folder: {root}')
    folders = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith('.')):
        videos = sorted(p for p in sub.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
        if videos:
            folders[sub.name] = videos
    if not folders:
        raise ValueError(f'{root}: no videos found in class folders ({root}/<class name>/*.mp4; '
                         f'suffixes {", ".join(VIDEO_SUFFIXES)})')
    classes = _class_names_from_map(label_map) or sorted(folders)
    unknown = sorted(set(folders) - set(classes))
    if unknown:
        raise ValueError(f'{root}: folder(s) {", ".join(unknown)} are not classes of the label map '
                         f'{label_map}')
    items = [VideoItem(f'{name}/{video.stem}', video, classes.index(name))
             for name, videos in folders.items() for video in videos]
    return items, classes


def read_video_list(list_file: str | os.PathLike, label_map: str | os.PathLike | None = None
                    ) -> tuple[list[VideoItem], list[str]]:
    """A ``path label`` list file → items and class names (the label map's, else the labels
    in order of first appearance). ``#`` starts a comment.

    Raises:
        ValueError: naming the file and line of a malformed line, an unknown class, an index
            without a label map, or the same video twice.
    """
    list_file = Path(list_file)
    if not list_file.is_file():
        raise FileNotFoundError(f'video list not found: {list_file}')
    classes = _class_names_from_map(label_map)
    known = list(classes or [])
    items, names = [], set()
    for number, line in enumerate(list_file.read_text(encoding='utf-8').splitlines(), 1):
        text = line.split('#', 1)[0].strip()
        if not text:
            continue
        parts = text.split(None, 1)
        if len(parts) != 2:
            raise ValueError(f'{list_file}:{number}: expected "path label", got {text!r}')
        path, label = Path(parts[0]), parts[1].strip()
        if not path.is_absolute():
            path = list_file.parent / path
        if label.isdigit():
            if classes is None:
                raise ValueError(f'{list_file}:{number}: label {label} is an index; give the label '
                                 'map that names the classes (--label-map), or write class names')
            index = int(label)
            if index >= len(classes):
                raise ValueError(f'{list_file}:{number}: label {index} is out of range: the label map '
                                 f'has {len(classes)} classes')
        elif label in known:
            index = known.index(label)
        elif classes is not None:
            raise ValueError(f'{list_file}:{number}: class {label!r} is not in the label map {label_map}')
        else:
            known.append(label)
            index = len(known) - 1
        name = re.sub(r'\.[^./]+$', '', parts[0])
        if name in names:
            raise ValueError(f'{list_file}:{number}: {parts[0]} is listed twice')
        names.add(name)
        items.append(VideoItem(name, path, index))
    if not items:
        raise ValueError(f'{list_file}: no videos listed')
    return items, known


def split_by_ratio(items: Sequence[VideoItem], val_ratio: float = 0.2, test_ratio: float = 0.0,
                   seed: int = 0) -> dict[str, list[str]]:
    """Seeded split per class: of each class's videos, ``round(n * ratio)`` go to val (and to
    test), at least one each when the ratio is positive and the class has videos to spare;
    the rest train. The same items and seed give the same split."""
    if not 0 <= val_ratio < 1 or not 0 <= test_ratio < 1 or val_ratio + test_ratio >= 1:
        raise ValueError(f'val ratio {val_ratio} and test ratio {test_ratio} must be in [0, 1) '
                         'with a sum below 1')
    rng = random.Random(seed)
    by_class: dict[int, list[str]] = {}
    for item in items:
        by_class.setdefault(item.label, []).append(item.name)
    splits: dict[str, list[str]] = {'train': [], 'val': []}
    if test_ratio > 0:
        splits['test'] = []
    for label in sorted(by_class):
        names = sorted(by_class[label])
        rng.shuffle(names)
        n = len(names)
        n_val = _share(n, val_ratio, n - 1)
        n_test = _share(n, test_ratio, n - 1 - n_val)
        splits['val'] += names[:n_val]
        if 'test' in splits:
            splits['test'] += names[n_val:n_val + n_test]
        splits['train'] += names[n_val + n_test:]
    return {k: sorted(v) for k, v in splits.items()}


def _share(n: int, ratio: float, spare: int) -> int:
    """``round(n * ratio)`` of a class's ``n`` videos, at least 1 for a positive ratio, at
    most ``spare``."""
    if ratio <= 0:
        return 0
    return min(max(1, round(n * ratio)), max(0, spare))


def _read_split_list(path: str | os.PathLike, known: set[str]) -> list[str]:
    """Sample names of a split list (one video path or name per line)."""
    out = []
    for number, line in enumerate(Path(path).read_text(encoding='utf-8').splitlines(), 1):
        text = line.split('#', 1)[0].strip()
        if not text:
            continue
        name = re.sub(r'\.[^./]+$', '', text.split()[0])
        if name not in known:
            raise ValueError(f'{path}:{number}: {text!r} is not one of the videos')
        out.append(name)
    return out


# ------------------------------------------------------------------ the per-video work
_ESTIMATORS: dict[Any, Any] = {}      # one estimator per worker process and settings


def extract_one(path: str, *, backend: str, backend_kwargs: Mapping, max_persons: int,
                name: str) -> dict | None:
    """Worker: one video → its annotation (without label), or None when nobody was found."""
    key = (backend, tuple(sorted(backend_kwargs.items())))
    estimator = _ESTIMATORS.get(key)
    if estimator is None:
        estimator = _ESTIMATORS[key] = build_estimator(backend, **dict(backend_kwargs))
    return extract_video(path, estimator, max_persons=max_persons, frame_dir=name)


def _cache_name(name: str) -> str:
    return name.replace(os.sep, '__').replace('/', '__')


@dataclass
class PrepareResult:
    out: Path
    label_map: Path
    report: Path
    classes: list[str]
    splits: dict[str, int]
    samples: int
    processed: int
    cached: int
    no_person: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)


def prepare_videos(source: str | os.PathLike, out: str | os.PathLike, *,
                   label_map: str | os.PathLike | None = None, label_map_out: str | os.PathLike | None = None,
                   backend: str = 'mediapipe', backend_kwargs: Mapping | None = None,
                   max_persons: int = 2, val_ratio: float = 0.2, test_ratio: float = 0.0,
                   seed: int = 0, split_lists: Mapping[str, str | os.PathLike] | None = None,
                   workers: int = 1, work_dir: str | os.PathLike | None = None,
                   progress: bool = True, log: Callable[[str], None] = print) -> PrepareResult:
    """Videos → ``out`` (a PYSKL pickle with ``split``, ``annotations``, ``classes``,
    ``layout``), a label map (default: ``label_map.txt`` beside ``out``) and a report of what
    was skipped (``<out stem>_skipped.txt``).

    Args:
        source: a folder of class folders, or a ``path label`` list file.
        label_map: class names in label order (default: from the folders / the list).
        backend, backend_kwargs: the pose estimator (:func:`~skeletonagent.pose.build_estimator`).
        max_persons: persons kept per video (PYSKL keeps 2).
        val_ratio, test_ratio, seed: the per-class seeded split when no ``split_lists``.
        split_lists: ``{'train': FILE, 'val': FILE, ...}``, each a list of videos.
        workers: processes; work_dir: the per-video cache (default ``<out dir>/.videos_work``).
    """
    source, out = Path(source), Path(out)
    items, classes = (scan_video_folder(source, label_map) if source.is_dir()
                      else read_video_list(source, label_map))
    backend_kwargs = dict(backend_kwargs or {})
    with build_estimator(backend, **backend_kwargs) as estimator:   # fails here, once, if it cannot run
        what = estimator.describe()
        layout = estimator.layout
    log(f'{len(items)} videos of {len(classes)} classes; poses by {what}')
    work_dir = Path(work_dir) if work_dir is not None else out.parent / '.videos_work'
    by_cache = {_cache_name(item.name): item for item in items}
    key = ('videos', VIDEOS_CACHE_VERSION, backend, tuple(sorted(backend_kwargs.items())), max_persons)
    jobs = [(cache_name, item.path) for cache_name, item in by_cache.items()]
    # run_samples passes fn_kwargs to every video; the sample's own name goes through the cache
    # name, restored below
    result = run_samples(jobs, _extract_named, work_dir, key=key, workers=workers, progress=progress,
                         desc='videos', fn_kwargs=dict(backend=backend, backend_kwargs=backend_kwargs,
                                                       max_persons=max_persons),
                         mp_context='spawn')   # MediaPipe's graphs hang in forked workers
    annotations = {}
    for cache_name, ann in result.annotations.items():
        item = by_cache[cache_name]
        ann = dict(ann, frame_dir=item.name, label=item.label)
        annotations[item.name] = ann
    no_person = sorted(by_cache[n].name for n in result.empty)
    unreadable = sorted((by_cache[n].name, reason) for n, reason in result.failed)
    if not annotations:
        raise ValueError(f'{source}: no video gave a person ({len(no_person)} without a person, '
                         f'{len(unreadable)} unreadable); nothing written')
    kept = [item for item in items if item.name in annotations]
    if split_lists:
        splits = {name: [n for n in _read_split_list(path, {i.name for i in items}) if n in annotations]
                  for name, path in split_lists.items()}
    else:
        splits = split_by_ratio(kept, val_ratio, test_ratio, seed)
    data = dict(split=splits, annotations=[annotations[item.name] for item in kept],
                classes=list(classes), layout=layout, pose_backend=what)
    atomic_write_bytes(out, pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
    label_map_path = Path(label_map_out) if label_map_out else out.parent / 'label_map.txt'
    atomic_write_text(label_map_path, ''.join(f'{name}\n' for name in classes))
    report = out.with_name(f'{out.stem}_skipped.txt')
    lines = [f'{name}\tno person found\n' for name in no_person]
    lines += [f'{name}\tunreadable: {reason}\n' for name, reason in unreadable]
    atomic_write_text(report, ''.join(lines))
    retried = f', {len(unreadable)} unreadable (tried again by every run)' if unreadable else ''
    log(f'{result.processed} videos processed, {result.cached} from the cache in {work_dir}{retried}')
    log(f'{len(kept)} samples ({", ".join(f"{k} {len(v)}" for k, v in splits.items())}) -> {out}')
    log(f'label map ({len(classes)} classes) -> {label_map_path}')
    if no_person or unreadable:
        log(f'skipped {len(no_person) + len(unreadable)} video(s), listed in {report}:')
        for name in no_person:
            log(f'  {name}: no person found')
        for name, reason in unreadable:
            log(f'  {name}: unreadable ({reason})')
    return PrepareResult(out, label_map_path, report, list(classes),
                         {k: len(v) for k, v in splits.items()}, len(kept), result.processed,
                         result.cached, no_person, unreadable)


def _extract_named(path: str, **kwargs: Any) -> dict | None:
    """run_samples' worker function: the sample name is the file's, restored by the caller."""
    return extract_one(path, name=Path(path).stem, **kwargs)
