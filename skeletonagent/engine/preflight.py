"""Checks a run makes before it builds anything, cheapest and most basic first.

A run that cannot go far should stop at once and name the first thing that is wrong, not
after a model is built, a text encoder downloaded or a memcached server filled. The order:

1. the config's keys (:func:`~skeletonagent.engine.config_keys.check_config`);
2. the work dir can be written;
3. the data: every annotation file the run reads exists and is a complete pickle;
4. training: the agent's texts, masks and prompts the config names
   (:func:`~skeletonagent.engine.runner.check_agent_sources`), and its LLM backend's
   arguments (:func:`check_llm`);
5. training: the text encoder's weights can be had (CLIP: a local directory, the Hugging
   Face cache, or a reachable hub), without waiting on download retries;
6. the data's samples: each split's dataset is built and every sample checked
   (:func:`check_datasets`), the longest check, last; the run's Runner gets these
   datasets, nothing is loaded twice.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mmengine.config import Config

from ..errors import SkeletonAgentError
from .config import RunOptions, dataset_configs, run_work_dir
from .config_keys import check_config
from .errors import ConfigError

__all__ = ['DataMissing', 'TextEncoderUnavailable', 'preflight', 'check_work_dir',
           'check_data', 'check_text_encoder']

#: Where users are told to look for data.
DATA_HELP = 'data/README.md says how to get or prepare each dataset'


class DataMissing(SkeletonAgentError, FileNotFoundError):
    """An annotation file a run reads is missing or not a complete pickle."""


class TextEncoderUnavailable(SkeletonAgentError, RuntimeError):
    """The text encoder's weights are neither local nor downloadable now."""


# --------------------------------------------------------------------------- work dir
def check_work_dir(work_dir: str | os.PathLike) -> Path:
    """Whether the run can create / write ``work_dir``, without creating anything (a run
    that stops at a later check leaves no empty folder behind): the folder, or its nearest
    existing parent, must be a folder this process may write to."""
    path = Path(work_dir).expanduser()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    reason = None
    if not existing.is_dir():
        reason = f'{existing} is not a directory'
    elif not os.access(existing, os.W_OK | os.X_OK):
        reason = f'no permission to write in {existing}'
    if reason:
        raise ConfigError(f'cannot write to the work dir {path}: {reason}; give another one '
                          'with --work-dir')
    return path


# --------------------------------------------------------------------------- data
def _is_demo_file(dataset: Mapping[str, Any], path: Path) -> bool:
    """The demo dataset generates its pickle when missing, at the demo's own path only."""
    from ..registry import DATASETS
    cls = DATASETS.get(dataset.get('type')) if isinstance(dataset.get('type'), str) else None
    if cls is None:
        return False
    from ..datasets.demo import DEMO_PATHS, DemoPoseDataset
    return issubclass(cls, DemoPoseDataset) and any(
        path.resolve() == Path(own).resolve() for own in DEMO_PATHS)


