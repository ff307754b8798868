"""Pre-generate the initial dialogue of every class into a transcript folder, resumably.

The folder is in the official transcript format, so a training config uses it with
``agent=dict(transcripts=DIR, ...)`` (no LLM call at start). Classes whose transcript already
holds every initial round are skipped, so an interrupted run continues where it stopped.
Classes go to the backend in chunks (one ``chat_results`` call per dialogue round for the
whole chunk, so a remote backend runs them concurrently) and each class's file is written
as soon as its dialogue is complete.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .llm.base import ChatResult, LLMBackend, Message, RoundStats
from .prompts import INITIAL_ROUNDS, PromptSet
from .transcripts import Turn, read_transcript, transcript_filename, write_transcript
from .vocab import LayoutArg, resolve_layout

__all__ = ['DescribeSummary', 'describe_classes', 'complete_transcript']

logger = logging.getLogger(__name__)


@dataclass
class DescribeSummary:
    """What :func:`describe_classes` did: classes written, skipped (already complete) and
    failed (class index → reason), with the cost of the chats it made."""

    written: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    stats: RoundStats = field(default_factory=RoundStats)


def complete_transcript(path: Path) -> bool:
    """Whether ``path`` holds a transcript with every initial round answered."""
    if not path.is_file():
        return False
    try:
        turns = read_transcript(path)
    except ValueError:
        return False
    return len(turns) >= len(INITIAL_ROUNDS) and all(
        t.answer.strip() for t in turns[:len(INITIAL_ROUNDS)])


def _log_failures(failed: dict[int, str], class_names: Sequence[str]) -> None:
    """One warning for the classes of one round that failed for the same reason (a server
    down fails them all), one per class otherwise."""
    if not failed:
        return
    reasons = set(failed.values())
    if len(reasons) == 1 and len(failed) > 1:
        logger.warning('describe: %d classes failed: %s', len(failed), reasons.pop())
        return
    for i, why in failed.items():
        logger.warning('describe: class %d %r failed: %s', i, class_names[i], why)


def describe_classes(backend: LLMBackend, class_names: Sequence[str], layout: LayoutArg,
                     out_dir: os.PathLike | str, prompts: PromptSet | None = None,
                     chunk_size: int = 16, overwrite: bool = False,
                     progress: Callable[[int], None] | None = None) -> DescribeSummary:
    """Hold the initial dialogue of every class not yet done and write its transcript.

    Args:
        backend: the LLM backend (configured here with the layout and prompts).
        class_names: class names in label order (file ``NNN_name.txt`` per class).
        layout: skeleton layout whose numbered joints the questions list.
        out_dir: the transcript folder (created).
        prompts: prompt templates (our defaults when None).
        chunk_size: classes whose dialogues run side by side.
        overwrite: redo classes that already have a complete transcript.
        progress: called with the number of classes finished (written or failed) after each
            chunk, e.g. a tqdm bar's ``update``.
    """
    prompts = prompts or PromptSet()
    layout = resolve_layout(layout)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    backend.configure(layout=layout, prompts=prompts)
    summary = DescribeSummary()
    todo = []
    for index, name in enumerate(class_names):
        if not overwrite and complete_transcript(out / transcript_filename(index, name)):
            summary.skipped.append(index)
        else:
            todo.append(index)
    start = time.perf_counter()
    all_results: list[ChatResult] = []
    for first in range(0, len(todo), max(1, chunk_size)):
        chunk = todo[first:first + max(1, chunk_size)]
        questions = {i: prompts.initial_questions(class_names[i], layout) for i in chunk}
        histories: dict[int, list[Message]] = {i: [] for i in chunk}
        turns: dict[int, list[Turn]] = {i: [] for i in chunk}
        alive = list(chunk)
        for round_index in range(len(INITIAL_ROUNDS)):
            if not alive:
                break
            asked = [questions[i][round_index] for i in alive]
            chats = [histories[i] + [{'role': 'user', 'content': q}] for i, q in zip(alive, asked)]
            results = backend.chat_results(chats)
            all_results += results
            still = []
            failed_now: dict[int, str] = {}
            for i, question, result in zip(alive, asked, results):
                if not result.ok:
                    failed_now[i] = f'round {round_index + 1}: {result.error} {result.detail}'.strip()
                    continue
                histories[i] += [{'role': 'user', 'content': question},
                                 {'role': 'assistant', 'content': result.text}]
                turns[i].append(Turn(question, result.text))
                still.append(i)
            _log_failures(failed_now, class_names)
            summary.failed.update(failed_now)
            alive = still
        for i in alive:
            write_transcript(out / transcript_filename(i, class_names[i]), turns[i])
            summary.written.append(i)
        if progress is not None:
            progress(len(chunk))
    summary.stats = RoundStats.from_results(all_results, time.perf_counter() - start)
    return summary
