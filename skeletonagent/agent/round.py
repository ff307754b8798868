"""One agent round as a pure function: follow-up questions about confused classes, their
answers turned into a new :class:`AgentState`, and a report of what happened.

:func:`run_round` knows nothing of mmengine or torch.distributed; the hook runs it in a
background thread on rank 0 and broadcasts the state it returns.

As in the official ``Interaction.update_description``:

* a class's follow-up chat replays its initial dialogue (the first
  ``len(INITIAL_ROUNDS)`` turns; earlier follow-ups are dropped) and asks one question
  naming the classes it is confused with;
* after a successful answer the class's transcript is its initial rounds plus that turn,
  and its description is the follow-up answer (the official ``get_description`` reads the
  final answer of each transcript), trimmed like every description;
* the masks stay as they are (official); ``update_masks=True`` re-reads the critical joints
  from the follow-up answer.

Where we differ, because the official code has no answer for it: a chat that fails keeps
the class's previous transcript, description and mask (the official code would crash), and
a class not asked this round keeps its current transcript (the official code would drop
its earlier follow-up; with the official selection every class is asked, so this does not
arise there).
"""
from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..skeleton.masks import MaskFormat
from ..utils.fileio import atomic_write_text
from .llm.base import LLMBackend, RoundStats
from .llm.reply import checked
from .prompts import INITIAL_ROUNDS, PromptSet
from .selector import parse_critical_joints, trim_words
from .state import AgentState
from .transcripts import Turn, transcript_filename, turns_to_messages, write_transcript
from .vocab import LayoutArg, resolve_layout

__all__ = ['ClassRoundReport', 'RoundResult', 'RoundQuestions', 'RoundReading', 'MaskFormat',
           'run_round', 'write_round_report', 'save_transcripts', 'DEFAULT_MAX_WORDS']

#: Description budget in words (the default of :func:`descriptions_from_transcripts`).
DEFAULT_MAX_WORDS = 50


@dataclass
class ClassRoundReport:
    """What one round did for one class.

    Attributes:
        index, name: the class.
        confused: the classes it was asked about, as ``(index, name, count)``; ``count`` is
            the confusion count from the round's matrix, None without one.
        prompt: the follow-up question sent.
        reply: the answer (None when the chat failed).
        error, detail: why the chat failed (one of ``llm.base.FAILURE_KINDS``), else None.
        joints: 0-based critical joints the reply names (read whether or not the masks are
            updated, with the class names in it ignored); dropped: numbers in it that name
            no joint (1-based, as written).
        mask_changed: the class's critical joints and mask were replaced by ``joints``.
        description_changed: the class's description differs from before the round.
        description: the class's description after the round.
    """

    index: int
    name: str
    confused: list[tuple[int, str, int | None]]
    prompt: str
    reply: str | None = None
    error: str | None = None
    detail: str = ''
    joints: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)
    mask_changed: bool = False
    description_changed: bool = False
    description: str = ''

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class RoundResult:
    """The outcome of :func:`run_round`.

    Attributes:
        state: the new state; ``previous_version + 1`` when any class's description,
            critical joints or mask changed, else the input state object itself.
        previous_version: the version of the input state.
        transcripts: every class's transcript after the round (class order).
        updated: classes whose transcript changed (a successful follow-up), for
            :func:`save_transcripts`.
        classes: one report per class asked, in class order.
        stats: requests, tokens and failures of the round's chats.
        seconds: wall time of the whole round.
        backend: the backend's description, for the report.
    """

    state: AgentState
    previous_version: int
    transcripts: list[list[Turn]]
    updated: list[int]
    classes: list[ClassRoundReport]
    stats: RoundStats
    seconds: float
    backend: str = ''

    @property
    def changed(self) -> bool:
        """Whether the state changed (and its version went up)."""
        return self.state.version != self.previous_version

    @property
    def failed(self) -> list[int]:
        """Classes whose chat failed."""
        return [report.index for report in self.classes if not report.ok]


@dataclass(frozen=True)
class RoundQuestions:
    """What one round asks, and of whom.

    Attributes:
        state: the current state (not modified).
        transcripts: every class's current transcript.
        class_names: every class's name.
        similar: class -> the classes it is confused with (:func:`select_confused`); classes
            absent or with an empty list are not asked.
        matrix: the confusion counts ``similar`` was chosen from, to report the counts.
        prompts: the prompt templates (defaults when None).
        official_history: replay the initial dialogue as the official code reads it back from
            its file (every line stripped, blank lines dropped) rather than as stored.
    """

    state: AgentState
    transcripts: Sequence[Sequence[Turn]]
    class_names: Sequence[str]
    similar: Mapping[int, Sequence[int]]
    matrix: np.ndarray | None = None
    prompts: PromptSet | None = None
    official_history: bool = False


@dataclass(frozen=True)
class RoundReading:
    """How a round turns answers into the new state.

    Attributes:
        update_masks: replace a class's critical joints and mask with the joints its
            follow-up answer names, when it names any (the official agent keeps the masks).
        max_words, count_tokens, max_tokens: description trimming (:func:`trim_words`).
    """

    update_masks: bool = False
    max_words: int = DEFAULT_MAX_WORDS
    count_tokens: Callable[[str], int] | None = None
    max_tokens: int = 77


