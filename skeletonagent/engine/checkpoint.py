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
import hashlib
import os
import re
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.logging import HistoryBuffer

from ..utils.fileio import TEMP_SUFFIX, atomic_write_bytes

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


class CheckpointMismatchError(RuntimeError):
    """A checkpoint whose weights do not fit the model built from the config; the message lists
    the missing and unexpected keys (and any shape mismatches)."""

    def __init__(self, message: str, missing: list[str] | None = None,
                 unexpected: list[str] | None = None) -> None:
        super().__init__(message)
        self.missing_keys = list(missing or [])
        self.unexpected_keys = list(unexpected or [])


def checkpoint_state_dict(ckpt: dict) -> dict:
    """The weights of a loaded checkpoint: its ``state_dict`` entry (mmengine, mmcv/PYSKL and
    official SkeletonAgent files) or the dict itself (a bare ``model.state_dict()``), with a
    ``module.`` prefix left by a distributed wrapper removed."""
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
    if not isinstance(state, dict):
        raise RuntimeError(f'checkpoint holds no state_dict (got {type(state).__name__})')
    if state and all(k.startswith('module.') for k in state):
        state = {k[len('module.'):]: v for k, v in state.items()}
    return state


def _key_list(title: str, keys: list[str], limit: int = 60) -> str:
    shown = '\n'.join(f'    {k}' for k in keys[:limit])
    more = f'\n    ... and {len(keys) - limit} more' if len(keys) > limit else ''
    return f'  {title} ({len(keys)}):\n{shown}{more}'


def load_model_weights(model: torch.nn.Module, checkpoint: Union[str, Path, dict],
                       map_location: Any = 'cpu', name: Union[str, Path, None] = None) -> dict:
    """Load a checkpoint (path or loaded dict) into ``model``, strictly.

    The model's own ``load_state_dict`` hooks apply first (the recognizer ignores text-encoder
    weights, e.g. an official checkpoint's ``backbone.model_text_dict.*``). Any other
    difference raises :class:`CheckpointMismatchError` naming every missing key (in the model,
    not in the file) and unexpected key (in the file, not in the model), and any shape
    mismatch. ``name`` names a checkpoint given as a dict in the messages. Returns the
    loaded checkpoint dict.
    """
    source = str(name if name is not None else
                 (checkpoint if not isinstance(checkpoint, dict) else '(given as a dict)'))
    ckpt = checkpoint if isinstance(checkpoint, dict) else load_checkpoint_file(checkpoint, map_location)
    state = checkpoint_state_dict(ckpt)
    model_name = type(model).__name__
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:   # shape mismatches are raised even when not strict
        raise CheckpointMismatchError(
            f'checkpoint {source} does not fit the model ({model_name} built from the config): '
            f'{exc}') from exc
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected:
        parts = [f'checkpoint {source} does not fit the model ({model_name} built from the '
                 'config); is it a checkpoint of this config (backbone, stream, number of classes)?']
        if missing:
            parts.append(_key_list('missing keys: in the model, not in the checkpoint', missing))
        if unexpected:
            parts.append(_key_list('unexpected keys: in the checkpoint, not in the model', unexpected))
        raise CheckpointMismatchError('\n'.join(parts), missing, unexpected)
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


#: Checkpoints mmengine's CheckpointHook writes each interval (not ``best_*``).
_PERIODIC = re.compile(r'^(epoch|iter)_(\d+)\.pth$')


def find_resume_checkpoint(work_dir: Union[str, Path]) -> Path | None:
    """The checkpoint ``--resume auto`` continues from, or None: the last complete one.

    Candidates are ``work_dir/latest.pth`` (PYSKL's convention), mmengine's
    ``last_checkpoint`` record and the periodic ``epoch_N.pth`` / ``iter_N.pth`` files;
    the most recently written one wins. Checkpoints are written to a temporary name and
    renamed, so every one of these names holds a complete file; a run killed after saving
    a checkpoint but before moving the link (or writing the record) still resumes from
    that checkpoint. A link or record pointing at a missing file is ignored.
    """
    work_dir = Path(work_dir)
    candidates: list[Path] = []
    link = work_dir / LATEST_LINK
    if link.exists():
        candidates.append(link.resolve())
    record = work_dir / 'last_checkpoint'
    try:
        text = record.read_text().strip() if record.is_file() else ''
    except OSError:
        text = ''
    if text:
        target = Path(text)
        if not target.is_absolute():
            target = work_dir / target
        if target.is_file():
            candidates.append(target.resolve())
    if work_dir.is_dir():
        candidates += [p.resolve() for p in work_dir.iterdir()
                       if _PERIODIC.match(p.name) and p.is_file()]

    def newest(path: Path):
        match = _PERIODIC.match(path.name)
        return (path.stat().st_mtime_ns, int(match.group(2)) if match else -1)
    return max(candidates, key=newest) if candidates else None


