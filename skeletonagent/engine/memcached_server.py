"""The memcached server behind Kinetics-Skeleton training: start, fill, stop.

With ``memcached=True`` in a config, :func:`~skeletonagent.engine.runner.train` and
:func:`~skeletonagent.engine.runner.test` run inside :func:`memcached_session`: local rank 0
starts memcached when none answers on the configured port, fills it from the kpfiles the
annotations name and sets a sentinel key; the other local ranks wait for the sentinel. On exit
only the server this process started is stopped, by its process id. The dataset reads through
the client in :mod:`skeletonagent.datasets.memcache`.

* :class:`MemcachedServer` — a memcached process we started (``-l 127.0.0.1 -p PORT -I
  ITEM -m MEM -M``), stopped by its process id only.
* :func:`fill_from_kpfiles` — load kpfiles into a server with a progress bar; every set is
  acknowledged (``noreply=False``), so a value the server refuses (over ``-I``, out of memory)
  raises instead of vanishing.

Optional config keys read by :func:`memcached_session`: ``mc_cfg`` (default
``('localhost', 22077)``), ``mc_item_size_mb`` (``-I``; default: estimated from the data),
``mc_memory_mb`` (``-m``; default: 1.5 × the kpfiles' size), ``mc_wait_s`` (how long other
ranks wait for the fill, default 7200).
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import hashlib
import math
import os
import os.path as osp
import pickle
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from mmengine.dist import barrier
from mmengine.logging import print_log
from pymemcache.exceptions import MemcacheError
from tqdm import tqdm

from ..datasets.config_view import config_datasets
from ..datasets.memcache import (
    DEFAULT_MC_CFG,
    INSTALL_HINT,
    MemcachedError,
    MemcachedReader,
    connect_host,
    load_kpfile,
    make_client,
    normalize_mc_cfg,
    probe_memcached,
)
from ..datasets.pose_dataset import PoseDataset
from .spec import RunSpec

__all__ = ['MEMCACHED_BINARY', 'MemcachedServer', 'collect_kpfiles', 'estimate_item_size_mb',
           'fill_from_kpfiles', 'memcached_session', 'sentinel_key', 'serving_memcached',
           'uses_memcached']

#: The memcached executable (a name looked up on PATH, or a path). Tests monkeypatch it.
MEMCACHED_BINARY = 'memcached'
#: memcached's limits on ``-I``.
MIN_ITEM_MB, MAX_ITEM_MB = 1, 1024


def _is_loopback(host: str) -> bool:
    return host in ('localhost', '127.0.0.1', '::1')


# ---------------------------------------------------------------------------------- server
def _linux_parent_death_signal() -> None:  # pragma: no cover - runs in the child
    # The server dies with the process that started it, even if that one is killed hard.
    try:
        ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort: no libc or prctl, no death signal
        pass


class MemcachedServer:
    """A memcached process this Python process started; :meth:`stop` ends it by pid only."""

    def __init__(self, process: subprocess.Popen, host: str, port: int, item_size_mb: int,
                 memory_mb: int, argv: list[str]) -> None:
        self.process = process
        self.host, self.port = host, port
        self.item_size_mb, self.memory_mb = item_size_mb, memory_mb
        self.argv = argv
        atexit.register(self.stop)

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    def start(cls, host: str = '127.0.0.1', port: int = DEFAULT_MC_CFG[1],
              item_size_mb: int = 64, memory_mb: int | None = None,
              binary: str | None = None, timeout: float = 15.0) -> MemcachedServer:
        """Start ``memcached -l HOST -p PORT -I ITEMm -m MEM -M`` and wait until it answers.

        ``-M`` makes a full server refuse new values (an error at fill time) rather than
        evict old ones (a missing key in the middle of training).
        """
        binary = MEMCACHED_BINARY if binary is None else binary
        exe = shutil.which(binary)
        if exe is None:
            raise MemcachedError(f'cannot start memcached: {binary!r} was not found'
                                 + (' on PATH' if os.sep not in binary else '') + '. '
                                 + INSTALL_HINT.format(port=port))
        host = connect_host(host)
        item_size_mb = int(min(max(item_size_mb, MIN_ITEM_MB), MAX_ITEM_MB))
        memory_mb = int(max(memory_mb or 0, 2 * item_size_mb, 64))
        argv = [exe, '-l', host, '-p', str(port), '-U', '0', '-I', f'{item_size_mb}m',
                '-m', str(memory_mb), '-M']
        if hasattr(os, 'geteuid') and os.geteuid() == 0:
            argv += ['-u', 'root']  # memcached refuses to run as root without -u
        state = probe_memcached(host, port)
        if state is not None:
            what = 'another memcached' if state == 'memcached' else 'a non-memcached service'
            raise MemcachedError(f'cannot start memcached on {host}:{port}: the port is taken '
                                 f'by {what}. '
                                 "Pick a free port with --cfg-options \"mc_cfg=('localhost',"
                                 f'{port + 1})".')
        try:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                preexec_fn=_linux_parent_death_signal if sys.platform.startswith('linux')
                else None)
        except OSError as exc:
            raise MemcachedError(f'cannot start memcached ({" ".join(argv)}): {exc}. '
                                 + INSTALL_HINT.format(port=port)) from exc
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                err = process.stderr.read().decode(errors='replace').strip()
                raise MemcachedError(
                    f'memcached exited with status {process.returncode} at start '
                    f'({" ".join(argv)}): {err or "no message"}. If the port is in use, pick '
                    "another with --cfg-options \"mc_cfg=('localhost',PORT)\". "
                    + INSTALL_HINT.format(port=port))
            if probe_memcached(host, port, timeout=0.5) == 'memcached':
                break
            if time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise MemcachedError(f'memcached ({" ".join(argv)}) did not answer on '
                                     f'{host}:{port} within {timeout:.0f} s. '
                                     + INSTALL_HINT.format(port=port))
            time.sleep(0.05)
        server = cls(process, host, port, item_size_mb, memory_mb, argv)
        print_log(f'memcached started (pid {process.pid}): {" ".join(argv)}', logger='current')
        return server

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0, graceful: bool = True) -> None:
        """End the process we started, by its pid (SIGTERM, after which memcached takes about
        a second to exit; ``graceful=False``: SIGKILL at once). Idempotent."""
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        if self.process.poll() is None:
            if graceful:
                self.process.terminate()
            else:
                self.process.kill()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            print_log(f'memcached (pid {self.pid}) stopped', logger='current')
        if self.process.stderr is not None:
            with contextlib.suppress(Exception):
                self.process.stderr.close()

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(pid={self.pid}, {self.host}:{self.port}, '
                f'-I {self.item_size_mb}m, -m {self.memory_mb})')



# ------------------------------------------------------------------------------------ fill
def _pickled_size(value: Any) -> int:
    return len(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


def _rows(pack: Any) -> int:
    kp = pack.get('keypoint') if isinstance(pack, Mapping) else None
    return int(len(kp)) if kp is not None and hasattr(kp, '__len__') else 0


def fill_from_kpfiles(mc_cfg: Any, kpfiles: Sequence[str | os.PathLike],
                      first: tuple[str, dict] | None = None, progress: bool = True,
                      batch: int = 64, item_size_mb: int | None = None) -> set[str]:
    """Store every pack of every kpfile under its ``frame_dir``; returns the keys stored.

    Every store is acknowledged (``noreply=False``); a value the server refuses raises
    :class:`MemcachedError` naming the key, the kpfile and the value's size. ``first`` is an
    already loaded ``(path, packs)`` for one of the kpfiles (saves loading it twice).
    """
    host, port = normalize_mc_cfg(mc_cfg)
    client = make_client((host, port))
    stored: set[str] = set()
    bar = tqdm(total=len(kpfiles), desc=f'filling memcached {host}:{port}', unit='kpfile',
               disable=not progress, file=sys.stderr)
    try:
        for path in kpfiles:
            if first is not None and osp.abspath(first[0]) == osp.abspath(path):
                packs = first[1]
            else:
                packs = load_kpfile(path)
            items = list(packs.items())
            for start in range(0, len(items), batch):
                chunk = dict(items[start:start + batch])
                try:
                    failed = client.set_many(chunk, noreply=False)
                except MemcacheError as exc:
                    # find the culprit: store one by one
                    for key, value in chunk.items():
                        try:
                            client.set(key, value, noreply=False)
                        except MemcacheError as one:
                            size = _pickled_size(value)
                            limit = f' (-I {item_size_mb}m)' if item_size_mb else ''
                            raise MemcachedError(
                                f'memcached at {host}:{port} refused key {key!r} from kpfile '
                                f'{path} ({size / 2**20:.2f} MiB pickled{limit}): '
                                f'{type(one).__name__}: {one}. Raise mc_item_size_mb (-I) or '
                                'mc_memory_mb (-m) in the config, or restart the server '
                                'with a larger -I / -m.') from one
                    raise MemcachedError(f'memcached at {host}:{port} failed while storing '
                                         f'kpfile {path}: {exc}') from exc
                except OSError as exc:
                    raise MemcachedError(f'lost the connection to memcached at {host}:{port} '
                                         f'while storing kpfile {path}: {exc}') from exc
                if failed:
                    raise MemcachedError(f'memcached at {host}:{port} did not store keys '
                                         f'{list(failed)[:5]} from kpfile {path}')
                stored.update(chunk)
            bar.update(1)
            bar.set_postfix(videos=len(stored))
    finally:
        bar.close()
        with contextlib.suppress(Exception):
            client.close()
    return stored


def sentinel_key(kpfiles: Iterable[str | os.PathLike]) -> str:
    """The key rank 0 sets once the server holds ``kpfiles`` (their paths, sizes, mtimes)."""
    digest = hashlib.sha1()
    for path in sorted(osp.abspath(p) for p in kpfiles):
        st = os.stat(path)
        digest.update(f'{path}\0{st.st_size}\0{st.st_mtime_ns}\n'.encode())
    return f'skeletonagent:filled:{digest.hexdigest()}'


# -------------------------------------------------------------------------- the session
def _dataset_cfgs(cfg: Mapping) -> list[Mapping]:
    """The config's datasets that read files, every split (the server serves them all)."""
    return [entry.settings for entry in config_datasets(cfg)]


