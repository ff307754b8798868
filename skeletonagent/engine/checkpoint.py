"""Checkpoint files: plain contents, atomic writes, one loader, the ``latest.pth`` link.

* Plain contents: tensors, numbers, strings and containers only, so any loader reads a
  checkpoint with ``torch.load(path, weights_only=True)`` without importing this package.
  :class:`PlainCheckpointHook` (registered by ``build_runner``) converts mmengine's log-scalar
  ``HistoryBuffer`` objects and numpy values before every save and rebuilds the buffers on
  load, so ``--resume`` restores the message hub as before.
* Atomic writes: mmengine writes through our ``atomic_local`` file backend (temporary file,
  fsync, rename), so a killed run never leaves a half-written checkpoint.
* One loader: :func:`load_checkpoint_file` (one :class:`CheckpointError` line per way a file
  can be wrong), :func:`check_checkpoint_config` (another stream or dataset) and
  :func:`load_model_weights` (strict), shared by training, ``tools/test.py``,
  ``tools/infer.py`` and :func:`skeletonagent.apis.init_recognizer`.
* Others' checkpoints (PYSKL, mmcv, the official code) may hold numpy values, ours from before
  the plain format a ``rebuild_history_buffer`` call: :data:`FOREIGN_GLOBALS`, allowed only
  inside :func:`load_checkpoint_file`, and for mmengine's loader by
  :func:`register_checkpoint_globals` when a runner is built. Nothing is registered at import.
"""
from __future__ import annotations

import ast
import hashlib
import logging
import os
import pickle
import re
import zipfile
from collections import OrderedDict, deque
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer, print_log
from mmengine.runner.checkpoint import find_latest_checkpoint

from ..datasets.config_view import config_datasets
from ..errors import SkeletonAgentError
from ..registry import HOOKS
from ..utils.fileio import TEMP_SUFFIX, atomic_write_bytes

__all__ = ['ATOMIC_BACKEND_ARGS', 'AtomicLocalBackend', 'CheckpointError',
           'CheckpointMismatchError', 'FOREIGN_GLOBALS', 'LATEST_LINK', 'PlainCheckpointHook',
           'atomic_write_bytes', 'check_checkpoint_config', 'checkpoint_state_dict',
           'find_resume_checkpoint', 'load_checkpoint_file', 'load_model_weights',
           'plain_checkpoint', 'register_checkpoint_globals', 'remove_stale_temp_files',
           'state_digest', 'update_latest_link']

PathLike = Union[str, Path]

LATEST_LINK = 'latest.pth'
#: How many keys of each kind a mismatch message lists (the counts are always given).
SHOWN_KEYS = 5