def remove_stale_temp_files(work_dir: Union[str, Path]) -> list[Path]:
    """Delete the temporary files a killed run's atomic writes left under ``work_dir``
    (``.<name>.<random>.tmp``: half-written checkpoints, transcripts, links). Call it only
    before anything writes there (rank 0, at the start of a resumed run). Returns them."""
    work_dir = Path(work_dir)
    removed: list[Path] = []
    if not work_dir.is_dir():
        return removed
    for path in work_dir.rglob(f'.*{TEMP_SUFFIX}'):
        if path.is_file() or path.is_symlink():
            try:
                path.unlink()
            except OSError:
                continue
            removed.append(path)
    return removed


def state_digest(obj: Any) -> str:
    """A short SHA-256 digest of nested dicts / lists / tensors / arrays / numbers (to log
    that a resumed run holds the state its checkpoint saved)."""
    h = hashlib.sha256()

    def feed(value) -> None:
        if isinstance(value, dict):
            h.update(b'{')
            for key in sorted(value, key=str):
                h.update(str(key).encode() + b':')
                feed(value[key])
            h.update(b'}')
        elif isinstance(value, (list, tuple)):
            h.update(b'[')
            for item in value:
                feed(item)
            h.update(b']')
        elif isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f'T{t.dtype}{tuple(t.shape)}'.encode())
            if t.numel():
                h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(value, np.ndarray):
            h.update(f'A{value.dtype}{value.shape}'.encode())
            h.update(np.ascontiguousarray(value).tobytes())
        else:
            h.update(repr(value).encode())
    feed(obj)
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- config match
#: Model settings that say which stream / dataset a checkpoint was trained for.
_IDENTITY_KEYS = ('type', 'llm_modality', 'num_classes', 'layout', 'joint_cfg', 'text_key')
#: Pipeline transforms that compute the stream's features (joint, bone, motion, ...).
_FEATURE_TRANSFORMS = ('GenSkeFeat', 'JointToBone', 'JointToKB', 'ToMotion', 'MergeSkeFeat')


def _literal(node):
    """A config value from the checkpoint's dumped config, without executing anything."""
    import ast
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == 'dict' \
            and not node.args:
        return {kw.arg: _literal(kw.value) for kw in node.keywords if kw.arg is not None}
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)}
    return ast.literal_eval(node)


def _dumped_config(text: str) -> dict:
    """Top-level ``name = value`` assignments of mmengine's ``pretty_text`` dump; values that
    are not plain literals / ``dict(...)`` calls are left out (the text is never executed)."""
    import ast
    out: dict = {}
    for stmt in ast.parse(text).body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 \
                and isinstance(stmt.targets[0], ast.Name):
            try:
                out[stmt.targets[0].id] = _literal(stmt.value)
            except (ValueError, TypeError, SyntaxError, RecursionError):
                continue
    return out


def _identity(cfg: Any) -> dict:
    """``{dotted key: value}`` of the settings in :data:`_IDENTITY_KEYS` and the test
    pipeline's feature transforms."""
    found: dict = {}

    def walk(value, prefix):
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(sub, f'{prefix}.{key}')
        elif prefix.rsplit('.', 1)[-1] in _IDENTITY_KEYS:
            found[prefix] = value
    walk(dict(cfg.get('model') or {}), 'model')
    data = cfg.get('data') or {}
    pipeline = ((data.get('test') or {}).get('pipeline') or []) if isinstance(data, dict) else []
    feats = [{k: t[k] for k in ('type', 'feats') if k in t} for t in pipeline
             if isinstance(t, dict) and t.get('type') in _FEATURE_TRANSFORMS]
    found['data.test.pipeline (feature transforms)'] = feats
    return found


def check_checkpoint_config(ckpt: dict, cfg: Any, source: Union[str, Path] = '') -> None:
    """Raise :class:`CheckpointMismatchError` when the config ``ckpt`` was trained with (its
    ``meta['cfg']``) differs from ``cfg`` in the stream or dataset settings (model types,
    ``llm_modality``, ``num_classes``, layout, the pipeline's feature transforms), naming the
    keys. Weights of the same shapes would otherwise load silently. A checkpoint without a
    dumped config (official, PYSKL) is not checked."""
    text = (ckpt.get('meta') or {}).get('cfg') if isinstance(ckpt.get('meta'), dict) else None
    if not isinstance(text, str):
        return
    try:
        saved = _dumped_config(text)
    except (SyntaxError, ValueError, RecursionError):
        return
    mine, theirs = _identity(cfg), _identity(saved)

    def norm(value):  # tuples and lists dump alike
        if isinstance(value, (list, tuple)):
            return [norm(v) for v in value]
        if isinstance(value, dict):
            return {k: norm(v) for k, v in value.items()}
        return value
    diff = [k for k in sorted(set(mine) | set(theirs))
            if k in mine and k in theirs and norm(mine[k]) != norm(theirs[k])]
    if diff:
        lines = '\n'.join(f'    {k}: checkpoint {theirs[k]!r}, config {mine[k]!r}' for k in diff)
        raise CheckpointMismatchError(
            f'checkpoint {source} was trained with another stream or dataset than the config '
            f'(mismatched keys):\n{lines}', [], [])
