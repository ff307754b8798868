"""Atomic file writes: readers see the old file or the new one, never half of one."""
from __future__ import annotations

import errno
import os
import secrets
from pathlib import Path
from typing import Union

PathLike = Union[str, 'os.PathLike[str]']

#: Suffix of the temporary files the atomic writers create (named ``.<target name>.<random>``).
TEMP_SUFFIX = '.tmp'

#: What ran out, by errno, for the messages of failed writes.
_RAN_OUT = {
    errno.ENOSPC: 'No space left on device: the disk is full',
    errno.EDQUOT: 'Disk quota exceeded: the disk quota is used up',
    errno.EFBIG: 'File too large: the file size limit (ulimit -f) is reached',
}


def write_error_message(path: PathLike, exc: OSError) -> str:
    """``could not write <path>: <what ran out>``; the previous file is left as it was."""
    reason = _RAN_OUT.get(exc.errno) or exc.strerror or str(exc)
    return f'could not write {path}: {reason} (the previous {Path(path).name}, if any, is unchanged)'


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename it over ``path``.

    Parent folders are created. On failure (a full disk, say) the temporary file is removed,
    the previous ``path`` is left as it was, and the ``OSError`` names ``path``.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temp(path)
    except OSError as exc:
        raise OSError(exc.errno, write_error_message(path, exc)) from exc
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OSError(exc.errno, write_error_message(path, exc)) from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _create_temp(path: Path) -> tuple[int, str]:
    """Open a new ``.<name>.<random>.tmp`` beside ``path`` for writing.

    Unlike ``tempfile.mkstemp`` (always 0600), the file is created with mode 0666 less the
    user's umask, as ``open()`` creates files, so checkpoints, predictions and transcripts get
    the same permissions as logs and collaborators on a shared machine can read them.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_CLOEXEC', 0)
    for _ in range(100):
        tmp = str(path.parent / f'.{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}')
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f'no free temporary name beside {path}')


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable (best effort: some file systems cannot fsync a folder)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_text(path: PathLike, text: str, encoding: str = 'utf-8') -> Path:
    """:func:`atomic_write_bytes` for text (newlines written as given)."""
    return atomic_write_bytes(path, text.encode(encoding))
