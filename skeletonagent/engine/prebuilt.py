"""Datasets built (and so checked) before a run writes anything, handed to its Runner.

A data error (a sample without ``keypoint``, 17 joints for a 25-joint layout, an unknown
split) must stop a run before it creates its timestamped folder, log, dumped config and
TensorBoard file. :func:`~.preflight.check_datasets` therefore builds the datasets of the
run's splits up front; this module keeps them until :func:`~.runner.build_runner` puts them in
the DataLoader configs, so nothing is loaded twice. mmengine deep-copies a DataLoader config
before building it, so the config holds a small token (``dict(type='PrebuiltDataset',
token=...)``) and the registered builder below returns the dataset itself.
"""
from __future__ import annotations

from typing import Any

from ..registry import DATASETS

__all__ = ['keep_dataset', 'take_dataset', 'discard_datasets', 'prebuilt_dataset']

# (id of the run's config, split) -> (the split's config as text, dataset); token -> dataset
_BY_RUN: dict[tuple[int, str], tuple[str, Any]] = {}
_BY_TOKEN: dict[str, Any] = {}


def _split_text(cfg: Any, split: str) -> str:
    return repr((cfg.get('data') or {}).get(split))


def keep_dataset(cfg: Any, split: str, dataset: Any) -> None:
    """Keep ``dataset``, built from ``cfg``'s ``data.<split>``, for the run's Runner."""
    _BY_RUN[(id(cfg), split)] = (_split_text(cfg, split), dataset)


def discard_datasets(cfg: Any) -> None:
    """Forget what was kept for ``cfg`` (its run will not start)."""
    for key in [k for k in _BY_RUN if k[0] == id(cfg)]:
        del _BY_RUN[key]


def take_dataset(cfg: Any, split: str) -> dict | None:
    """The DataLoader ``dataset`` entry for a kept dataset of ``cfg``'s ``split`` (once), or
    None when none was kept (or the split's config changed since)."""
    text, dataset = _BY_RUN.pop((id(cfg), split), (None, None))
    if dataset is None or text != _split_text(cfg, split):
        return None
    token = f'{id(dataset):x}'
    _BY_TOKEN[token] = dataset
    return dict(type='PrebuiltDataset', token=token)


@DATASETS.register_module(name='PrebuiltDataset')
def prebuilt_dataset(token: str) -> Any:
    """The dataset a token stands for (see the module docstring); each token builds once."""
    try:
        return _BY_TOKEN.pop(token)
    except KeyError:
        raise KeyError(f'PrebuiltDataset {token!r} was already used or never kept') from None