def uses_memcached(cfg: Mapping) -> bool:
    """True when the config asks for memcached (top level or on a dataset)."""
    return bool(cfg.get('memcached')) or any(ds.get('memcached') for ds in _dataset_cfgs(cfg))


def _resolve_kpfile(raw_file: str, ann_file: str) -> str:
    if osp.isabs(raw_file):
        return raw_file
    tried = [osp.abspath(raw_file), osp.join(osp.dirname(osp.abspath(ann_file)), raw_file)]
    for path in tried:
        if osp.isfile(path):
            return path
    raise MemcachedError(f'kpfile {raw_file!r} named by {ann_file} was not found (tried '
                         f'{", ".join(tried)}); extract the kpfiles where the annotations '
                         'expect them (PYSKL: under data/k400/) or run from that directory')


def collect_kpfiles(cfg: Mapping) -> tuple[list[str], dict[str, str], int]:
    """The kpfiles the config's memcached datasets name, every key they need (key → its
    kpfile), and the most skeleton rows of one video (0 if unknown)."""
    seen: set[tuple] = set()
    kpfiles: dict[str, None] = {}
    keys: dict[str, str] = {}
    max_rows = 0
    top = bool(cfg.get('memcached'))
    for ds in _dataset_cfgs(cfg):
        if not (ds.get('memcached', top)) or ds.get('type', 'PoseDataset') != 'PoseDataset':
            continue
        ident = (ds.get('ann_file'), ds.get('split'), ds.get('valid_ratio'), ds.get('box_thr'))
        if ident in seen:
            continue
        seen.add(ident)
        args = {k: v for k, v in ds.items() if k not in ('type', 'pipeline')}
        args.update(pipeline=[], memcached=True, lazy_init=False)
        dataset = PoseDataset(**args)
        for info in dataset.video_infos:
            raw = info.get('raw_file')
            if raw is None:
                continue
            path = _resolve_kpfile(raw, dataset.ann_file)
            kpfiles.setdefault(path)
            keys[info['key']] = path
            inds = info.get('frame_inds')
            if inds is not None:
                max_rows = max(max_rows, len(inds))
    return list(kpfiles), keys, max_rows


