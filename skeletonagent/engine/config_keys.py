"""Every key of a config is used, translated, or reported.

A PYSKL / official config is a Python file of top-level names. Each name is one of:

* a key of the schema (:data:`TOP_LEVEL_KEYS`, and each run plugin's section), used or
  translated onto mmengine's Runner by :mod:`.translate`; the keys inside its sections are
  listed in :data:`SECTION_KEYS` and :data:`LOGGER_HOOKS` (a plugin's by the plugin);
* a knob kept only so that official configs load (:mod:`.compat`, the one table of them):
  accepted, not used, and warned about when it disagrees with what the run uses;
* a variable the config file itself reads (``modality``, ``ann_file``, ``train_pipeline``);
* or unknown: :func:`check_config` raises a :class:`ConfigError` naming its config path and
  the nearest known keys (difflib), whether it came from the file or from ``--cfg-options``.

The dicts mmengine builds (``model``, ``data.train`` / ``val`` / ``test`` and their
pipelines, ``optimizer``, ``custom_hooks``) are checked against the signature of the class
their ``type`` names, recursively where the class builds nested configs (a backbone, a head,
a text encoder, a wrapped dataset). A class that takes ``**kwargs`` (the GCN backbones route
``gcn_*`` / ``tcn_*`` arguments to their units) cannot be checked exactly: a key one typo away
from one of its arguments (``in_channel`` for ``in_channels``) is reported; any other
unexpected argument is named with its config path when the model is built
(:func:`explain_unexpected_arguments`).
"""
from __future__ import annotations

import ast
import contextlib
import difflib
import inspect
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from mmengine.runner import Runner

from .. import registry as registries
from ..datasets.config_view import config_value
from ..plugin import CompatKey, RunPlugin
from ..registry import UnknownTypeError, describe_unknown_type
from .compat import all_compat_keys
from .errors import ConfigError
from .plugins import run_plugins

__all__ = ['UnknownConfigType', 'TOP_LEVEL_KEYS', 'SECTION_KEYS', 'LOADER_KEYS', 'LOGGER_HOOKS',
           'LR_CONFIG_KEYS', 'top_level_keys', 'check_config', 'config_files',
           'explain_unexpected_arguments']

#: Top-level keys of the PYSKL / official schema and what becomes of each.
TOP_LEVEL_KEYS: dict[str, str] = {
    'model': 'built from the MODELS registry (its keys checked against the classes)',
    'data': 'the train / val / test datasets and their loaders',
    'optimizer': 'optim_wrapper.optimizer (a paramwise_cfg goes to the optim_wrapper)',
    'optimizer_config': 'grad_clip: optim_wrapper.clip_grad',
    'lr_config': 'param_scheduler (CosineAnnealing, step or fixed, with a linear warmup)',
    'total_epochs': 'train_cfg.max_epochs',
    'checkpoint_config': 'the checkpoint hook',
    'evaluation': 'validation interval, metrics and top-k',
    'log_config': 'the logger interval and hooks; TensorBoard',
    'log_level': 'the log level',
    'work_dir': 'where the run writes',
    'load_from': 'fine-tuning: the weights training starts from (not used when resuming)',
    'resume_from': 'resuming: as --resume PATH (the command line wins)',
    'seed': 'the random seed when --seed is not given',
    'cudnn_benchmark': 'env_cfg.cudnn_benchmark',
    'mp_start_method': "the data workers' start method",
    'opencv_num_threads': "OpenCV's threads in data workers",
    'memcached': 'datasets read keypoints from memcached',
    'mc_cfg': "memcached's (host, port)",
    'auto_scale_lr': 'the lr follows the total batch',
    'ablation': 'what an ablation config turns off, in words (the start block says it)',
    'custom_hooks': 'more hooks, built from the HOOKS registry',
}


def top_level_keys(plugins: Sequence[RunPlugin] | None = None) -> dict[str, str]:
    """:data:`TOP_LEVEL_KEYS` and the section of each run plugin (the agent's ``agent``)."""
    plugins = run_plugins() if plugins is None else plugins
    return {**TOP_LEVEL_KEYS, **{p.section: p.description for p in plugins if p.section}}

#: Keys of a per-split loader override (``data.train_dataloader`` etc.).
LOADER_KEYS = ('videos_per_gpu', 'workers_per_gpu', 'persistent_workers', 'pin_memory',
               'drop_last')

