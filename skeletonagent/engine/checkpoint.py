"""Checkpoint files: atomic writes, weights_only loading, the ``latest.pth`` link.

* Writes go to a temporary file in the same directory, are fsync'ed, then renamed over the
  target (``os.replace`` is atomic on POSIX), so a killed run never leaves a half-written
  checkpoint and the previous one stays valid. mmengine writes checkpoints through a file
  backend; we register ``atomic_local`` and point its hooks at it.
* torch >= 2.6 loads with ``weights_only=True`` by default. mmengine's checkpoints carry a few
  non-tensor objects (its ``HistoryBuffer`` log scalars, numpy scalars and arrays); they are
  allow-listed here by name, nothing else is.
"""
from __future__ import annotations

import copyreg
import os
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.logging import HistoryBuffer

from ..utils.fileio import atomic_write_bytes

LATEST_LINK = 'latest.pth'


@register_backend('atomic_local', force=True)
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with atomic ``put``/``put_text``."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write_bytes(filepath, obj)

    def put_text(self, obj: str, filepath: Union[str, Path], encoding: str = 'utf-8') -> None:
        atomic_write_bytes(filepath, obj.encode(encoding))


#: ``backend_args`` for mmengine's CheckpointHook / Runner.save_checkpoint.
ATOMIC_BACKEND_ARGS = dict(backend='atomic_local')


def rebuild_history_buffer(max_length: int, log_history: np.ndarray,
                           count_history: np.ndarray) -> HistoryBuffer:
    """Rebuild one of mmengine's log-scalar buffers from plain arrays (see below)."""
    return HistoryBuffer(list(log_history), list(count_history), max_length)


def _reduce_history_buffer(buf: HistoryBuffer):
    # mmengine pickles a HistoryBuffer with its dict of statistics *methods*, which
    # weights_only loading rightly refuses (it needs ``getattr``). We pickle it as data.
    return rebuild_history_buffer, (buf.max_length, np.asarray(buf._log_history),
                                    np.asarray(buf._count_history))


copyreg.pickle(HistoryBuffer, _reduce_history_buffer)


def _safe_globals() -> list:
    """The non-tensor types an mmengine checkpoint holds, allow-listed by name."""
    items: list[Any] = [rebuild_history_buffer, np.ndarray, np.dtype]
    # numpy array reconstruction helpers (moved between numpy 1.x and 2.x)
    for modname in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        try:
            mod = __import__(modname, fromlist=['_reconstruct', 'scalar'])
        except ImportError:
            continue
        items += [mod._reconstruct, mod.scalar]
        break
    # the dtype classes numpy 2 pickles (np.dtypes.Float64DType, ...)
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        items += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith('DType')]
    return items


def allow_checkpoint_globals() -> None:
    """Register the allow-list with torch (idempotent)."""
    torch.serialization.add_safe_globals(_safe_globals())


allow_checkpoint_globals()


def load_checkpoint_file(path: Union[str, Path], map_location: Any = 'cpu') -> dict:
    """Load a checkpoint under ``weights_only=True`` with a clear error for bad files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'checkpoint not found: {path}')
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except (EOFError, RuntimeError) as exc:
        raise RuntimeError(f'checkpoint {path} is truncated or corrupt: {exc}') from exc
    except Exception as exc:  # pickle.UnpicklingError for refused globals
        raise RuntimeError(
            f'checkpoint {path} could not be loaded with weights_only=True '
            f'(it holds an object that is not allow-listed): {exc}') from exc
    if not isinstance(ckpt, dict):
        raise RuntimeError(f'checkpoint {path} holds a {type(ckpt).__name__}, not a dict')
    return ckpt


def update_latest_link(work_dir: Union[str, Path], checkpoint: Union[str, Path]) -> Path:
    """Point ``work_dir/latest.pth`` at ``checkpoint`` (atomically, relative symlink)."""
    work_dir = Path(work_dir)
    link = work_dir / LATEST_LINK
    target = os.path.relpath(Path(checkpoint).resolve(), work_dir.resolve())
    tmp = work_dir / f'.{LATEST_LINK}.{os.getpid()}.tmp'
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)
    return link


def find_resume_checkpoint(work_dir: Union[str, Path]) -> Path | None:
    """The checkpoint ``--resume auto`` continues from, or None.

    ``work_dir/latest.pth`` (PYSKL's convention) first, then mmengine's ``last_checkpoint``
    record. A link or record pointing at a missing file is ignored.
    """
    work_dir = Path(work_dir)
    link = work_dir / LATEST_LINK
    if link.exists():
        return link.resolve()
    record = work_dir / 'last_checkpoint'
    if record.is_file():
        target = Path(record.read_text().strip())
        if not target.is_absolute():
            target = work_dir / target
        if target.is_file():
            return target
    return None