def _pickle_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a complete pickle, from its first and last byte, or None.

    A pickle of protocol 2 or newer starts with the PROTO opcode (0x80) and always ends with
    STOP ('.'); a file cut short (an interrupted copy or download) lacks the final STOP."""
    try:
        size = path.stat().st_size
        if size == 0:
            return 'is empty'
        with open(path, 'rb') as f:
            first = f.read(1)
            f.seek(-1, os.SEEK_END)
            last = f.read(1)
    except OSError as exc:
        return f'cannot be read ({exc.strerror or exc})'
    if first == b'\x80' and last != b'.':
        return "is truncated (it lacks the STOP byte every pickle ends with)"
    return None


def check_data(cfg: Config, splits: Iterable[str]) -> None:
    """Every annotation file of ``data.<split>`` exists and looks like a complete pickle
    (only its first and last bytes are read), naming the file and its config key."""
    for split in splits:
        for path_key, dataset in dataset_configs(cfg, split):
            ann = dataset.get('ann_file')
            if not ann:
                continue
            path = Path(str(ann)).expanduser()
            if not path.exists():
                if _is_demo_file(dataset, path):
                    continue
                raise DataMissing(f'annotation file not found: {ann} ({path_key}.ann_file); '
                                  f'{DATA_HELP}')
            if path.is_dir():
                raise DataMissing(f'annotation file {ann} ({path_key}.ann_file) is a folder, '
                                  'not a pickle')
            problem = _pickle_problem(path)
            if problem:
                raise DataMissing(f'annotation file {ann} ({path_key}.ann_file) {problem}; '
                                  'copy or prepare it again')


def check_datasets(cfg: Config, splits: Iterable[str], keep: Iterable[str] = ()) -> None:
    """Build the dataset of each ``data.<split>`` and load its annotations: every sample is
    checked (its fields, its joints against the layout, the split's names) before the run
    writes anything; the error names the file, the sample and the field. The splits in
    ``keep`` are handed to the run's Runner (:mod:`.prebuilt`), the others dropped (a test
    split checked at start is loaded again when the test runs, not held during training)."""
    from .config import _dataset_cfg, is_legacy
    if not is_legacy(cfg):
        return
    from .. import datasets  # noqa: F401 - registers the dataset types
    from ..registry import DATASETS, explain_unknown_types
    from .prebuilt import keep_dataset
    keep = set(keep)
    for split in dict.fromkeys(splits):
        if split not in (cfg.get('data') or {}):
            continue
        with explain_unknown_types():
            dataset = DATASETS.build(_dataset_cfg(cfg, split))
        if hasattr(dataset, 'full_init'):
            dataset.full_init()
        if split in keep:
            keep_dataset(cfg, split, dataset)


# --------------------------------------------------------------------------- text encoder
def _offline() -> bool:
    def on(name: str) -> bool:
        return os.environ.get(name, '').strip().upper() in ('1', 'ON', 'YES', 'TRUE')
    return on('HF_HUB_OFFLINE') or on('TRANSFORMERS_OFFLINE')


def _cached(repo: str) -> bool:
    """Whether the hub repo's config is in the local Hugging Face cache."""
    try:
        from huggingface_hub import try_to_load_from_cache
        found = try_to_load_from_cache(repo, 'config.json')
    except Exception:  # noqa: BLE001 - a malformed id or cache: not cached
        return False
    return isinstance(found, str)


def _hub_unreachable(repo: str, timeout: float = 5.0) -> str | None:
    """None when the hub answers for ``repo`` (one request, no retries); else why not."""
    try:
        from huggingface_hub import get_hf_file_metadata, hf_hub_url
        get_hf_file_metadata(hf_hub_url(repo, 'config.json'), timeout=timeout,
                             retry_on_errors=False)
    except Exception as exc:  # noqa: BLE001 - any failure means: not downloadable now
        text = str(exc).strip().splitlines()
        return f'{type(exc).__name__}: {text[0][:160]}' if text else type(exc).__name__
    return None


def _switch_help(repo: str) -> str:
    return (f'\n  either give a local copy of {repo} (a directory with its weights and '
            'tokenizer, e.g. from `huggingface-cli download` on a machine with network):\n'
            '    --cfg-options model.text_encoder.pretrained=DIR\n'
            '  or switch to the offline MiniLM text encoder (shipped with the package):\n'
            '    --cfg-options model.text_encoder.type=MiniLM model.backbone.text_dim=384 '
            'model.backbone.text_key=MiniLM')