#: Keys inside the dict sections of the schema.
SECTION_KEYS: dict[str, tuple[str, ...]] = {
    'data': ('videos_per_gpu', 'workers_per_gpu', 'persistent_workers', 'pin_memory',
             'train', 'val', 'test', 'train_dataloader', 'val_dataloader',
             'test_dataloader'),
    'data.train_dataloader': LOADER_KEYS,
    'data.val_dataloader': LOADER_KEYS,
    'data.test_dataloader': LOADER_KEYS,
    'optimizer_config': ('grad_clip',),
    'checkpoint_config': ('interval', 'max_keep_ckpts', 'save_optimizer'),
    'evaluation': ('interval', 'metrics', 'topk'),
    'log_config': ('interval', 'hooks', 'tensorboard'),
    'auto_scale_lr': ('enable', 'base_batch_size'),
}

#: ``lr_config`` keys (which policy uses which is checked by the translation).
LR_CONFIG_KEYS = ('policy', 'by_epoch', 'warmup', 'warmup_iters', 'warmup_ratio',
                  'warmup_by_epoch', 'min_lr', 'min_lr_ratio', 'step', 'gamma')

#: ``log_config.hooks`` entries: mmcv's logger hooks and the keys each may have. Text logs
#: are mmengine's logger (LoggerHook); TensorBoard is a visualizer backend. Any other hook
#: type is an error.
LOGGER_HOOKS: dict[str, tuple[str, ...]] = {
    'TextLoggerHook': ('interval', 'ignore_last', 'by_epoch'),
    'TensorboardLoggerHook': ('interval', 'ignore_last', 'by_epoch', 'log_dir'),
}

#: Model arguments built by another registry than the dict that holds them (others are
#: looked up in the holder's registry).
_NESTED_REGISTRY = {'pipeline': 'TRANSFORMS', 'text_encoder': 'TEXT_ENCODERS',
                    'dataset': 'DATASETS', 'datasets': 'DATASETS', 'backbone': 'MODELS',
                    'neck': 'MODELS', 'cls_head': 'MODELS', 'loss_cls': 'MODELS'}
#: Marks the message of an unknown ``type`` (``model.backbone.type: unknown model type ...``).
_TYPE_PROBLEM = '.type: '
#: How close (difflib ratio) an unknown argument of a ``**kwargs`` class must be to one of its
#: arguments to be reported as a typo of it.
_TYPO_CUTOFF = 0.85


class UnknownConfigType(ConfigError, UnknownTypeError):
    """A config ``type`` no registry holds: a config error, and the registry's unknown-type
    error (what building the config would have raised)."""

    __str__ = ConfigError.__str__


# --------------------------------------------------------------------------- messages
def _unknown(path: str, key: str, known, what: str = '') -> str:
    where = f'{path}.{key}' if path else key
    names = sorted({str(k) for k in known})
    close = difflib.get_close_matches(key, names, n=3, cutoff=0.6)
    text = f'unknown config key {where}' + (f' ({what})' if what else '')
    if close:
        return f'{text}; did you mean {" or ".join(close)}?'
    shown = ', '.join(names[:25]) + (' ...' if len(names) > 25 else '')
    return f'{text}; known here: {shown}' if names else text


def _raise(problems: list[str]) -> None:
    if not problems:
        return
    unique = list(dict.fromkeys(problems))
    more = f' (and {len(unique) - 1} more below)' if len(unique) > 1 else ''
    message = unique[0] + more + ''.join(f'\n  {p}' for p in unique[1:])
    if _TYPE_PROBLEM in unique[0]:
        raise UnknownConfigType(message)
    raise ConfigError(message)


# --------------------------------------------------------------------------- variables
def config_files(path: str | None) -> list[Path]:
    """The config file and the ``_base_`` files it inherits (those that can be found)."""
    files: list[Path] = []
    todo = [Path(path)] if path else []
    while todo:
        file = todo.pop()
        if file in files or not file.is_file():
            continue
        files.append(file)
        try:
            tree = ast.parse(file.read_text(encoding='utf-8'))
        except (OSError, SyntaxError, ValueError):
            continue
        for stmt in tree.body:
            if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == '_base_'
                                                    for t in stmt.targets):
                try:
                    bases = ast.literal_eval(stmt.value)
                except ValueError:
                    continue
                for base in [bases] if isinstance(bases, str) else list(bases):
                    if isinstance(base, str) and '::' not in base:
                        todo.append((file.parent / base).resolve())
    return files


