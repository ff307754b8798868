"""Run one function over many raw files, in parallel, with a per-sample cache on disk.

Data preparation (NTU, UAV-Human, a folder of videos) turns thousands of raw files into
annotations, one file at a time; a run can take hours and be killed. :func:`run_samples`
keeps each sample's result in a work folder as soon as it is computed, so a rerun computes
only what is missing (or what changed: a cached sample is reused only when its raw file has the
same size and mtime and the caller's settings key is the same), and collects the files it
could not read instead of stopping at the first one.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import sys
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ...errors import SkeletonAgentError
from ...utils.fileio import atomic_write_bytes, atomic_write_text

__all__ = ['SampleError', 'RunResult', 'run_samples', 'find_files', 'log_skipped', 'dump_pickle']


class SampleError(SkeletonAgentError, ValueError):
    """A raw file a strict run could not process; the message names the file."""


@dataclass
class RunResult:
    """What :func:`run_samples` did: annotations by name, and what it skipped."""
    annotations: dict[str, dict] = field(default_factory=dict)
    processed: int = 0                 # computed in this run
    cached: int = 0                    # taken from the work folder
    empty: list[str] = field(default_factory=list)        # no body in the file
    failed: list[tuple[str, str]] = field(default_factory=list)   # (name, reason)


def _cache_path(work_dir: Path, name: str) -> Path:
    return work_dir / 'samples' / f'{name}.pkl'


def _source_stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return (st.st_size, st.st_mtime_ns)


def _load_cached(work_dir: Path, name: str, path: Path, key: Any) -> tuple[bool, Any]:
    cache = _cache_path(work_dir, name)
    try:
        with open(cache, 'rb') as f:
            entry = pickle.load(f)
    except FileNotFoundError:
        return False, None
    except Exception:  # noqa: BLE001 - a truncated or foreign file: redo the sample
        return False, None
    if (not isinstance(entry, dict) or entry.get('key') != key
            or entry.get('source') != _source_stamp(path)):
        return False, None
    return True, entry.get('annotation')


def _work(job: tuple[Callable, str, str, str, Any, dict]) -> tuple[str, str, Any]:
    """Worker: process one sample, cache it; returns (name, status, payload)."""
    fn, name, path, work_dir, key, kwargs = job
    try:
        ann = fn(path, **kwargs)
    except (ValueError, OSError) as exc:     # our parsers' errors are ValueErrors
        return name, 'failed', str(exc)
    entry = dict(key=key, source=_source_stamp(Path(path)), annotation=ann)
    atomic_write_bytes(_cache_path(Path(work_dir), name),
                       pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL))
    return name, 'ok', ann


def _progress(iterable: Iterable, total: int, desc: str, enabled: bool):
    if not enabled:
        return iterable
    return tqdm(iterable, total=total, desc=desc, unit='sample', dynamic_ncols=True)


def run_samples(items: Sequence[tuple[str, Path]], fn: Callable[..., dict | None],
                work_dir: str | os.PathLike, *, key: Any, workers: int = 1,
                strict: bool = False, progress: bool = True, desc: str = 'samples',
                fn_kwargs: dict | None = None, mp_context: str | None = None,
                error: type[Exception] = SampleError) -> RunResult:
    """Run ``fn(path, **fn_kwargs)`` on every ``(name, path)`` not cached in ``work_dir``.

    A sample is taken from the cache when its entry has the same ``key`` (the settings and
    the code version) and its raw file has the same size and mtime. ``fn`` must be a
    module-level function (it is sent to the worker processes). A sample fails when ``fn``
    raises a ``ValueError`` or ``OSError``; failures are collected (``strict``: the first one
    raises ``error``, a :class:`SampleError` unless the caller names its own, with the
    failure's message). ``mp_context``: how the
    workers start (default fork on Linux; 'spawn' for libraries that cannot be forked once
    used, such as MediaPipe's graphs).
    """
    work_dir = Path(work_dir)
    (work_dir / 'samples').mkdir(parents=True, exist_ok=True)
    fn_kwargs = dict(fn_kwargs or {})
    result = RunResult()
    todo = []
    for name, path in items:
        hit, ann = _load_cached(work_dir, name, Path(path), key)
        if hit:
            result.cached += 1
            if ann is None:
                result.empty.append(name)
            else:
                result.annotations[name] = ann
        else:
            todo.append((fn, name, str(path), str(work_dir), key, fn_kwargs))

    def record(name: str, status: str, payload: Any) -> None:
        if status == 'failed':
            if strict:
                raise error(payload)
            warnings.warn(f'skipped {name}: {payload}', stacklevel=3)
            result.failed.append((name, payload))
            return
        result.processed += 1
        if payload is None:
            result.empty.append(name)
        else:
            result.annotations[name] = payload

    if todo:
        if workers <= 1 or len(todo) == 1:
            for job in _progress(todo, len(todo), desc, progress):
                record(*_work(job))
        else:
            ctx = mp.get_context(mp_context or ('fork' if sys.platform.startswith('linux') else 'spawn'))
            chunksize = max(1, min(64, len(todo) // (workers * 8) or 1))
            with ctx.Pool(workers) as pool:
                for out in _progress(pool.imap_unordered(_work, todo, chunksize),
                                     len(todo), desc, progress):
                    record(*out)
    failed_txt = work_dir / 'failed.txt'
    if result.failed:
        atomic_write_text(failed_txt, ''.join(f'{n}\t{r}\n' for n, r in result.failed))
    elif failed_txt.exists():
        failed_txt.unlink()
    return result


def find_files(roots: Sequence[str | os.PathLike], suffix: str) -> list[tuple[str, Path]]:
    """``(name, path)`` of every file ending in ``suffix`` directly in ``roots``, sorted by
    name (the name without the suffix); a name found in two roots is a ValueError."""
    found: dict[str, Path] = {}
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f'no such folder: {root}')
        for path in root.iterdir():
            if path.name.endswith(suffix) and path.is_file():
                name = path.name[:-len(suffix)]
                if name in found and found[name] != path:
                    raise ValueError(f'sample {name} found twice: {found[name]} and {path}')
                found[name] = path
    return sorted(found.items())


def log_skipped(result: RunResult, work_dir: Path, log: Callable[[str], None]) -> None:
    """Say which samples had no body and which raw files could not be read."""
    if result.empty:
        log(f'{len(result.empty)} sample(s) with no body at all were skipped: '
            f'{", ".join(result.empty[:20])}{" ..." if len(result.empty) > 20 else ""}')
    if result.failed:
        log(f'{len(result.failed)} file(s) could not be read and were skipped '
            f'(listed in {work_dir / "failed.txt"}):')
        for _name, reason in result.failed:
            log(f'  {reason}')


def dump_pickle(path: Path, data: Any) -> Path:
    """Write ``data`` to ``path`` as a pickle, atomically (a reader never sees half a file)."""
    return atomic_write_bytes(path, pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