def check_text_encoder(cfg: Config) -> None:
    """For a model with the agent's text branch: the text encoder's weights can be had.

    CLIP loads from ``model.text_encoder.pretrained`` (default the hub's ViT-B/32): a local
    directory must exist; a hub id must be in the Hugging Face cache or downloadable now
    (offline mode, or one failed request, says it is not). MiniLM ships with the package."""
    from .config import agent_settings
    if agent_settings(cfg) is None:           # no agent branch, no text encoder
        return
    head = (cfg.get('model') or {}).get('cls_head') or {}
    if float(head.get('weight_2', 1) or 0) == 0:   # no text alignment: no text encoder
        return
    from ..models.recognizers.recognizer_gcn import DEFAULT_TEXT_ENCODER
    from ..models.text.clip import CLIP, DEFAULT_CLIP
    from ..registry import TEXT_ENCODERS
    text = dict((cfg.get('model') or {}).get('text_encoder') or DEFAULT_TEXT_ENCODER)
    cls = TEXT_ENCODERS.get(text.get('type')) if isinstance(text.get('type'), str) else None
    if cls is None or not issubclass(cls, CLIP) or text.get('config') is not None:
        return
    pretrained = str(text.get('pretrained') or DEFAULT_CLIP)
    local = Path(pretrained).expanduser()
    if local.exists():
        return
    if local.is_absolute() or pretrained.startswith(('.', '~')) or pretrained.count('/') > 1:
        raise TextEncoderUnavailable(
            f'the CLIP text encoder directory {pretrained} (model.text_encoder.pretrained) '
            f'does not exist;{_switch_help(DEFAULT_CLIP)}')
    if _cached(pretrained):
        return
    why = 'offline mode is on (HF_HUB_OFFLINE)' if _offline() else _hub_unreachable(pretrained)
    if why:
        raise TextEncoderUnavailable(
            f'the CLIP text encoder weights ({pretrained}) are not in the Hugging Face cache '
            f'and cannot be downloaded: {why};{_switch_help(pretrained)}')


# --------------------------------------------------------------------------- LLM
def check_llm(cfg: Config) -> None:
    """The agent's LLM backend (``agent.llm``) can be built from the config's arguments and
    the environment (nothing is built and no server is called): a missing argument is a config
    error naming ``agent.llm.<argument>``; a missing API key the backend's own error."""
    import inspect

    from .config import agent_settings
    settings = agent_settings(cfg)
    if settings is None:
        return
    from ..agent.llm import backend_arguments
    llm = settings.get('llm')
    if not isinstance(llm, Mapping):
        return
    try:
        cls, args = backend_arguments(dict(llm))
    except TypeError as exc:
        cls_name = llm.get('type')
        missing = []
        from ..registry import LLM_BACKENDS
        cls = LLM_BACKENDS.get(cls_name) if isinstance(cls_name, str) else None
        if cls is not None:
            missing = [name for name, p in list(inspect.signature(cls.__init__).parameters.items())[1:]
                       if p.default is inspect.Parameter.empty and name not in llm
                       and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if not missing:
            raise ConfigError(f'agent.llm ({cls_name}) cannot be built: {exc}') from exc
        keys = ', '.join(f'agent.llm.{name}' for name in missing)
        example = ' '.join(f'agent.llm.{name}=' + ('gpt-4o' if name == 'model' else '...')
                           for name in missing)
        raise ConfigError(f'agent.llm: {cls_name} needs {keys}, which the config does not set; '
                          f'give it, e.g. --cfg-options {example}') from exc
    if hasattr(cls, 'check_arguments') and int(settings.get('interval') or 0) > 0:
        cls.check_arguments(args)      # rounds will ask it: e.g. the API key's variable is set


# --------------------------------------------------------------------------- all
def preflight(cfg: Config, opts: RunOptions, mode: str = 'train',
              splits: Iterable[str] | None = None) -> None:
    """The checks of the module docstring, in order; raises the first problem found.

    ``splits``: the data splits the run reads (default: train, plus val with
    ``opts.validate``, for training; test for testing)."""
    check_config(cfg)
    check_work_dir(run_work_dir(cfg, opts, mode))
    if splits is None:
        splits = (['train'] + (['val'] if opts.validate else [])) if mode == 'train' else ['test']
    splits = list(splits)
    check_data(cfg, splits)
    if mode == 'train':
        from .runner import check_agent_sources
        check_agent_sources(cfg)
        check_llm(cfg)
        check_text_encoder(cfg)
    from .prebuilt import discard_datasets
    try:
        check_datasets(cfg, splits, keep=['train', 'val'] if mode == 'train' else ['test'])
    except BaseException:
        discard_datasets(cfg)
        raise
