"""Checks a run makes before it builds anything, cheapest and most basic first.

A run that cannot go far should stop at once and name the first thing that is wrong, not
after a model is built, a text encoder downloaded or a memcached server filled. Resolving the
run (:func:`~.spec.resolve_run`) already checked the config's keys. Then, on the
:class:`~.spec.RunSpec`:

1. the work dir can be written;
2. the data: every annotation file the run reads exists and is a complete pickle;
3. training: what the run plugins' settings name is resolved, once (the agent's texts, masks
   and prompts), and each plugin's own checks run (the agent: its LLM backend's arguments
   and the text encoder's weights, without waiting on download retries);
4. the data's samples: each split's dataset is built and every sample checked
   (:func:`check_datasets`), the longest check, last; the run's Runner gets these
   datasets, nothing is loaded twice.
"""
from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mmengine.config import Config

from ..datasets.config_view import DatasetEntry
from ..datasets.demo import DEMO_PATHS, DemoPoseDataset
from ..errors import SkeletonAgentError
from ..registry import DATASETS, explain_unknown_types
from .config import RunOptions
from .errors import ConfigError
from .prebuilt import discard_datasets, keep_dataset
from .spec import RunSpec, as_spec

__all__ = ['DataMissing', 'preflight', 'check_work_dir', 'check_data', 'check_datasets']

#: Where users are told to look for data.
DATA_HELP = 'data/README.md says how to get or prepare each dataset'


class DataMissing(SkeletonAgentError, FileNotFoundError):
    """An annotation file a run reads is missing or not a complete pickle."""


# --------------------------------------------------------------------------- work dir
def check_work_dir(work_dir: str | os.PathLike) -> Path:
    """Whether the run can create / write ``work_dir``, without creating anything (a run
    that stops at a later check leaves no empty folder behind): the folder, or its nearest
    existing parent, must be a folder this process may write to."""
    path = Path(work_dir).expanduser()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    reason = None
    if not existing.is_dir():
        reason = f'{existing} is not a directory'
    elif not os.access(existing, os.W_OK | os.X_OK):
        reason = f'no permission to write in {existing}'
    if reason:
        raise ConfigError(f'cannot write to the work dir {path}: {reason}; give another one '
                          'with --work-dir')
    return path


# --------------------------------------------------------------------------- data
def _is_demo_file(dataset: Mapping[str, Any], path: Path) -> bool:
    """The demo dataset generates its pickle when missing, at the demo's own path only."""
    cls = DATASETS.get(dataset.get('type')) if isinstance(dataset.get('type'), str) else None
    if cls is None:
        return False
    return issubclass(cls, DemoPoseDataset) and any(
        path.resolve() == Path(own).resolve() for own in DEMO_PATHS)


def _pickle_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a complete pickle, from its first and last byte, or None.

    A pickle of protocol 2 or newer starts with the PROTO opcode (0x80) and always ends with
    STOP ('.'); a file cut short (an interrupted copy or download) lacks the final STOP."""
    try:
        size = path.stat().st_size
        if size == 0:
            return 'is empty'
        with open(path, 'rb') as f:
            first = f.read(1)
            f.seek(-1, os.SEEK_END)
            last = f.read(1)
    except OSError as exc:
        return f'cannot be read ({exc.strerror or exc})'
    if first == b'\x80' and last != b'.':
        return "is truncated (it lacks the STOP byte every pickle ends with)"
    return None


def check_data(datasets: Iterable[DatasetEntry]) -> None:
    """Every annotation file of ``datasets`` exists and looks like a complete pickle (only
    its first and last bytes are read), naming the file and its config key."""
    for entry in datasets:
        path_key, dataset = entry.path, entry.settings
        ann = dataset.get('ann_file')
        if not ann:
            continue
        path = Path(str(ann)).expanduser()
        if not path.exists():
            if _is_demo_file(dataset, path):
                continue
            raise DataMissing(f'annotation file not found: {ann} ({path_key}.ann_file); '
                              f'{DATA_HELP}')
        if path.is_dir():
            raise DataMissing(f'annotation file {ann} ({path_key}.ann_file) is a folder, '
                              'not a pickle')
        problem = _pickle_problem(path)
        if problem:
            raise DataMissing(f'annotation file {ann} ({path_key}.ann_file) {problem}; '
                              'copy or prepare it again')


def check_datasets(spec: RunSpec, keep: Iterable[str] = ()) -> None:
    """Build the dataset of each split's loader (either schema) and load its annotations: every sample is
    checked (its fields, its joints against the layout, the split's names) before the run
    writes anything; the error names the file, the sample and the field. The splits in
    ``keep`` are handed to the run's Runner (:mod:`.prebuilt`), the others dropped (a test
    split checked at start is loaded again when the test runs, not held during training)."""
    keep = set(keep)
    for split in dict.fromkeys(spec.splits):
        loader = spec.runner_kwargs.get(f'{split}_dataloader')
        if not isinstance(loader, Mapping):
            continue
        with explain_unknown_types():     # the dataset the run's loader would build
            dataset = DATASETS.build(copy.deepcopy(loader['dataset']))
        if hasattr(dataset, 'full_init'):
            dataset.full_init()
        if split in keep:
            keep_dataset(spec.cfg, split, dataset)


# --------------------------------------------------------------------------- all
def preflight(spec: RunSpec | Config, opts: RunOptions | None = None, mode: str = 'train',
              splits: Iterable[str] | None = None) -> RunSpec:
    """The checks of the module docstring, in order, on a resolved run; raises the first
    problem found. Returns the spec with its plugins resolved: the one to run.

    A script may pass a config (with ``opts``, ``mode`` and ``splits``, as to
    :func:`~.spec.resolve_run`) instead of a spec: it is resolved first."""
    spec = as_spec(spec, opts, mode, splits)
    check_work_dir(spec.work_dir)
    check_data(spec.datasets)
    spec = spec.with_plugins_resolved()
    for use in spec.plugins:
        use.plugin.check(spec.cfg, use.settings)
    try:
        check_datasets(spec, keep=['train', 'val'] if spec.mode == 'train' else ['test'])
    except BaseException:
        discard_datasets(spec.cfg)
        raise
    return spec