@register_backend('atomic_local', force=True)
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with atomic ``put``/``put_text``."""

    def put(self, obj: bytes, filepath: str | Path) -> None:
        atomic_write_bytes(filepath, obj)

    def put_text(self, obj: str, filepath: str | Path, encoding: str = 'utf-8') -> None:
        atomic_write_bytes(filepath, obj.encode(encoding))


#: ``backend_args`` for mmengine's CheckpointHook / Runner.save_checkpoint.
ATOMIC_BACKEND_ARGS = dict(backend='atomic_local')


# --------------------------------------------------------------------------- errors
class CheckpointError(SkeletonAgentError, ValueError):
    """A file that cannot be used as a checkpoint: truncated, not a checkpoint at all, holding
    objects ``weights_only`` refuses, or not fitting the model. The message's first line says
    what is wrong and names the file; further lines, if any, give details."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint whose weights or training settings do not fit the model built from the
    config; the message counts the missing / unexpected keys and shape mismatches and lists
    the first few of each (all are in :attr:`missing_keys`, :attr:`unexpected_keys` and
    :attr:`shape_mismatches`)."""

    def __init__(self, message: str, missing: list[str] | None = None,
                 unexpected: list[str] | None = None,
                 shapes: list[tuple[str, tuple, tuple]] | None = None) -> None:
        super().__init__(message)
        self.missing_keys = list(missing or [])
        self.unexpected_keys = list(unexpected or [])
        self.shape_mismatches = list(shapes or [])


# --------------------------------------------------------------------------- plain contents
_HISTORY_FIELDS = frozenset({'log_history', 'count_history', 'max_length'})


def rebuild_history_buffer(max_length: int, log_history: Any, count_history: Any) -> dict:
    """The plain form of one of mmengine's log-scalar buffers. (Checkpoints written before
    the plain format pickled each buffer as a call of this function: it stays allow-listed
    by this name in :data:`FOREIGN_GLOBALS` to read them.)"""
    return dict(log_history=np.asarray(log_history).tolist(),
                count_history=np.asarray(count_history).tolist(), max_length=int(max_length))


def plain_checkpoint(value: Any, where: str = 'checkpoint') -> Any:
    """``value`` with every object ``weights_only`` loading refuses replaced by plain data:
    mmengine's ``HistoryBuffer`` → ``dict(log_history, count_history, max_length)``, numpy
    arrays → tensors (object arrays → lists), numpy scalars → Python numbers, mapping and
    sequence subclasses → dict / list / tuple, paths → strings. Anything else that is not plain
    is kept and logged as a warning naming its key (``weights_only`` loaders would refuse it)."""
    if isinstance(value, np.generic):   # before the builtins: np.float64 is a float
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str, bytes, torch.Tensor,
                                           torch.dtype, torch.device, torch.Size)):
        return value
    if isinstance(value, HistoryBuffer):
        return rebuild_history_buffer(value.max_length, value._log_history,
                                      value._count_history)
    if isinstance(value, np.ndarray):
        if value.dtype.kind in 'biufc':
            return torch.from_numpy(np.ascontiguousarray(value))
        return plain_checkpoint(value.tolist(), where)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, dict):
        out = OrderedDict() if isinstance(value, OrderedDict) else {}
        for key, sub in value.items():
            out[plain_checkpoint(key, where)] = plain_checkpoint(sub, f'{where}[{key!r}]')
        return out
    if isinstance(value, (list, tuple, deque)):
        items = [plain_checkpoint(v, f'{where}[{i}]') for i, v in enumerate(value)]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, (set, frozenset)):
        return type(value)(plain_checkpoint(v, where) for v in value)
    print_log(f'{where} holds a {type(value).__module__}.{type(value).__qualname__}: '
              'torch.load(weights_only=True) will refuse this checkpoint', logger='current',
              level=logging.WARNING)
    return value


def _restore_message_hub(state: Any) -> None:
    """Turn the plain log scalars of a message hub state back into ``HistoryBuffer``s (what
    ``MessageHub.load_state_dict`` expects), in place."""
    scalars = state.get('log_scalars') if isinstance(state, dict) else None
    if not isinstance(scalars, dict):
        return
    for key, value in scalars.items():
        if isinstance(value, dict) and set(value) == _HISTORY_FIELDS:
            scalars[key] = HistoryBuffer(list(value['log_history']),
                                         list(value['count_history']), int(value['max_length']))


@HOOKS.register_module()
class PlainCheckpointHook(Hook):
    """Checkpoints of plain data (see the module docstring).

    Runs last before a save (after the hooks that add entries: agent state, random state)
    and converts the whole checkpoint with :func:`plain_checkpoint`; after a load it rebuilds
    the message hub's log-scalar buffers for mmengine's resume.
    """

    priority = 'LOWEST'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        plain = plain_checkpoint({k: v for k, v in checkpoint.items() if k != 'state_dict'})
        checkpoint.update(plain)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        _restore_message_hub(checkpoint.get('message_hub'))


# --------------------------------------------------------------------------- reading
def _numpy_globals() -> list:
    items: list[Any] = [np.ndarray, np.dtype]
    for modname in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        try:
            mod = __import__(modname, fromlist=['_reconstruct', 'scalar'])
        except ImportError:
            continue
        items += [mod._reconstruct, mod.scalar]
        break
    dtypes = getattr(np, 'dtypes', None)   # numpy 2 pickles dtype classes (Float64DType, ...)
    if dtypes is not None:
        items += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith('DType')]
    return items


#: What ``weights_only`` loading needs for checkpoints not written in the plain format:
#: numpy scalars and arrays (PYSKL, mmcv, the official code) and our earlier log buffers.
FOREIGN_GLOBALS: list = _numpy_globals() + [rebuild_history_buffer]


def register_checkpoint_globals() -> None:
    """Allow :data:`FOREIGN_GLOBALS` for every ``torch.load(weights_only=True)`` of this
    process (mmengine's ``--resume`` / ``load_from`` of such a file). Called when a runner is
    built; idempotent."""
    torch.serialization.add_safe_globals(FOREIGN_GLOBALS)


#: The pickled magic number that starts torch's legacy (pre-1.6, non-zip) format.
_LEGACY_MAGIC = pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2)[:12]


def _not_a_checkpoint(path: Path, head: bytes) -> CheckpointError | None:
    """A :class:`CheckpointError` when ``path`` is plainly not a torch file, else None."""
    if not head:
        what = 'it is empty'
    elif head.startswith(b'PK\x03\x04'):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return None             # a cut archive: torch.load says truncated or corrupt
        if any(n.endswith('/data.pkl') or n == 'data.pkl' for n in names):
            return None
        what = 'it is a zip archive without the data.pkl torch.save writes'
    elif head.startswith(_LEGACY_MAGIC):
        return None
    elif head.startswith(b'\x93NUMPY'):
        what = 'it is a numpy .npy array'
    elif head[:1] == b'\x80':
        what = ('it is a plain Python pickle (an annotation, prediction or score file?), '
                'not written by torch.save')
    elif all(32 <= c < 127 or c in (9, 10, 13) for c in head[:64]):
        what = 'it is a text file'
    else:
        what = 'its format is unknown'
    return CheckpointError(f'{path} is not a PyTorch checkpoint: {what}; give a .pth file '
                           'written by training (work_dir/latest.pth, epoch_N.pth, best_*.pth)')


def _first_line(exc: BaseException) -> str:
    """The first sentence of an exception's message (torch's run over several lines)."""
    text = str(exc).strip()
    return text.splitlines()[0].split('. ')[0].strip().rstrip('.') if text else \
        type(exc).__name__


def load_checkpoint_file(path: PathLike, map_location: Any = 'cpu') -> dict:
    """Read a checkpoint with ``torch.load(weights_only=True)``; returns its dict.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: the file is empty, not a torch file (a pickle, an array, text...),
            truncated or corrupt, holds objects other than plain data (the first one is
            named; they are never unpickled), or holds something other than a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'checkpoint not found: {path}')
    with open(path, 'rb') as f:
        head = f.read(64)
    refused = _not_a_checkpoint(path, head)
    if refused is not None:
        raise refused
    try:
        with torch.serialization.safe_globals(FOREIGN_GLOBALS):
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r'GLOBAL ([\w.]+)', str(exc))
        what = f'a reference to {found.group(1)}' if found else 'an object that is not plain data'
        raise CheckpointError(
            f'checkpoint {path} holds {what}, which torch.load(weights_only=True) refuses: '
            'only tensors, numbers, strings and containers of them are read (unpickling '
            'other objects could run code); it was not loaded') from None
    except (EOFError, RuntimeError, OSError, KeyError, ValueError) as exc:
        raise CheckpointError(f'checkpoint {path} is truncated or corrupt: '
                              f'{_first_line(exc)}') from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f'checkpoint {path} holds a {type(ckpt).__name__}, not a dict of '
                              'weights (a state_dict or a training checkpoint)')
    return ckpt