def _check_inputs(asked: RoundQuestions, matrix: np.ndarray | None) -> None:
    num_classes = asked.state.num_classes
    transcripts, class_names = asked.transcripts, asked.class_names
    if len(transcripts) != num_classes or len(class_names) != num_classes:
        raise ValueError(f'run_round: the state has {num_classes} classes but there are '
                         f'{len(transcripts)} transcripts and {len(class_names)} class names')
    for cls, others in asked.similar.items():
        bad = [o for o in [cls, *others] if not 0 <= int(o) < num_classes]
        if bad:
            raise ValueError(f'run_round: similar[{cls}] names class {bad[0]} outside '
                             f'0..{num_classes - 1}')
    if matrix is not None and matrix.shape != (num_classes, num_classes):
        raise ValueError(f'run_round: matrix has shape {matrix.shape}, expected '
                         f'({num_classes}, {num_classes})')


def _as_official_reads(text: str) -> str:
    """A stored question or answer as the official ``update_description`` reads it back:
    each line stripped, blank lines dropped."""
    return '\n'.join(line.strip() for line in text.split('\n') if line.strip())


def _without_names(text: str, names: Sequence[str]) -> str:
    """``text`` with the class names removed, so that 'raise right hand' quoted in a reply
    about 'raise left hand' does not read as the right hand joint."""
    for name in sorted(set(names), key=len, reverse=True):
        text = re.sub(rf'(?<!\w){re.escape(name)}(?!\w)', ' ', text, flags=re.IGNORECASE)
    return text


def run_round(backend: LLMBackend, asked: RoundQuestions, masks: MaskFormat,
              reading: RoundReading = RoundReading()) -> RoundResult:
    """Ask every class in ``asked.similar`` one follow-up question and build the new state.

    All chats go out in a single ``backend.chat_results`` call (the backend batches or
    parallelises them), and every result passes the reply validator (:func:`.llm.reply.checked`)
    so that a blank or non-text reply is a failure the statistics count. The backend must
    already be configured (``backend.configure``). See the module docstring for what a
    successful and a failed chat change.

    Args:
        backend: the LLM backend.
        asked: the state, transcripts, names and confusions, and how the questions are put.
        masks: the run's mask format (layout, stream, bone rows): for reading joints from the
            answers and building masks.
        reading: how answers become descriptions and masks.

    Raises:
        ValueError: when the sizes of the inputs disagree or ``similar`` names an unknown class.
        RuntimeError: when the backend returns another number of results than chats.
    """
    start = time.perf_counter()
    state, transcripts, class_names, similar = (asked.state, asked.transcripts,
                                                asked.class_names, asked.similar)
    prompts = asked.prompts or PromptSet()
    layout = masks.layout
    matrix = np.asarray(asked.matrix) if asked.matrix is not None else None
    _check_inputs(asked, matrix)

    num_initial = len(INITIAL_ROUNDS)
    asking = sorted(int(cls) for cls, others in similar.items() if len(others) > 0)
    reports: list[ClassRoundReport] = []
    chats = []
    for cls in asking:
        others = [int(o) for o in similar[cls]]
        question = prompts.follow_up_question(class_names[cls], [class_names[o] for o in others])
        history = turns_to_messages(transcripts[cls][:num_initial])
        if asked.official_history:
            history = [dict(m, content=_as_official_reads(m['content'])) for m in history]
        chats.append(history + [{'role': 'user', 'content': question}])
        confused = [(o, class_names[o], int(matrix[cls, o]) if matrix is not None else None)
                    for o in others]
        reports.append(ClassRoundReport(cls, class_names[cls], confused, question))

    chat_start = time.perf_counter()
    results = backend.chat_results(chats) if chats else []
    if len(results) != len(chats):
        raise RuntimeError(f'{backend.describe()} returned {len(results)} results for '
                           f'{len(chats)} chats')
    results = [checked(result) for result in results]
    stats = RoundStats.from_results(results, time.perf_counter() - chat_start)

    new_transcripts = [list(turns) for turns in transcripts]
    descriptions = list(state.descriptions)
    joints_now = [list(j) for j in state.critical_joints] or [[] for _ in descriptions]
    new_masks = state.masks.copy()
    updated: list[int] = []
    joints_changed = False
    for report, result in zip(reports, results):
        cls = report.index
        report.error, report.detail = result.error, result.detail
        text = result.text.strip() if result.ok else None
        if text is not None:
            report.reply = text
            new_transcripts[cls] = [*transcripts[cls][:num_initial], Turn(report.prompt, text)]
            updated.append(cls)
            descriptions[cls] = trim_words(text, reading.max_words, reading.count_tokens,
                                           reading.max_tokens)
            names = [report.name] + [name for _, name, _ in report.confused]
            selection = parse_critical_joints(_without_names(text, names), layout)
            report.joints, report.dropped = list(selection.joints), list(selection.dropped)
            if reading.update_masks and selection.joints and selection.joints != joints_now[cls]:
                joints_now[cls] = list(selection.joints)
                new_masks[cls] = masks.encode([selection.joints])[0]
                report.mask_changed = joints_changed = True
        report.description_changed = descriptions[cls] != state.descriptions[cls]
        report.description = descriptions[cls]

    if joints_changed or descriptions != state.descriptions:
        new_state = state.replace(
            descriptions=descriptions, masks=new_masks,
            critical_joints=joints_now if (state.critical_joints or joints_changed) else [])
    else:
        new_state = state
    return RoundResult(state=new_state, previous_version=state.version,
                       transcripts=new_transcripts, updated=updated, classes=reports,
                       stats=stats, seconds=time.perf_counter() - start,
                       backend=str(backend.describe() or type(backend).__name__))