def _names_read(path: str | None) -> set[str]:
    """Names the config file (and its bases) read: its variables."""
    names: set[str] = set()
    for file in config_files(path):
        try:
            tree = ast.parse(file.read_text(encoding='utf-8'))
        except (OSError, SyntaxError, ValueError):
            continue
        names.update(n.id for n in ast.walk(tree)
                     if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load))
    return names


def _contains(haystack: Any, needle: Any) -> bool:
    if haystack == needle:
        return True
    if isinstance(haystack, Mapping):
        return any(_contains(v, needle) for v in haystack.values())
    if isinstance(haystack, (list, tuple)):
        return any(_contains(v, needle) for v in haystack)
    return False


def _is_variable(cfg: Mapping, key: str, read: set[str], known: dict) -> bool:
    """A top-level name the config reads (in its file), or, for a config without a file, one
    whose value (a string or a container) appears in the schema's keys."""
    if key in read:
        return True
    if getattr(cfg, 'filename', None):
        return False
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, (str, list, tuple, Mapping)) \
            or (isinstance(value, str) and len(value) < 2):
        return False
    return any(_contains(v, value) for v in known.values())


# --------------------------------------------------------------------------- classes
def _registry(name: str):
    return getattr(registries, name)


#: Parameter names that are no config keys (a base class taking the **kwargs dict by name).
_NOT_ARGUMENTS = ('self', 'kwargs', 'args')