def checkpoint_state_dict(ckpt: dict) -> dict:
    """The weights of a loaded checkpoint: its ``state_dict`` entry (mmengine, mmcv/PYSKL and
    official SkeletonAgent files) or the dict itself (a bare ``model.state_dict()``), with a
    ``module.`` prefix left by a distributed wrapper removed."""
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else ckpt
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError('the checkpoint holds no state_dict of tensors')
    if state and all(k.startswith('module.') for k in state):
        state = {k[len('module.'):]: v for k, v in state.items()}
    return state


def _listed(title: str, lines: list[str]) -> str:
    shown = ''.join(f'\n    {line}' for line in lines[:SHOWN_KEYS])
    more = f'\n    ... and {len(lines) - SHOWN_KEYS} more' if len(lines) > SHOWN_KEYS else ''
    return f'  {title}:{shown}{more}'


def _count(n: int, word: str) -> str:
    return f'{n} {word}' + ('' if n == 1 else 'es' if word.endswith('h') else 's')


def load_model_weights(model: torch.nn.Module, checkpoint: PathLike | dict,
                       map_location: Any = 'cpu', name: PathLike | None = None,
                       cfg: Any = None) -> dict:
    """Load a checkpoint (path or loaded dict) into ``model``, strictly; returns the
    checkpoint dict.

    With ``cfg`` (the config the model was built from), a checkpoint trained for another
    stream or dataset is refused first (:func:`check_checkpoint_config`). The model's own
    ``load_state_dict`` hooks apply (the recognizer ignores text-encoder weights, e.g. an
    official checkpoint's ``backbone.model_text_dict.*``). Any other difference raises
    :class:`CheckpointMismatchError`: weights whose shapes differ, keys of the model missing
    from the file, keys of the file unknown to the model, counted on the first line and the
    first few of each listed. ``name`` names a checkpoint given as a dict in the messages.
    The model's weights are undefined after such an error.
    """
    source = str(name if name is not None else
                 (checkpoint if not isinstance(checkpoint, dict) else '(given as a dict)'))
    ckpt = checkpoint if isinstance(checkpoint, dict) else load_checkpoint_file(checkpoint,
                                                                              map_location)
    if cfg is not None:
        check_checkpoint_config(ckpt, cfg, source)
    try:
        state = checkpoint_state_dict(ckpt)
    except CheckpointError:
        raise CheckpointError(f'checkpoint {source} holds no state_dict of tensors') from None
    own = model.state_dict()
    shapes = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state.items()
              if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if shapes:   # torch raises on these even when not strict; drop them to count the rest
        state = {k: v for k, v in state.items() if k not in {s[0] for s in shapes}}
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:   # a mismatch only the model's own load hooks revealed
        found = re.findall(r'size mismatch for ([^:]+):', str(exc))
        raise CheckpointMismatchError(
            f'checkpoint {source} does not fit the model ({type(model).__name__} built from '
            f'the config): {_count(len(found), "size mismatch")}'
            + (f'\n{_listed("size mismatches", found)}' if found else
               f'\n  {_first_line(exc)}'), [], [], [(k, (), ()) for k in found]) from None
    mismatched = {s[0] for s in shapes}
    missing = [k for k in result.missing_keys if k not in mismatched]
    unexpected = list(result.unexpected_keys)
    if shapes or missing or unexpected:
        counts = [f'{_count(n, w)}' for n, w in ((len(shapes), 'size mismatch'),
                                                 (len(missing), 'missing key'),
                                                 (len(unexpected), 'unexpected key')) if n]
        parts = [f'checkpoint {source} does not fit the model ({type(model).__name__} built '
                 f'from the config): {", ".join(counts)}; is it a checkpoint of this config '
                 '(backbone, stream, number of classes)?']
        if shapes:
            parts.append(_listed('size mismatches (checkpoint shape, model shape)',
                                 [f'{k}: {list(a)} vs {list(b)}' for k, a, b in shapes]))
        if missing:
            parts.append(_listed('missing keys: in the model, not in the checkpoint', missing))
        if unexpected:
            parts.append(_listed('unexpected keys: in the checkpoint, not in the model',
                                 unexpected))
        raise CheckpointMismatchError('\n'.join(parts), missing, unexpected, shapes)
    return ckpt


