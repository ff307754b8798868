"""What a config says about its data: its datasets and its class names, read in one place.

Both schemas are read: the PYSKL one (``data=dict(train=..., val=..., test=...)``) and
mmengine's (``train_dataloader=dict(dataset=...)``). Wrappers (``RepeatDataset(dataset=...)``,
``ConcatDataset(datasets=[...])``) are looked through to the datasets that read files. The
engine's run spec, the memcached server, the inference API, the report and the tools all ask
these two functions; none reads ``cfg.data`` itself.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from mmengine.config import Config
from mmengine.logging import print_log

from .label_map import DEFAULT_LABEL_MAPS, load_label_map

__all__ = ['SPLITS', 'DatasetEntry', 'config_datasets', 'dataset_leaves', 'split_dataset_cfg', 'ClassNames',
           'config_class_names', 'config_num_classes', 'config_layout', 'class_names_for',
           'is_mapping', 'config_value']

#: The splits a config may describe, in the order a run reads them.
SPLITS = ('train', 'val', 'test')


@dataclass(frozen=True)
class DatasetEntry:
    """One dataset that reads files: where it sits in the config and its settings."""
    split: str
    path: str           # config path, e.g. 'data.train.dataset' or 'test_dataloader.dataset'
    settings: Mapping[str, Any]


def dataset_leaves(dataset: Mapping, path: str) -> Iterator[tuple[str, Mapping]]:
    """(config path, dict) of the datasets under ``dataset`` that read files (the dicts
    themselves, not copies)."""
    if isinstance(dataset.get('dataset'), Mapping):
        yield from dataset_leaves(dataset['dataset'], f'{path}.dataset')
    elif isinstance(dataset.get('datasets'), (list, tuple)):
        for i, sub in enumerate(dataset['datasets']):
            if isinstance(sub, Mapping):
                yield from dataset_leaves(sub, f'{path}.datasets[{i}]')
    else:
        yield path, dataset


def split_dataset_cfg(cfg: Mapping, split: str) -> tuple[str, Mapping] | None:
    """(config path, dataset dict as written, wrappers included) of ``split``, or None."""
    data = cfg.get('data') or {}
    if isinstance(data, Mapping) and isinstance(data.get(split), Mapping):
        return f'data.{split}', data[split]
    loader = cfg.get(f'{split}_dataloader')
    if isinstance(loader, Mapping) and isinstance(loader.get('dataset'), Mapping):
        return f'{split}_dataloader.dataset', loader['dataset']
    return None


def config_datasets(cfg: Mapping, split: str | None = None) -> list[DatasetEntry]:
    """The datasets that read files, of ``split`` (or of every split, in :data:`SPLITS`
    order). Each entry keeps the dict as the config holds it; copy it to change it."""
    entries: list[DatasetEntry] = []
    for name in (split,) if split else SPLITS:
        found = split_dataset_cfg(cfg, name)
        if found is not None:
            entries += [DatasetEntry(name, path, leaf) for path, leaf in dataset_leaves(found[1], found[0])]
    return entries


def is_mapping(node: Any) -> bool:
    """A dict, a ConfigDict or an mmengine Config (which is not a Mapping)."""
    return isinstance(node, (Mapping, Config))


def config_value(cfg: Mapping, dotted: str, default: Any = None) -> Any:
    """The value at a dotted config path (``model.cls_head.work_dir``), or ``default``."""
    node: Any = cfg
    for part in dotted.split('.'):
        if not is_mapping(node) or part not in node:
            return default
        node = node[part]
    return node


# --------------------------------------------------------------------------- class names
@dataclass(frozen=True)
class ClassNames:
    """Class names and where they came from (for the log and the tools)."""
    names: tuple[str, ...]
    source: str


def _candidates(cfg: Mapping, num_classes: int | None,
                checkpoint_meta: Mapping | None) -> Iterator[tuple[str, Any]]:
    agent = cfg.get('agent') or {}
    if isinstance(agent, Mapping) and agent.get('label_map'):
        yield 'agent.label_map', agent['label_map']
    for split in ('test', 'val', 'train'):
        for entry in config_datasets(cfg, split):
            if entry.settings.get('classes') is not None:
                yield f'{entry.path}.classes', entry.settings['classes']
    meta = (checkpoint_meta or {}).get('dataset_meta') or {}
    if meta.get('classes'):
        yield 'checkpoint meta.dataset_meta.classes', meta['classes']
    if num_classes in DEFAULT_LABEL_MAPS:
        yield f'the shipped label map for {num_classes} classes', DEFAULT_LABEL_MAPS[num_classes]


def config_class_names(cfg: Mapping, num_classes: int | None = None,
                       checkpoint_meta: Mapping | None = None,
                       strict: bool = False) -> ClassNames | None:
    """The class names of a config, the first that exists of: ``agent.label_map``, the test
    (val, train) datasets' ``classes`` (names, or a label map name or file), the checkpoint's
    ``dataset_meta.classes``, the shipped label map for ``num_classes`` classes. None when
    there is none.

    A list of another length than ``num_classes``, or a map that cannot be read, is skipped
    with a warning; with ``strict=True`` it is an error instead (the agent must not ask about
    the wrong classes).

    Raises:
        FileNotFoundError / ValueError: with ``strict``, for a map that cannot be read or has
            another number of classes.
    """
    for where, value in _candidates(cfg, num_classes, checkpoint_meta):
        try:
            names = (load_label_map(value, num_classes if strict else None)
                     if isinstance(value, (str, os.PathLike)) else [str(v) for v in value])
        except (OSError, ValueError) as exc:
            if strict:
                raise
            print_log(f'class names from {where} unavailable: {exc}', logger='current',
                      level=logging.WARNING)
            continue
        if num_classes is None or len(names) == num_classes:
            return ClassNames(tuple(names), where)
        message = (f'{where} holds {len(names)} class names but the model has {num_classes} '
                   'classes')
        if strict:
            raise ValueError(f'{message}; give a label map of {num_classes} names')
        print_log(f'{message}; not used', logger='current', level=logging.WARNING)
    return None


def config_num_classes(cfg: Mapping) -> int | None:
    """The number of classes the config's model predicts (its head's, else its backbone's)."""
    model = cfg.get('model') or {}
    num = (model.get('cls_head') or {}).get('num_classes') \
        or (model.get('backbone') or {}).get('num_classes')
    return int(num) if num else None


