"""Cache of class-description embeddings, keyed by a hash of the texts and the encoder key."""
from __future__ import annotations

import hashlib
import io
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torch

from ...utils.fileio import atomic_write_bytes

__all__ = ['TextEmbeddingCache', 'texts_digest']


def texts_digest(texts: Sequence[str], encoder_key: str, dim: int | None = None) -> str:
    """SHA-256 hex digest naming an embedding table: encoder key, size and every text."""
    h = hashlib.sha256()
    h.update(f'{encoder_key}\x00{dim}\x00{len(texts)}\x00'.encode())
    for text in texts:
        data = str(text).encode('utf-8')
        h.update(len(data).to_bytes(8, 'little'))
        h.update(data)
    return h.hexdigest()


class TextEmbeddingCache:
    """Embeddings of description lists (n×dim), computed once per (encoder key, texts).

    Keeps the ``max_entries`` most recently used tables in memory and, with ``directory``,
    also stores them as ``<digest>.pt`` files (reused across runs). Only meant for frozen
    encoders: the tables are computed without gradient.
    """

    def __init__(self, directory: str | os.PathLike | None = None, max_entries: int = 4) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.max_entries = max(1, int(max_entries))
        self._tables: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.misses = 0
        self._lock = threading.RLock()   # the agent's background thread encodes through it too

    def __len__(self) -> int:
        return len(self._tables)

    def clear(self) -> None:
        self._tables.clear()

    def get(self, encoder, texts: Sequence[str], device: torch.device | str | None = None) -> torch.Tensor:
        """The (len(texts), encoder.dim) embedding table of ``texts``, on ``device``."""
        with self._lock:
            return self._get(encoder, texts, device)

    def _get(self, encoder, texts: Sequence[str], device: torch.device | str | None) -> torch.Tensor:
        texts = [str(t) for t in texts]
        digest = texts_digest(texts, encoder.key, encoder.dim)
        table = self._tables.get(digest)
        if table is None:
            table = self._load(digest)
        if table is None:
            self.misses += 1
            with torch.no_grad():
                table = encoder.encode(texts).detach().float()
            self._store(digest, table)
        self._tables[digest] = table
        self._tables.move_to_end(digest)
        while len(self._tables) > self.max_entries:
            self._tables.popitem(last=False)
        return table if device is None else table.to(device)

    def _path(self, digest: str) -> Path | None:
        return None if self.directory is None else self.directory / f'{digest}.pt'

    def _load(self, digest: str) -> torch.Tensor | None:
        path = self._path(digest)
        if path is None or not path.is_file():
            return None
        return torch.load(path, map_location='cpu', weights_only=True)

    def _store(self, digest: str, table: torch.Tensor) -> None:
        path = self._path(digest)
        if path is None:
            return
        buffer = io.BytesIO()
        torch.save(table.cpu(), buffer)
        atomic_write_bytes(path, buffer.getvalue())