def _arguments(cls) -> tuple[set[str], bool, set[str]]:
    """(arguments, takes **kwargs, arguments of the classes it inherits from)."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return set(), True, set()
    own = {n for n, p in params.items()
           if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and n not in _NOT_ARGUMENTS}
    open_ = any(p.kind == p.VAR_KEYWORD for p in params.values())
    inherited: set[str] = set()
    if open_ and inspect.isclass(cls):
        for base in cls.__mro__[1:]:
            init = base.__dict__.get('__init__')
            if init is None or base is object:
                continue
            try:
                inherited |= {n for n, p in inspect.signature(init).parameters.items()
                              if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
                              and n not in _NOT_ARGUMENTS}
            except (TypeError, ValueError):
                continue
    return own, open_, inherited


def _check_built(value: Mapping, registry_name: str, path: str, problems: list[str],
                 required: bool = True, skip: tuple[str, ...] = ()) -> None:
    """Check a dict mmengine builds: its ``type`` and its keys against the class."""
    type_ = value.get('type')
    if not isinstance(type_, str):
        if required and type_ is None:
            problems.append(f'{path} needs a type')
        return
    registry = _registry(registry_name)
    cls = registry.get(type_)
    if cls is None:
        if required:
            problems.append(f'{path}{_TYPE_PROBLEM}{describe_unknown_type(type_, registry.name)}')
        return
    own, open_, inherited = _arguments(cls)
    name = getattr(cls, '__name__', type_)
    for key, sub in value.items():
        if key == 'type' or str(key).startswith('_') or key in skip:
            continue
        if key not in own and key not in inherited:
            if not open_:
                problems.append(_unknown(path, key, own, f'not an argument of {name}'))
            else:
                close = difflib.get_close_matches(key, sorted(own | inherited), n=1,
                                                  cutoff=_TYPO_CUTOFF)
                if close:
                    problems.append(f'unknown config key {path}.{key} (not an argument of '
                                    f'{name}); did you mean {close[0]}?')
        sub_registry = _NESTED_REGISTRY.get(key, registry_name)
        strict = key in _NESTED_REGISTRY
        if isinstance(sub, Mapping) and 'type' in sub:
            _check_built(sub, sub_registry, f'{path}.{key}', problems, required=strict)
        elif isinstance(sub, (list, tuple)):
            for i, item in enumerate(sub):
                if isinstance(item, Mapping) and 'type' in item:
                    _check_built(item, sub_registry, f'{path}.{key}[{i}]', problems,
                                 required=strict)


def _check_section(cfg: Mapping, section: str, problems: list[str],
                   compat: tuple[CompatKey, ...]) -> None:
    value = config_value(cfg, section)
    if value is None:
        return
    if not isinstance(value, Mapping):
        problems.append(f'config key {section} must be a dict, got {type(value).__name__}')
        return
    known = set(SECTION_KEYS[section]) | {c.key.rsplit('.', 1)[1] for c in compat
                                          if c.key.rsplit('.', 1)[0] == section}
    for key in value:
        if key not in known:
            problems.append(_unknown(section, str(key), known))


def _check_logger_hooks(cfg: Mapping, problems: list[str]) -> None:
    hooks = config_value(cfg, 'log_config.hooks') or []
    for i, hook in enumerate(hooks):
        path = f'log_config.hooks[{i}]'
        if not isinstance(hook, Mapping) or 'type' not in hook:
            problems.append(f'{path} must be a dict with a type')
            continue
        kind = hook['type']
        if kind not in LOGGER_HOOKS:
            close = difflib.get_close_matches(str(kind), list(LOGGER_HOOKS), n=2, cutoff=0.6)
            hint = f'did you mean {" or ".join(close)}?' if close else \
                f'supported: {", ".join(LOGGER_HOOKS)}'
            problems.append(f'{path}.type={kind!r} is not a supported logger hook; {hint}')
            continue
        for key in hook:
            if key != 'type' and key not in LOGGER_HOOKS[kind]:
                problems.append(_unknown(path, str(key), LOGGER_HOOKS[kind],
                                         f'not used by {kind}'))


def check_config(cfg: Mapping, plugins: Sequence[RunPlugin] | None = None) -> None:
    """Raise :class:`ConfigError` for every key the run would not use (see the module
    docstring); the first line names the first such key and the nearest known ones.
    ``plugins``: the run plugins whose sections are known (default: every registered one)."""
    plugins = run_plugins() if plugins is None else tuple(plugins)
    compat = all_compat_keys(plugins)
    problems: list[str] = []
    if not any(k in cfg for k in ('data', 'train_dataloader', 'val_dataloader',
                                  'test_dataloader')):
        raise ConfigError('config has neither data (the PYSKL schema) nor train_dataloader / '
                          'test_dataloader (an mmengine config)')
    if 'train_dataloader' in cfg or 'data' not in cfg:   # as config.is_legacy decides
        _check_mmengine_config(cfg, problems, plugins)
        _raise(problems)
        return
    read = _names_read(getattr(cfg, 'filename', None))
    top_known = set(top_level_keys(plugins)) | {c.key for c in compat if '.' not in c.key}
    known_values = {k: cfg[k] for k in cfg if k in top_known}
    for key in cfg:
        if key in top_known or str(key).startswith('_'):
            continue
        if not _is_variable(cfg, key, read, known_values):
            problems.append(_unknown('', str(key), top_known,
                                     'neither a key of the schema nor a variable the config reads'))
    for section in SECTION_KEYS:
        _check_section(cfg, section, problems, compat)
    lr = cfg.get('lr_config') or {}
    for key in lr:
        if key not in LR_CONFIG_KEYS:
            problems.append(_unknown('lr_config', str(key), LR_CONFIG_KEYS))
    _check_logger_hooks(cfg, problems)
    if cfg.get('model') is not None:
        _check_built(cfg['model'], 'MODELS', 'model', problems)
    data = cfg.get('data') or {}
    for split in ('train', 'val', 'test'):
        if isinstance(data.get(split), Mapping):
            _check_built(data[split], 'DATASETS', f'data.{split}', problems)
    if isinstance(cfg.get('optimizer'), Mapping):
        _check_built(cfg['optimizer'], 'OPTIMIZERS', 'optimizer', problems,
                     skip=('paramwise_cfg',))
    for i, hook in enumerate(cfg.get('custom_hooks') or []):
        if isinstance(hook, Mapping):
            _check_built(hook, 'HOOKS', f'custom_hooks[{i}]', problems)
    for plugin in plugins:
        section = cfg.get(plugin.section) if plugin.section else None
        if isinstance(section, Mapping):
            problems += [_unknown(plugin.section, str(key), plugin.section_keys)
                         for key in section if key not in plugin.section_keys]
    problems += _type_problems(cfg)
    _raise(problems)


#: Numeric keys of the PYSKL schema the run converts, with the kind of number each takes
#: (a ``--cfg-options`` value that is not a number arrives as a string).
NUMERIC_KEYS: dict[str, type] = {
    'total_epochs': int, 'seed': int,
    'data.videos_per_gpu': int, 'data.workers_per_gpu': int,
    'evaluation.interval': int, 'checkpoint_config.interval': int,
    'checkpoint_config.max_keep_ckpts': int, 'log_config.interval': int,
    'optimizer.lr': float, 'optimizer.momentum': float, 'optimizer.weight_decay': float,
}


def _type_problems(cfg: Mapping) -> list[str]:
    """One problem per numeric key whose value is not a number of its kind (None is left to
    the key's own default)."""
    problems = []
    for key, kind in NUMERIC_KEYS.items():
        value = config_value(cfg, key)
        if value is None:
            continue
        ok = isinstance(value, int) if kind is int else isinstance(value, (int, float))
        if not ok or isinstance(value, bool):
            problems.append(f'{key} must be {"an integer" if kind is int else "a number"}, '
                            f'got {value!r}')
    return problems


def _check_mmengine_config(cfg: Mapping, problems: list[str],
                           plugins: Sequence[RunPlugin]) -> None:
    """An mmengine-style config: its top-level keys are the Runner's arguments (and the run
    plugins' sections, checked as in a PYSKL config)."""
    known = set(inspect.signature(Runner.__init__).parameters) - {'self', 'cfg'}
    known |= {'model_wrapper_cfg', 'compile'}
    for plugin in plugins:
        if plugin.section:
            known.add(plugin.section)
            section = cfg.get(plugin.section)
            if isinstance(section, Mapping):
                problems += [_unknown(plugin.section, str(key), plugin.section_keys)
                             for key in section if key not in plugin.section_keys]
    read = _names_read(getattr(cfg, 'filename', None))
    values = {k: cfg[k] for k in cfg if k in known}
    for key in cfg:
        if key in known or str(key).startswith('_'):
            continue
        if not _is_variable(cfg, key, read, values):
            problems.append(_unknown('', str(key), known,
                                     "neither an argument of mmengine's Runner nor a variable "
                                     'the config reads'))


# --------------------------------------------------------------------------- build time
_UNEXPECTED = re.compile(
    r"unexpected keyword argument[s]? (?:'(\w+)'|\[([^\]]*)\])|unexpected argument\(s\): ([\w, ]+)")


def _unexpected_names(message: str) -> list[str]:
    names: list[str] = []
    for one, listed, plain in _UNEXPECTED.findall(message):
        if one:
            names.append(one)
        for part in re.split(r'[,\s]+', listed or plain or ''):
            part = part.strip("'\"")
            if part:
                names.append(part)
    return names


def _paths_of(value: Any, key: str, path: str) -> Iterator[tuple[str, Mapping]]:
    """(config path, holding dict) of every dict under ``value`` that has ``key``."""
    if isinstance(value, Mapping):
        if key in value:
            yield f'{path}.{key}', value
        for k, sub in value.items():
            yield from _paths_of(sub, key, f'{path}.{k}')
    elif isinstance(value, (list, tuple)):
        for i, sub in enumerate(value):
            yield from _paths_of(sub, key, f'{path}[{i}]')


@contextlib.contextmanager
def explain_unexpected_arguments(section: Mapping, path: str) -> Iterator[None]:
    """While building ``section`` (the config at ``path``, e.g. ``cfg.model`` at 'model'):
    a ``TypeError`` for an unexpected keyword argument becomes a :class:`ConfigError` naming
    the config path of the key and the arguments close to it."""
    try:
        yield
    except TypeError as exc:
        names = _unexpected_names(str(exc))
        found = [(where, holder, name) for name in names
                 for where, holder in _paths_of(section, name, path)]
        if not found:
            raise
        problems = []
        for where, holder, name in found:
            known: set[str] = set()
            cls_name = holder.get('type')
            for reg in ('MODELS', 'DATASETS', 'TRANSFORMS', 'TEXT_ENCODERS'):
                cls = _registry(reg).get(cls_name) if isinstance(cls_name, str) else None
                if cls is not None:
                    own, _, inherited = _arguments(cls)
                    known = own | inherited
                    break
            # the class takes **kwargs, so its own arguments are not all it accepts: only a
            # close one is suggested
            close = difflib.get_close_matches(name, sorted(known), n=2, cutoff=0.6)
            problems.append(f'unknown config key {where} (not an argument of '
                            f'{cls_name or "the class built there"})'
                            + (f'; did you mean {" or ".join(close)}?' if close else ''))
        raise ConfigError(problems[0] + (f' (and {len(problems) - 1} more below)'
                                         if len(problems) > 1 else '')
                          + ''.join(f'\n  {p}' for p in problems[1:])) from exc