def estimate_item_size_mb(first_packs: Mapping[str, Any], max_rows: int) -> int:
    """``-I`` in MiB: room for the largest video (measured in one kpfile, scaled to the most
    rows any video has), with a 25 % margin, rounded up to a power of two."""
    largest = 0
    per_row = 0.0
    for pack in first_packs.values():
        size = _pickled_size(pack)
        largest = max(largest, size)
        rows = _rows(pack)
        if rows:
            per_row = max(per_row, size / rows)
    need = max(largest, per_row * max_rows) * 1.25 + 64 * 1024
    mb = max(MIN_ITEM_MB, math.ceil(need / 2**20))
    return int(min(MAX_ITEM_MB, 2 ** math.ceil(math.log2(mb))))


def _local_rank() -> int:
    return int(os.environ.get('LOCAL_RANK', 0))


def _wait_for_fill(mc_cfg: tuple[str, int], key: str, timeout: float) -> None:
    host, port = mc_cfg
    reader = MemcachedReader(mc_cfg)
    deadline = time.monotonic() + timeout
    print_log(f'waiting for local rank 0 to fill memcached at {host}:{port}', logger='current')
    while True:
        with contextlib.suppress(MemcachedError):
            if reader.get(key) is not None:
                reader.close()
                return
        if time.monotonic() > deadline:
            reader.close()
            raise MemcachedError(f'memcached at {host}:{port} was not filled within '
                                 f'{timeout:.0f} s (sentinel {key!r} missing); see local rank '
                                 "0's log, or raise mc_wait_s")
        time.sleep(0.2)


