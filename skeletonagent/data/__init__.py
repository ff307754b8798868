"""Package data: the files the library reads at run time, shipped inside the wheel.

    label_map/<name>.txt    class names, one per line, in label order
                            (read by :func:`skeletonagent.datasets.label_map.load_label_map`)
    ntu_missing/<name>.txt  NTU RGB+D samples whose skeletons are missing, the dataset
                            authors' lists (read by :mod:`skeletonagent.datasets.prep.ntu`)

The library finds them through :mod:`importlib.resources`, never through the repository's
folders, so an installed wheel (or a zip import) reads the same files as a source checkout.
"""
from __future__ import annotations

from importlib.resources import files

try:
    from importlib.resources.abc import Traversable
except ImportError:  # Python < 3.11
    from importlib.abc import Traversable

__all__ = ['package_data']


def package_data(*parts: str) -> Traversable:
    """The shipped file or folder ``parts`` (e.g. ``'label_map', 'ntu60.txt'``).

    A :class:`pathlib.Path` when the package is installed as files (a wheel, an editable
    install); some other :class:`~importlib.resources.abc.Traversable` for a zip import.
    """
    node = files(__name__)
    for part in parts:
        node = node.joinpath(part)
    return node
