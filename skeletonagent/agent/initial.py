"""The agent's initial state: descriptions and masks before training starts.

Sources (resolved by :func:`.sources.resolve_sources`), in order of precedence:

* ``agent_cfg['transcripts']``: a folder of transcripts in the official format, or
  ``'official'`` for the official GPT-4o dialogues imported by
  ``tools/agent/import_official.py``, is read as is;
* otherwise the transcripts already in ``<work_dir>/agent/transcripts`` (a resumed run),
  completed by the LLM backend for any class that has none;
* otherwise the backend (``agent_cfg['llm']``, the heuristic ``Offline`` one by default)
  holds the initial dialogue of every class and the transcripts are written there.

Masks come from the critical joints of each dialogue (see :mod:`.selector`) unless
``agent_cfg['masks']`` names a ``.npy`` file of Class x V x V masks (``'official'``: the
imported official matrix); descriptions are the final answers, trimmed for the text encoder
to ``max_words`` words (0 or None: as written, the official behaviour).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..datasets.config_view import config_class_names
from ..datasets.label_map import DEFAULT_LABEL_MAPS
from ..skeleton.masks import check_mask_shape
from .describe import complete_transcript, describe_classes
from .llm import LLMError, build_backend
from .prompts import PromptSet
from .selector import (
    JointSelection,
    base_stream,
    build_masks,
    critical_joints_from_transcript,
    descriptions_from_transcripts,
)
from .sources import AgentSources, resolve_sources
from .state import AgentState
from .transcripts import TranscriptError, Turn, read_transcript, read_transcript_dir, transcript_filename
from .vocab import LayoutArg, resolve_layout

__all__ = ['build_initial_state', 'build_initial_agent', 'InitialAgent', 'resolve_class_names',
           'load_masks', 'max_words_of', 'TRANSCRIPT_SUBDIR', 'DEFAULT_MAX_WORDS']

logger = logging.getLogger(__name__)

#: Where, under the work dir, the agent writes its transcripts.
TRANSCRIPT_SUBDIR = Path('agent') / 'transcripts'
#: Description budget in words unless the config says otherwise (``agent.official=True``:
#: none, the official code uses each final answer as it is).
DEFAULT_MAX_WORDS = 50


def max_words_of(agent_cfg: Mapping[str, Any]) -> int:
    """``agent.max_words`` as an int, 0 meaning no cut (None and 0 both mean so); by default
    50, or 0 with ``agent.official=True``."""
    if 'max_words' in agent_cfg:
        value = agent_cfg['max_words']
        return 0 if value is None else max(0, int(value))
    return 0 if agent_cfg.get('official') else DEFAULT_MAX_WORDS


def resolve_class_names(agent_cfg: Mapping[str, Any], num_classes: int) -> list[str]:
    """Class names from ``agent_cfg['label_map']`` or the default map for ``num_classes``
    (:func:`~skeletonagent.datasets.config_view.config_class_names`, strict: the agent must
    not ask about other classes than the model's).

    Raises:
        ValueError: when no label map is given and ``num_classes`` has no default, or the
            map holds another number of classes.
    """
    found = config_class_names({'agent': agent_cfg}, num_classes, strict=True)
    if found is None:
        raise ValueError(
            f"agent: no label map for {num_classes} classes; set agent label_map= to a "
            f"name or a file (defaults exist for {sorted(DEFAULT_LABEL_MAPS)} classes)")
    return list(found.names)


def load_masks(path: os.PathLike | str, num_classes: int, num_joints: int,
               layout: str | None = None) -> np.ndarray:
    """Class x V x V masks from a ``.npy`` file, as float32.

    Args:
        layout: the name of the layout ``num_joints`` comes from (the model's), for the error.

    Raises:
        FileNotFoundError / ValueError: naming the file and the shape it has and needs.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'agent masks file not found: {path}')
    masks = np.load(path, allow_pickle=False)
    check_mask_shape(masks.shape, num_classes, num_joints, f'agent masks {path}', layout)
    return masks.astype(np.float32)


def _work_dir_transcripts(backend_cfg: Any, class_names: Sequence[str], layout,
                          prompts: PromptSet, out_dir: Path) -> tuple[list[list[Turn]], str]:
    """Reuse the complete transcripts in ``out_dir`` and hold the dialogue of the other
    classes (written there as each finishes, so an interrupted start loses nothing).
    Returns the transcripts and where they came from, in words.

    Raises:
        RuntimeError: naming the classes whose dialogue failed (after the backend's retries)
            and how to retry just those.
    """
    paths = [out_dir / transcript_filename(i, name) for i, name in enumerate(class_names)]
    todo = [i for i, path in enumerate(paths) if not complete_transcript(path)]
    origin = []
    if todo:
        backend = build_backend(backend_cfg)
        origin.append(f'{len(todo)} generated at start by {backend.describe()}')
        logger.info('agent: initial dialogue of %d classes with %s', len(todo),
                    backend.describe())
        try:
            summary = describe_classes(backend, class_names, layout, out_dir, prompts)
        finally:
            backend.close()
        if summary.failed:
            reasons = set(summary.failed.values())
            if len(reasons) == 1 and len(summary.failed) > 1:
                # one cause for every failure (a server down, a key refused): say it once
                failed = f'all with: {reasons.pop()}'
            else:
                failed = '; '.join(f'{i + 1:03d} {class_names[i]!r}: {why}'
                                   for i, why in sorted(summary.failed.items())[:5])
                failed += ' ...' if len(summary.failed) > 5 else ''
            raise LLMError(
                f'agent: the initial dialogue failed for {len(summary.failed)} classes ({failed}). '
                f'The {len(class_names) - len(summary.failed)} complete transcripts are kept in '
                f'{out_dir}; run again (or tools/agent/describe.py --out {out_dir}) to ask only '
                f'the missing classes, or point agent.transcripts at a transcript folder.')
    if len(todo) < len(class_names):
        logger.info('agent: reused %d transcripts in %s', len(class_names) - len(todo), out_dir)
        origin.append(f'{len(class_names) - len(todo)} reused from {out_dir}')
    return [read_transcript(path) for path in paths], ', '.join(origin)


def _log_selections(selections: Sequence[JointSelection], class_names: Sequence[str]) -> None:
    for i, (selection, name) in enumerate(zip(selections, class_names)):
        if selection.dropped:
            logger.warning('agent: class %d %r: dropped joint numbers %s (not in the layout)',
                           i, name, selection.dropped)
        if not selection.joints:
            logger.warning('agent: class %d %r: no critical joints found; its mask is empty',
                           i, name)


def build_initial_state(agent_cfg: Mapping[str, Any] | None, num_classes: int,
                        layout: LayoutArg, modality: str, work_dir: os.PathLike | str
                        ) -> AgentState:
    """The agent state training starts from (see the module docstring and
    :func:`build_initial_agent` for the arguments)."""
    return build_initial_agent(agent_cfg, num_classes, layout, modality, work_dir).state


@dataclass
class InitialAgent:
    """What the live agent starts from: the state, the dialogues it came from, the names,
    and where the texts, masks and prompts came from."""

    state: AgentState
    transcripts: list[list[Turn]]
    class_names: list[str]
    sources: AgentSources | None = None


def build_initial_agent(agent_cfg: Mapping[str, Any] | None, num_classes: int,
                        layout: LayoutArg, modality: str, work_dir: os.PathLike | str,
                        sources: AgentSources | None = None) -> InitialAgent:
    """The agent state training starts from, with its transcripts and class names.

    Args:
        agent_cfg: optional keys ``label_map`` (name or path), ``transcripts`` (folder or
            ``'official'``), ``masks`` (``.npy`` or ``'official'``), ``prompts`` (template
            overrides or ``'official'``), ``official_dir`` (where ``'official'`` points;
            default ``data/agent/<label map>``), ``llm`` (backend config, default
            ``dict(type='Offline')``), ``max_words`` (description budget, see
            :func:`max_words_of`), ``row_index`` ('pair' as the official tool, or 'joint').
            Other keys are left to the live agent.
        num_classes: number of classes of the dataset.
        layout: skeleton layout (name or object) of the dataset.
        modality: stream of the model ('j', 'b', 'k', 'jm', 'bm', 'km').
        work_dir: run folder; transcripts the agent writes go to ``agent/transcripts`` in it.
        sources: ``agent_cfg``'s texts, masks and prompts already resolved (by the run's
            checks: :class:`~.plugin.AgentPlugin`); None resolves them here.
    """
    cfg = dict(agent_cfg or {})
    base_stream(modality)  # fail early on an unknown modality
    layout = resolve_layout(layout)
    class_names = resolve_class_names(cfg, num_classes)
    sources = sources if sources is not None else resolve_sources(cfg, modality)
    prompts = sources.prompts

    if sources.transcripts is not None:
        transcripts = read_transcript_dir(sources.transcripts, class_names)
        logger.info('agent: %d dialogues replayed from %s', len(transcripts), sources.text_source)
    else:
        out_dir = Path(work_dir) / TRANSCRIPT_SUBDIR
        transcripts, origin = _work_dir_transcripts(cfg.get('llm'), class_names, layout,
                                                    prompts, out_dir)
        sources.text_source = f'dialogues {origin}'
    if len(transcripts) != num_classes:  # pragma: no cover - guarded by the readers
        raise TranscriptError(f'agent: {len(transcripts)} transcripts for {num_classes} classes')

    selections = [critical_joints_from_transcript(turns, layout, prompts) for turns in transcripts]
    _log_selections(selections, class_names)
    critical_joints = [list(s.joints) for s in selections]
    if sources.masks is not None:
        masks = load_masks(sources.masks, num_classes, len(layout.joint_names),
                           getattr(layout, 'name', None))
    else:
        masks = build_masks(critical_joints, layout, modality,
                            row_index=cfg.get('row_index', 'pair'))
    descriptions = descriptions_from_transcripts(
        transcripts, max_words=max_words_of(cfg), class_names=class_names)
    state = AgentState(descriptions=descriptions, masks=masks, version=0,
                       critical_joints=critical_joints)
    return InitialAgent(state=state, transcripts=[list(t) for t in transcripts],
                        class_names=list(class_names), sources=sources)
