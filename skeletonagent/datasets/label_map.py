"""Class-name lists (label maps): one class name per line, in label order."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ['LABEL_MAP_DIR', 'load_label_map', 'label_map_path']

#: ``<repo>/tools/data/label_map``; the repo is the parent of the ``skeletonagent`` package.
LABEL_MAP_DIR = Path(__file__).resolve().parents[2] / 'tools' / 'data' / 'label_map'

# Names the official code and PYSKL use for the same files.
_ALIASES = {'nturgbd_60': 'ntu60', 'nturgbd_120': 'ntu120'}


def label_map_path(name_or_path: str | os.PathLike) -> Path:
    """The file a label-map name ('ntu60', 'demo') or path stands for.

    A bare name (no directory part, no ``.txt``) means ``LABEL_MAP_DIR/<name>.txt``.
    """
    text = os.fspath(name_or_path)
    if os.sep in text or '/' in text or text.endswith('.txt') or Path(text).is_file():
        return Path(text).expanduser()
    return LABEL_MAP_DIR / f'{_ALIASES.get(text, text)}.txt'


def load_label_map(name_or_path: str | os.PathLike, num_classes: int | None = None) -> list[str]:
    """Class names from a label map, one per line (surrounding blanks and empty lines dropped).

    Raises:
        FileNotFoundError: naming the file and the label maps that exist.
        ValueError: naming the file and both counts when ``num_classes`` is given and the
            file holds a different number of names.
    """
    path = label_map_path(name_or_path)
    if not path.is_file():
        known = sorted(p.stem for p in LABEL_MAP_DIR.glob('*.txt'))
        raise FileNotFoundError(f'label map {os.fspath(name_or_path)!r}: no file {path} '
                                f'(known names: {", ".join(known) or "none"})')
    names = [line.strip() for line in path.read_text(encoding='utf-8').splitlines()]
    names = [name for name in names if name]
    if num_classes is not None and len(names) != num_classes:
        raise ValueError(f'label map {path} holds {len(names)} class names, expected '
                         f'num_classes={num_classes}')
    return names
