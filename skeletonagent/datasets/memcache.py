"""Kinetics-Skeleton keypoints read from memcached, as PYSKL does: the client the dataset uses.

PYSKL's Kinetics-400 annotation file (``k400_hrnet.pkl``) is a table of contents: every
sample has ``frame_dir``, ``label``, ``total_frames``, ``img_shape``, ``frame_inds`` (one
frame index per detected skeleton), ``box_score``, ``valid`` and ``raw_file`` — the path of
the **kpfile** that holds its keypoints. A kpfile is a pickled ``dict`` mapping ``frame_dir``
to ``dict(keypoint=ndarray (rows, V, 3))`` (x, y, score per skeleton row), the compressed
form :class:`~skeletonagent.datasets.pipelines.DecompressPose` expands. (A kpfile may also be
a list of annotation dicts carrying ``frame_dir``/``filename``: PYSKL's cache helper accepts
both.)

* :class:`MemcachedReader` — what :class:`~skeletonagent.datasets.PoseDataset` uses with
  ``memcached=True``: a pymemcache client (pickle serde, ``noreply=False``) that survives
  fork and pickling (DataLoader workers open their own connection) and raises
  :class:`MemcachedError` naming the key and the sample when a key is missing.
* :func:`load_kpfile` reads a kpfile; :func:`probe_memcached` says what answers on a port.

Starting, filling and stopping a server is the engine's job
(:mod:`skeletonagent.engine.memcached_server`, entered by the runner's train and test).
"""
from __future__ import annotations

import contextlib
import os
import pickle
import socket
from collections.abc import Mapping
from typing import Any

from pymemcache import serde
from pymemcache.client.base import Client

from ..errors import SkeletonAgentError

__all__ = ['DEFAULT_MC_CFG', 'INSTALL_HINT', 'MemcachedError', 'MemcachedReader',
           'connect_host', 'load_kpfile', 'make_client', 'normalize_mc_cfg', 'probe_memcached']

#: PYSKL's default ``mc_cfg``.
DEFAULT_MC_CFG = ('localhost', 22077)

INSTALL_HINT = (
    'Install memcached (Debian/Ubuntu: `sudo apt-get install -y memcached`; RHEL/Fedora: '
    '`sudo dnf install memcached`; conda: `conda install -c conda-forge memcached`) so that '
    'training can start it, or start one yourself before training, e.g. '
    '`memcached -l 127.0.0.1 -p {port} -I 64m -m 32768 -d` (add `-u root` when running as '
    'root); training then uses and fills it.')


class MemcachedError(SkeletonAgentError, RuntimeError):
    """memcached is missing, unreachable, refused a value, or lacks a key."""


def normalize_mc_cfg(mc_cfg: Any) -> tuple[str, int]:
    """``('localhost', 22077)`` / ``['localhost', 22077]`` / ``'localhost:22077'`` → tuple."""
    if mc_cfg is None:
        return DEFAULT_MC_CFG
    if isinstance(mc_cfg, str):
        host, _, port = mc_cfg.rpartition(':')
        mc_cfg = (host or 'localhost', port)
    try:
        host, port = mc_cfg
        port = int(port)
    except (TypeError, ValueError):
        raise MemcachedError(f'mc_cfg must be (host, port), got {mc_cfg!r}') from None
    if not 0 < port < 65536:
        raise MemcachedError(f'mc_cfg port must lie in 1..65535, got {port}')
    return str(host), port


def connect_host(host: str) -> str:
    """The address to connect to: pymemcache connects to the first address getaddrinfo
    returns, and 'localhost' may resolve to ::1 first while the server the engine starts
    listens on 127.0.0.1 only."""
    return '127.0.0.1' if host == 'localhost' else host


def probe_memcached(host: str, port: int, timeout: float = 2.0) -> str | None:
    """What answers on ``host:port``: ``'memcached'``, ``'other'`` (some other service), or
    ``None`` (nothing listening)."""
    try:
        sock = socket.create_connection((connect_host(host), port), timeout=timeout)
    except OSError:
        return None
    try:
        sock.settimeout(timeout)
        sock.sendall(b'version\r\n')
        reply = b''
        while not reply.endswith(b'\r\n') and len(reply) < 256:
            chunk = sock.recv(256)
            if not chunk:
                break
            reply += chunk
    except OSError:
        return 'other'
    finally:
        sock.close()
    return 'memcached' if reply.startswith(b'VERSION ') else 'other'