@contextlib.contextmanager
def memcached_session(cfg: Mapping, progress: bool = True) -> Iterator[MemcachedServer | None]:
    """Serve a config's kpfiles from memcached for the duration of the block.

    Does nothing unless the config uses memcached. Local rank 0: when nothing answers on
    ``mc_cfg`` it starts memcached on 127.0.0.1 at that port; unless the server already holds
    these kpfiles (a sentinel key), fills it and checks every sample's key is there; then
    sets the sentinel. Other local ranks wait for the sentinel. On leaving, the server this
    process started (and only that one) is stopped by its pid. Yields that server or None.
    """
    if not uses_memcached(cfg):
        yield None
        return
    mc_cfg = cfg.get('mc_cfg') or next(
        (ds['mc_cfg'] for ds in _dataset_cfgs(cfg) if ds.get('mc_cfg')), None)
    host, port = normalize_mc_cfg(mc_cfg)
    kpfiles, keys, max_rows = collect_kpfiles(cfg)
    if not kpfiles:
        raise MemcachedError('memcached=True but no sample of the configured datasets names a '
                             'kpfile (raw_file): nothing to serve')
    key = sentinel_key(kpfiles)
    server: MemcachedServer | None = None
    if _local_rank() != 0:
        _wait_for_fill((host, port), key, float(cfg.get('mc_wait_s', 7200)))
    else:
        state = probe_memcached(host, port)
        if state == 'other':
            raise MemcachedError(f'port {port} on {host} is taken by a service that is not '
                                 "memcached; choose another with --cfg-options \"mc_cfg=("
                                 f"'localhost',{port + 1})\" or stop that service. "
                                 + INSTALL_HINT.format(port=port))
        first = None
        try:
            if state is None:
                if not _is_loopback(host):
                    raise MemcachedError(f'no memcached answers at {host}:{port}, and only a '
                                         'local one (localhost / 127.0.0.1) is started '
                                         'automatically')
                first = (kpfiles[0], load_kpfile(kpfiles[0]))
                item_mb = cfg.get('mc_item_size_mb') or estimate_item_size_mb(first[1],
                                                                              max_rows)
                total = sum(os.path.getsize(p) for p in kpfiles)
                memory_mb = cfg.get('mc_memory_mb') or math.ceil(1.5 * total / 2**20) + 64
                server = MemcachedServer.start(host, port, int(item_mb), int(memory_mb))
            reader = MemcachedReader((host, port))
            filled = False
            with contextlib.suppress(MemcachedError):
                filled = reader.get(key) is not None
            if filled:
                print_log(f'memcached at {host}:{port} already holds these {len(kpfiles)} '
                          'kpfile(s); not filling it again', logger='current')
            else:
                stored = fill_from_kpfiles(
                    (host, port), kpfiles, first=first, progress=progress,
                    item_size_mb=server.item_size_mb if server else None)
                missing = [k for k in keys if k not in stored]
                if missing:
                    raise MemcachedError(
                        f'{len(missing)} sample(s) are in none of the kpfiles their raw_file '
                        f'names, e.g. {missing[0]!r} (expected in {keys[missing[0]]})')
                client = make_client((host, port))
                client.set(key, dict(kpfiles=len(kpfiles), videos=len(stored)), noreply=False)
                client.close()
                print_log(f'memcached at {host}:{port} filled with {len(stored)} videos from '
                          f'{len(kpfiles)} kpfile(s)', logger='current')
            reader.close()
        except BaseException:
            if server is not None:
                server.stop()
            raise
    try:
        yield server
    except BaseException:
        if server is not None:
            server.stop()
        raise
    else:
        if server is not None:
            barrier()  # the other ranks may still read from it (no-op in one process)
            server.stop()


def serving_memcached(func: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``func(spec, ...)`` inside :func:`memcached_session` for the run's config (the
    runner's train and test entry points: no tool has to remember it). ``spec`` is a
    :class:`~.spec.RunSpec` or a config."""
    @functools.wraps(func)
    def wrapper(spec: Any, *args: Any, **kwargs: Any) -> Any:
        with memcached_session(spec.cfg if isinstance(spec, RunSpec) else spec):
            return func(spec, *args, **kwargs)
    return wrapper
