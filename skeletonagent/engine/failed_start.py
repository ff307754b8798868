"""A run that fails before its first training iteration leaves its log and nothing else.

mmengine's Runner writes as it starts: a timestamped folder with the log, ``vis_data`` (the
dumped config, the scalars file, TensorBoard's event file, which TensorBoard then lists as a
run), the dumped config in the work dir; our hooks write ``run_info.json``, ``val_history.json``
and the agent's folder. When the run then fails (an LLM that cannot be reached in the initial
dialogue, a checkpoint that does not fit), :class:`WorkDirSnapshot` puts the work dir back as
it was: what the start created goes, what it changed is restored, and the new log stays so the
error can be read. What the checks before the Runner can find (the config, the data) never
gets this far (:mod:`.preflight`).
"""
from __future__ import annotations

import shutil
from pathlib import Path

__all__ = ['WorkDirSnapshot']

#: Files at the top of the work dir kept byte for byte to be restored (what the start
#: rewrites: run_info.json, val_history.json, the dumped config), up to this size.
_KEEP_BYTES = 16 * 1024 * 1024


class WorkDirSnapshot:
    """The top level of a work dir before a run starts (names; the bytes of small files)."""

    def __init__(self, work_dir: str | Path) -> None:
        self.work_dir = Path(work_dir)
        self.names: set[str] = set()
        self.saved: dict[str, bytes] = {}
        if not self.work_dir.is_dir():
            return
        for entry in self.work_dir.iterdir():
            self.names.add(entry.name)
            try:
                if entry.is_file() and not entry.is_symlink() \
                        and entry.stat().st_size <= _KEEP_BYTES:
                    self.saved[entry.name] = entry.read_bytes()
            except OSError:
                pass

    def restore(self, log_dir: str | Path | None, keep: tuple[str, ...] = ()) -> list[str]:
        """Undo the start: remove the entries that are new (the log folder ``log_dir`` keeps
        its ``.log`` files), restore the small files that changed. ``keep``: names left as
        they are (the work dir's lock). Returns what was removed or restored."""
        done: list[str] = []
        if not self.work_dir.is_dir():
            return done
        log_dir = Path(log_dir).resolve() if log_dir else None
        for entry in sorted(self.work_dir.iterdir()):
            if entry.name in keep:
                continue
            if entry.name not in self.names:
                if log_dir is not None and entry.resolve() == log_dir:
                    for inner in entry.iterdir():
                        if inner.suffix != '.log':
                            _remove(inner)
                            done.append(f'{entry.name}/{inner.name}')
                    continue
                _remove(entry)
                done.append(entry.name)
            elif entry.name in self.saved and entry.is_file() and not entry.is_symlink():
                try:
                    if entry.read_bytes() != self.saved[entry.name]:
                        entry.write_bytes(self.saved[entry.name])
                        done.append(entry.name)
                except OSError:
                    pass
        return done


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except OSError:
        pass