# --------------------------------------------------------------------------- work dir files
def update_latest_link(work_dir: PathLike, checkpoint: PathLike) -> Path:
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


def find_resume_checkpoint(work_dir: PathLike) -> Path | None:
    """The checkpoint ``--resume auto`` continues from, or None: the last complete one.

    Candidates are ``work_dir/latest.pth`` (PYSKL's convention), mmengine's
    ``last_checkpoint`` record (read by mmengine's ``find_latest_checkpoint``) and the periodic
    ``epoch_N.pth`` / ``iter_N.pth`` files; the most recently written one wins. Checkpoints
    are written to a temporary name and renamed, so every one of these names holds a
    complete file; a run killed after saving a checkpoint but before moving the link (or
    writing the record) still resumes from that checkpoint. A link or record pointing at a
    missing file is ignored.
    """
    work_dir = Path(work_dir)
    candidates: list[Path] = []
    link = work_dir / LATEST_LINK
    if link.exists():
        candidates.append(link.resolve())
    if (work_dir / 'last_checkpoint').is_file():
        try:
            text = find_latest_checkpoint(str(work_dir)) or ''
        except (OSError, UnicodeDecodeError):
            text = ''
        target = work_dir / text if text else None   # an absolute record stays absolute
        if target is not None and target.is_file():
            candidates.append(target.resolve())
    if work_dir.is_dir():
        candidates += [p.resolve() for p in work_dir.iterdir()
                       if _PERIODIC.match(p.name) and p.is_file()]

    def newest(path: Path):
        match = _PERIODIC.match(path.name)
        return (path.stat().st_mtime_ns, int(match.group(2)) if match else -1)
    return max(candidates, key=newest) if candidates else None


