"""Where the agent's texts, masks and prompts come from, resolved once from the config.

Three keys of ``agent`` may name the official artefacts imported by
``tools/agent/import_official.py`` (see :mod:`.official`) with the value ``'official'``:

* ``transcripts='official'``: replay the official GPT-4o dialogues (no LLM call at start);
* ``masks='official'``: the official critical-joint matrix of the stream's base stream;
* ``prompts='official'``: ask new dialogues and follow-ups with the official per-dataset
  prompt templates.

They are read from ``agent.official_dir`` (default ``data/agent/<label map name>``, relative
to the working directory as ``ann_file`` is). Other values keep their meaning: a folder /
``.npy`` path, a dict of template overrides, or None (generate with the LLM, build masks from
the dialogues, our templates).

:func:`resolve_sources` checks that what the config names exists, before any LLM call or
data loading; when imported artefacts are missing it raises :class:`AgentSourceMissing`
with the two ways on (import them, or generate new ones).
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SkeletonAgentError
from .official import (
    DEFAULT_OUT,
    MANIFEST_FILE,
    MASKS_SUBDIR,
    OFFICIAL_DATASETS,
    OFFICIAL_REPO_URL,
    PROMPTS_FILE,
    TRANSCRIPTS_SUBDIR,
)
from .prompts import PromptSet
from .selector import base_stream

__all__ = ['OFFICIAL', 'AgentSources', 'AgentSourceMissing', 'resolve_sources',
           'resolve_prompts', 'official_dir_of']

logger = logging.getLogger(__name__)

#: The value of ``transcripts`` / ``masks`` / ``prompts`` that means "the imported official one".
OFFICIAL = 'official'


class AgentSourceMissing(SkeletonAgentError, FileNotFoundError):
    """The agent config names imported official artefacts (or a folder / file) that is not
    there; the message says how to get them or how to do without."""


@dataclass
class AgentSources:
    """What the agent starts from, resolved (paths absolute, prompts built).

    Attributes:
        transcripts: folder of dialogues to replay, or None (the LLM holds them at start).
        masks: ``.npy`` of Class x V x V masks, or None (built from the dialogues).
        prompts: the prompt templates of new dialogues and follow-ups.
        text_source, masks_source, prompts_source: one line each for the run's log and report
            (e.g. ``'imported official (data/agent/ntu60, commit 2440fda)'``).
        official_dir: the import folder the config points at, when it uses one.
        manifest: that folder's ``manifest.json`` (counts, digests, source commit).
    """

    transcripts: Path | None
    masks: Path | None
    prompts: PromptSet
    text_source: str
    masks_source: str
    prompts_source: str
    official_dir: Path | None = None
    manifest: dict = field(default_factory=dict)

    @property
    def uses_official(self) -> bool:
        return self.official_dir is not None


def official_dir_of(agent_cfg: Mapping[str, Any]) -> Path | None:
    """``agent.official_dir``, or ``data/agent/<label map>`` for a label map of an official
    dataset (None when neither applies)."""
    given = agent_cfg.get('official_dir')
    if given:
        return Path(os.fspath(given)).expanduser()
    label_map = agent_cfg.get('label_map')
    if isinstance(label_map, str) and label_map in OFFICIAL_DATASETS:
        return DEFAULT_OUT / label_map
    return None


def _missing_message(agent_cfg: Mapping[str, Any], root: Path | None, what: str,
                     config: str | None) -> str:
    label_map = agent_cfg.get('label_map')
    dataset = label_map if isinstance(label_map, str) and label_map in OFFICIAL_DATASETS else None
    out = root.parent if root is not None and root.name == dataset else (root or DEFAULT_OUT)
    config_arg = config or 'CONFIG'
    only = f' --datasets {dataset}' if dataset else ''
    where = f'in {root}' if root is not None else '(agent.official_dir is not set)'
    return (
        f"agent: the config trains from the official GPT-4o dialogues and masks, but {what} "
        f"is not {where}. Two ways on:\n"
        f"  1. import them once from a clone of the official repository ({OFFICIAL_REPO_URL}):\n"
        f"       git clone {OFFICIAL_REPO_URL} PATH_TO_CLONE\n"
        f"       python tools/agent/import_official.py --repo PATH_TO_CLONE --out {out}{only}\n"
        f"  2. generate new dialogues with the configured LLM instead (they differ from the "
        f"paper's): add\n"
        f"       --cfg-options agent.transcripts=None agent.masks=None\n"
        f"     or hold them ahead of time with python tools/agent/describe.py --config "
        f"{config_arg} --out DIR and train with --cfg-options agent.transcripts=DIR "
        f"agent.masks=None")


def _read_manifest(root: Path) -> dict:
    path = root / MANIFEST_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding='utf-8'))
    except (OSError, ValueError) as exc:
        logger.warning('agent: cannot read %s (%s)', path, exc)
        return {}


def _origin(root: Path, manifest: dict, item: str | None = None) -> str:
    commit = manifest.get('commit')
    parts = [str(root)] + ([item] if item else []) + ([f'commit {commit[:10]}'] if commit else [])
    return f'imported official ({", ".join(parts)})'


def resolve_prompts(agent_cfg: Mapping[str, Any] | None, config: str | None = None
                    ) -> tuple[PromptSet, str]:
    """The prompt templates ``agent.prompts`` names, and where they come from (a line).

    Raises:
        AgentSourceMissing: for ``'official'`` when the imported ``prompts.json`` is missing.
        ValueError: for another string.
    """
    cfg = dict(agent_cfg or {})
    value = cfg.get('prompts')
    if value == OFFICIAL:
        root = official_dir_of(cfg)
        path = None if root is None else root / PROMPTS_FILE
        if path is None or not path.is_file():
            raise AgentSourceMissing(_missing_message(cfg, root, PROMPTS_FILE, config))
        try:
            templates = json.loads(path.read_text(encoding='utf-8'))
        except ValueError as exc:
            raise AgentSourceMissing(f'agent.prompts: {path} is not valid JSON ({exc}); import '
                                     f'again with tools/agent/import_official.py') from exc
        return PromptSet.from_cfg(templates), _origin(root, _read_manifest(root), PROMPTS_FILE)
    if isinstance(value, str):
        raise ValueError(f"agent.prompts: {value!r} is not a template set; use 'official', a "
                         f"dict of template overrides, or None")
    return (PromptSet.from_cfg(value),
            'ours' + (f' with overrides of {", ".join(sorted(value))}' if value else ''))


def resolve_sources(agent_cfg: Mapping[str, Any] | None, modality: str = 'j',
                    config: str | None = None, llm: str | None = None) -> AgentSources:
    """Resolve ``agent.transcripts`` / ``masks`` / ``prompts`` (see the module docstring).

    Args:
        agent_cfg: the agent settings.
        modality: the stream; the official mask is its base stream's (``jm`` -> ``j``).
        config: the config file, for the message when something is missing.
        llm: a description of the backend, for ``text_source`` when dialogues are generated.

    Raises:
        AgentSourceMissing: when an imported artefact, a transcript folder or a masks file the
            config names does not exist.
    """
    cfg = dict(agent_cfg or {})
    root = official_dir_of(cfg)
    uses = [key for key in ('transcripts', 'masks', 'prompts') if cfg.get(key) == OFFICIAL]
    manifest: dict = {}
    if uses:
        if root is None:
            raise AgentSourceMissing(_missing_message(cfg, None, 'the import folder', config))
        manifest = _read_manifest(root)

    # transcripts
    transcripts: Path | None = None
    value = cfg.get('transcripts')
    if value == OFFICIAL:
        transcripts = root / TRANSCRIPTS_SUBDIR
        if not transcripts.is_dir() or not any(transcripts.glob('*.txt')):
            raise AgentSourceMissing(_missing_message(cfg, root, f'{TRANSCRIPTS_SUBDIR}/', config))
        text_source = _origin(root, manifest) + ', replayed'
    elif value:
        transcripts = Path(os.fspath(value)).expanduser()
        if not transcripts.is_dir():
            raise AgentSourceMissing(f'agent.transcripts: folder not found: {transcripts}')
        text_source = f'transcripts in {transcripts}, replayed'
    else:
        text_source = f'generated at start by {llm or "the configured LLM backend"}'

    # masks
    masks: Path | None = None
    value = cfg.get('masks')
    if value == OFFICIAL:
        masks = root / MASKS_SUBDIR / f'{base_stream(modality)}.npy'
        if not masks.is_file():
            raise AgentSourceMissing(_missing_message(cfg, root, f'{MASKS_SUBDIR}/{masks.name}',
                                                      config))
        masks_source = _origin(root, manifest, f'{MASKS_SUBDIR}/{masks.name}')
    elif value:
        masks = Path(os.fspath(value)).expanduser()
        if not masks.is_file():
            raise AgentSourceMissing(f'agent.masks: file not found: {masks}')
        masks_source = f'file {masks}'
    else:
        masks_source = 'built from the dialogues by the Selector'

    prompts, prompts_source = resolve_prompts(cfg, config)
    return AgentSources(transcripts=transcripts, masks=masks, prompts=prompts,
                        text_source=text_source, masks_source=masks_source,
                        prompts_source=prompts_source,
                        official_dir=root.resolve() if uses and root is not None else None,
                        manifest=manifest)
