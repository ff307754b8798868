"""Class-name lists (label maps): one class name per line, in label order.

The shipped maps are package data (``skeletonagent/data/label_map/<name>.txt``).
"""
from __future__ import annotations

import os
from pathlib import Path

from ..data import Traversable, package_data

__all__ = ['DEFAULT_LABEL_MAPS', 'LABEL_MAP_DIR', 'load_label_map', 'label_map_path']

#: The shipped label maps (package data).
LABEL_MAP_DIR: Traversable = package_data('label_map')

#: The shipped label map for a number of classes, when a config names none.
DEFAULT_LABEL_MAPS = {60: 'ntu60', 120: 'ntu120', 400: 'k400', 99: 'finegym', 155: 'uav'}

# Names the official code and PYSKL use for the same files.
_ALIASES = {'nturgbd_60': 'ntu60', 'nturgbd_120': 'ntu120'}


def label_map_path(name_or_path: str | os.PathLike) -> Path | Traversable:
    """The file a label-map name ('ntu60', 'demo') or path stands for.

    A bare name (no directory part, no ``.txt``) means the shipped ``<name>.txt``.
    """
    text = os.fspath(name_or_path)
    if os.sep in text or '/' in text or text.endswith('.txt') or Path(text).is_file():
        return Path(text).expanduser()
    return LABEL_MAP_DIR.joinpath(f'{_ALIASES.get(text, text)}.txt')


def _shipped_names() -> list[str]:
    return sorted(p.name[:-len('.txt')] for p in LABEL_MAP_DIR.iterdir()
                  if p.name.endswith('.txt'))


def load_label_map(name_or_path: str | os.PathLike, num_classes: int | None = None) -> list[str]:
    """Class names from a label map, one per line (surrounding blanks and empty lines dropped).

    Raises:
        FileNotFoundError: naming the file and the label maps that exist.
        ValueError: the file holds no names; or, naming the file and both counts, when ``num_classes`` is given and the
            file holds a different number of names.
    """
    path = label_map_path(name_or_path)
    if not path.is_file():
        raise FileNotFoundError(f'label map {os.fspath(name_or_path)!r}: no file {path} '
                                f'(known names: {", ".join(_shipped_names()) or "none"})')
    names = [line.strip() for line in path.read_text(encoding='utf-8').splitlines()]
    names = [name for name in names if name]
    if not names:
        raise ValueError(f'label map {path} holds no class names (one name per line)')
    if num_classes is not None and len(names) != num_classes:
        raise ValueError(f'label map {path} holds {len(names)} class names, expected '
                         f'num_classes={num_classes}')
    return names