def remove_stale_temp_files(work_dir: PathLike) -> list[Path]:
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
_IDENTITY_KEYS = ('type', 'llm_modality', 'num_classes', 'layout', 'joint_cfg', 'text_key',
                  'text_dim')
#: Pipeline transforms that compute the stream's features (joint, bone, motion, ...).
_FEATURE_TRANSFORMS = ('GenSkeFeat', 'JointToBone', 'JointToKB', 'ToMotion', 'MergeSkeFeat')


def _literal(node):
    """A config value from the checkpoint's dumped config, without executing anything."""
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
    tests = config_datasets(cfg, 'test')
    pipeline = (tests[0].settings.get('pipeline') or []) if tests else []
    feats = [{k: t[k] for k in ('type', 'feats') if k in t} for t in pipeline
             if isinstance(t, dict) and t.get('type') in _FEATURE_TRANSFORMS]
    found['data.test.pipeline (feature transforms)'] = feats
    return found


def _is_text_encoder_key(key: str) -> bool:
    return key.startswith('model.text_encoder.') or key.rsplit('.', 1)[-1] in ('text_dim',
                                                                                 'text_key')


def _cli_value(value) -> str:
    return value if isinstance(value, str) else repr(value)


def check_checkpoint_config(ckpt: dict, cfg: Any, source: PathLike = '') -> None:
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
    text = [k for k in diff if _is_text_encoder_key(k)]
    if diff and len(text) == len(diff):
        override = ' '.join(f'{k}={_cli_value(v)}' for k, v in theirs.items()
                            if _is_text_encoder_key(k))
        raise CheckpointMismatchError(
            f'checkpoint {source} was trained with another text encoder than the config '
            f'({", ".join(f"{k}: checkpoint {theirs[k]!r}, config {mine[k]!r}" for k in text)}); '
            f'give the same settings it was trained with: --cfg-options {override}')
    if diff:
        lines = '\n'.join(f'    {k}: checkpoint {theirs[k]!r}, config {mine[k]!r}' for k in diff)
        what = dict.fromkeys(k.split(' ', 1)[1].strip('()') if ' ' in k else k.rsplit('.', 1)[-1]
                             for k in diff)
        raise CheckpointMismatchError(
            f'checkpoint {source} was trained for another stream or dataset than the config '
            f'(differing: {", ".join(what)}); give the checkpoint of this config:\n{lines}')