def config_layout(cfg: Mapping) -> str | None:
    """The skeleton layout of the config's model: its backbone's ``graph_cfg.layout`` (what
    the model is built on), else its head's ``joint_cfg`` (official configs), else None."""
    model = cfg.get('model') or {}
    graph = (model.get('backbone') or {}).get('graph_cfg') or {}
    layout = graph.get('layout') or (model.get('cls_head') or {}).get('joint_cfg')
    return str(layout) if layout else None


def class_names_for(label_map: str | os.PathLike | None = None,
                    file_classes: list[str] | tuple[str, ...] | None = None,
                    config: str | os.PathLike | Mapping | None = None
                    ) -> tuple[list[str] | None, str]:
    """Class names for a tool and where they come from, the first that exists of: a label
    map (a shipped name such as ``'ntu60'`` or a file), an annotation file's own ``classes``,
    a config's (:func:`config_class_names`). ``(None, 'none')`` when none is given.

    Raises:
        FileNotFoundError / ValueError: the label map or the config cannot be read.
    """
    if label_map is not None:
        return load_label_map(label_map), f'label map {os.fspath(label_map)}'
    if file_classes:
        return [str(c) for c in file_classes], "the file's classes"
    if config is not None:
        from_file = isinstance(config, (str, os.PathLike))
        cfg = Config.fromfile(os.fspath(config)) if from_file else config
        num = config_num_classes(cfg)
        found = config_class_names(cfg, num) if num else None
        if found is not None:
            where = os.fspath(config) if from_file else 'the config'
            return list(found.names), f'config {where}'
    return None, 'none'