def make_client(mc_cfg: Any, timeout: float = 30.0):
    """A pymemcache client for ``mc_cfg`` whose stores wait for the server's answer."""
    host, port = normalize_mc_cfg(mc_cfg)
    # default_noreply=False: every store waits for the server's answer, so a refused value
    # raises (pymemcache's default, noreply=True, drops such failures silently).
    return Client((connect_host(host), port), serde=serde.pickle_serde, connect_timeout=5.0,
                  timeout=timeout, no_delay=True, default_noreply=False)


class MemcachedReader:
    """Fetch per-video packs by key; one connection per process, reopened after fork.

    Pickling drops the connection (DataLoader workers started with spawn open their own).
    """

    def __init__(self, mc_cfg: Any = None) -> None:
        self.mc_cfg = normalize_mc_cfg(mc_cfg)
        self._client = None
        self._pid: int | None = None

    def __getstate__(self) -> dict:
        return dict(mc_cfg=self.mc_cfg, _client=None, _pid=None)

    def _get_client(self):
        if self._client is None or self._pid != os.getpid():
            self._client = make_client(self.mc_cfg)
            self._pid = os.getpid()
        return self._client

    def get(self, key: str, sample: Any = None) -> Any:
        """The value stored under ``key``; :class:`MemcachedError` if the key is missing."""
        host, port = self.mc_cfg
        value = None
        for attempt in range(2):  # one reconnect, as PYSKL does after a dropped connection
            try:
                value = self._get_client().get(key)
                break
            except (OSError, EOFError) as exc:
                self._client = None
                if attempt:
                    raise MemcachedError(
                        f'cannot read key {key!r} (sample {sample!r}) from memcached at '
                        f'{host}:{port}: {type(exc).__name__}: {exc}. Is the server running? '
                        + INSTALL_HINT.format(port=port)) from exc
            except Exception as exc:  # pymemcache's own errors (illegal key, server error)
                raise MemcachedError(f'memcached at {host}:{port} failed to get key {key!r} '
                                     f'(sample {sample!r}): {type(exc).__name__}: {exc}') from exc
        if value is None:
            raise MemcachedError(
                f'key {key!r} (sample {sample!r}) is not in memcached at {host}:{port}. The '
                'server was not filled from the kpfiles (train through tools/train.py or '
                'tools/test.py with memcached=True, which fill it), was restarted, or '
                'evicted it (start it with -M and enough -m memory).')
        return value

    def fetch_pack(self, key: str, sample: Any = None) -> dict:
        """The keypoint pack of one video (a dict merged into the sample)."""
        pack = self.get(key, sample)
        if not isinstance(pack, Mapping):
            host, port = self.mc_cfg
            raise MemcachedError(f'memcached at {host}:{port} holds a {type(pack).__name__} '
                                 f'under key {key!r} (sample {sample!r}), not a dict of '
                                 'keypoint fields')
        return dict(pack)

    def close(self) -> None:
        if self._client is not None and self._pid == os.getpid():
            with contextlib.suppress(Exception):
                self._client.close()
        self._client = None

    def __repr__(self) -> str:
        return f'{type(self).__name__}(mc_cfg={self.mc_cfg!r})'


# ---------------------------------------------------------------------------------- kpfiles
def load_kpfile(path: str | os.PathLike) -> dict[str, dict]:
    """A kpfile as ``{frame_dir: pack}`` (a dict file as is; a list keyed by frame_dir)."""
    try:
        with open(path, 'rb') as f:
            data = pickle.load(f)
    except FileNotFoundError:
        raise MemcachedError(f'kpfile not found: {path}') from None
    except Exception as exc:
        raise MemcachedError(f'kpfile {path} cannot be unpickled: {type(exc).__name__}: '
                             f'{exc}') from exc
    if isinstance(data, Mapping):
        return dict(data)
    if isinstance(data, (list, tuple)) and data and isinstance(data[0], Mapping):
        key = 'frame_dir' if 'frame_dir' in data[0] else 'filename'
        if key not in data[0]:
            raise MemcachedError(f'kpfile {path}: a list whose items have neither frame_dir '
                                 'nor filename')
        return {item[key]: item for item in data}
    raise MemcachedError(f'kpfile {path} must hold a dict frame_dir -> dict(keypoint=...), got '
                         f'{type(data).__name__}')
