"""``ResponseCache``: successful LLM answers on disk, keyed by the exact request.

A resumed or repeated run asks the same questions with the same settings; the cache answers
them without a call. The key is the sha256 of a canonical JSON of everything that changes
the answer (model, messages, temperature, max_tokens, extra_body, ...) and nothing that does
not (API key, endpoint, timeouts). One small JSON file per entry,
``<dir>/<key[:2]>/<key>.json``, written atomically (temp file + rename), so threads and
processes may share a cache: two writers of one key write the same answer, and a reader
sees a whole file or none. A corrupt entry is ignored with a warning and overwritten by the
next successful answer.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

from skeletonagent.utils.fileio import atomic_write_text

__all__ = ['ResponseCache', 'request_key']

logger = logging.getLogger(__name__)

PathLike = Union[str, 'os.PathLike[str]']

#: Bumped when the key's recipe changes, so old entries are never misread.
_KEY_VERSION = 1


def _canonical_json(request: Mapping[str, Any]) -> str:
    try:
        return json.dumps({'cache_key_version': _KEY_VERSION, 'request': request}, sort_keys=True,
                          ensure_ascii=False, separators=(',', ':'), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f'an LLM request must be plain JSON data to be cached: {exc}') from None


def request_key(request: Mapping[str, Any]) -> str:
    """The hex sha256 of ``request``'s canonical JSON (sorted keys, no whitespace)."""
    return hashlib.sha256(_canonical_json(request).encode('utf-8')).hexdigest()


class ResponseCache:
    """Answers of past requests in ``directory`` (created on first write).

    ``request`` is a JSON-able mapping of everything that determines the answer; callers
    build it the same way every time (see ``OpenAIChat``).
    """

    def __init__(self, directory: PathLike) -> None:
        self.directory = Path(directory).expanduser()

    def __repr__(self) -> str:
        return f'ResponseCache({str(self.directory)!r})'

    def path(self, key: str) -> Path:
        """Where the entry of ``key`` lives."""
        return self.directory / key[:2] / f'{key}.json'

    def get(self, request: Mapping[str, Any]) -> str | None:
        """The cached answer to ``request``, or None (a miss, or a corrupt entry)."""
        key = request_key(request)
        path = self.path(key)
        try:
            raw = path.read_text(encoding='utf-8')
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning('LLM response cache: cannot read %s (%s); asking again', path, exc)
            return None
        try:
            entry = json.loads(raw)
            text = entry['text']
            if entry.get('key') != key or not isinstance(text, str) or not text.strip():
                raise ValueError('wrong key or no answer')
        except (ValueError, KeyError, TypeError) as exc:
            logger.warning('LLM response cache: ignoring corrupt entry %s (%s); it will be '
                           'overwritten', path, exc)
            return None
        return text

    def put(self, request: Mapping[str, Any], text: str,
            usage: Mapping[str, int] | None = None) -> Path:
        """Store the successful answer ``text`` to ``request``; returns the entry's path."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError('only non-empty answers are cached')
        key = request_key(request)
        entry = {'key': key, 'text': text, 'usage': dict(usage or {}), 'created': time.time(),
                 'request': request}
        return atomic_write_text(self.path(key), json.dumps(entry, ensure_ascii=False, indent=1))

    def __contains__(self, request: Mapping[str, Any]) -> bool:
        return self.get(request) is not None

    def __len__(self) -> int:
        """Number of entry files (corrupt ones included)."""
        if not self.directory.is_dir():
            return 0
        return sum(1 for _ in self.directory.glob('??/*.json'))
