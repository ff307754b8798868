"""The error a malformed annotation file raises."""
from __future__ import annotations

from typing import Any

from ..errors import SkeletonAgentError

__all__ = ['DataError']


class DataError(SkeletonAgentError, ValueError):
    """An annotation file (or one of its samples) is malformed.

    The message names the file, the sample (its ``frame_dir``) and the field at fault, so a
    bad sample among 100k can be found and fixed. The parts are also kept as attributes.

    ``DataError('plain message')`` works too (PyTorch's DataLoader re-raises worker errors
    by calling the exception type with one string).

    Args:
        message: what is wrong.
        file: the annotation file.
        frame_dir: the sample's identifier, ``None`` for whole-file problems.
        field: the field at fault (``'keypoint'``, ``'label'``, ``'split'``...).
    """

    def __init__(self, message: str, file: Any = None, frame_dir: Any = None,
                 field: str | None = None) -> None:
        self.message = message
        self.file = None if file is None else str(file)
        self.frame_dir = frame_dir
        self.field = field
        where = []
        if self.file is not None:
            where.append(f'file {self.file}')
        if frame_dir is not None:
            where.append(f'sample {frame_dir!r}')
        if field is not None:
            where.append(f'field {field!r}')
        super().__init__(f'{", ".join(where)}: {message}' if where else message)

    def __reduce__(self):
        return (type(self), (self.message, self.file, self.frame_dir, self.field))