# ---------------------------------------------------------------------- files
def save_transcripts(transcripts: Sequence[Sequence[Turn]], class_names: Sequence[str],
                     out_dir: str | Path, classes: Sequence[int] | None = None
                     ) -> list[Path]:
    """Write transcripts in the official format (``001_name.txt``), atomically.

    Args:
        classes: which classes to write (``RoundResult.updated``); all when None.

    Returns the paths written.
    """
    out_dir = Path(out_dir)
    which = range(len(transcripts)) if classes is None else classes
    return [write_transcript(out_dir / transcript_filename(cls, class_names[cls]),
                             transcripts[cls]) for cls in which]


def _fence(text: str) -> str:
    """``text`` in a Markdown code block whose fence no backtick run inside can close."""
    longest = max((len(run) for run in re.findall(r'`+', text)), default=0)
    fence = '`' * max(3, longest + 1)
    return f'{fence}text\n{text}\n{fence}'


def _joint_labels(joints: Sequence[int], layout) -> str:
    """Joints in the official ``N-name`` form (1-based)."""
    names = layout.joint_names if layout is not None else None
    return ', '.join(f'{j + 1}-{names[j]}' if names is not None and 0 <= j < len(names)
                     else str(j + 1) for j in joints)


def _class_markdown(report: ClassRoundReport, layout) -> list[str]:
    lines = [f'## {report.index + 1:03d} {report.name}', '']
    confused = ', '.join(f"'{name}' ({count})" if count is not None else f"'{name}'"
                         for _, name, count in report.confused)
    lines += [f'Confused with: {confused or "-"}', '']
    lines += ['Prompt:', '', _fence(report.prompt), '']
    if report.ok:
        lines += ['Reply:', '', _fence(report.reply or ''), '']
        if report.joints:
            applied = 'applied to the mask' if report.mask_changed else 'mask kept'
            lines.append(f'Joints named: {_joint_labels(report.joints, layout)} ({applied})')
        else:
            lines.append('Joints named: none (mask kept)')
        if report.dropped:
            lines.append(f'Dropped joint numbers: {", ".join(map(str, report.dropped))}')
        changed = 'changed' if report.description_changed else 'unchanged'
        lines += ['', f'Description ({changed}): {report.description}', '']
    else:
        detail = f' ({report.detail})' if report.detail else ''
        lines += [f'**Failed: {report.error}**{detail}; the class keeps its previous '
                  f'transcript, description and mask.', '']
    return lines


def _report_dict(result: RoundResult, round_index: int, layout) -> dict[str, Any]:
    classes = []
    for report in result.classes:
        entry = asdict(report)
        entry['confused'] = [dict(index=i, name=n, count=c) for i, n, c in report.confused]
        entry['joint_names'] = [layout.joint_names[j] for j in report.joints] \
            if layout is not None else []
        classes.append(entry)
    return dict(round=int(round_index), backend=result.backend,
                version_before=result.previous_version, version_after=result.state.version,
                seconds=round(result.seconds, 3), stats=result.stats.as_dict(),
                updated=list(result.updated), failed=result.failed, classes=classes)


def write_round_report(result: RoundResult, out_dir: str | Path, round_index: int,
                       layout: LayoutArg | None = None) -> Path:
    """Write ``round_{NNN}.md`` (readable) and ``round_{NNN}.json`` (machine-readable).

    Args:
        layout: to name the joints; without it joints are given by number only.

    Returns the path of the Markdown report; the JSON file lies beside it.
    """
    out_dir = Path(out_dir)
    layout = resolve_layout(layout) if layout is not None else None
    stem = f'round_{int(round_index):03d}'
    failed = result.failed
    lines = [f'# Agent round {round_index}', '',
             f'- backend: {result.backend}',
             f'- chats: {result.stats.summary()}',
             f'- classes asked: {len(result.classes)}, updated: {len(result.updated)}, '
             f'failed: {len(failed)}',
             f'- state version: {result.previous_version} -> {result.state.version}',
             f'- round time: {result.seconds:.1f} s', '']
    for report in result.classes:
        lines += _class_markdown(report, layout)
    atomic_write_text(out_dir / f'{stem}.json',
                      json.dumps(_report_dict(result, round_index, layout), indent=2,
                                 ensure_ascii=False) + '\n')
    return atomic_write_text(out_dir / f'{stem}.md', '\n'.join(lines).rstrip() + '\n')
