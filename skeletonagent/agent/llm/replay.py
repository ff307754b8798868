"""``TranscriptReplay``: answer the agent's dialogue from stored transcripts, without an LLM.

Replays the official transcripts (or ours, from an earlier run) so that a run reproduces
the paper's descriptions exactly, offline. A chat is matched to a class and a round:

- the class: the chat's first user question equals (whitespace aside) the first question of
  a class's transcript; else the action name read from it (by the prompt templates, then
  any quoted name) equals a class name or a name quoted in a transcript's first question
  (case, ``_`` and ``/`` aside);
- the round: the chat's last question equals a stored question of that class; else its
  position, the N-th user message getting the N-th stored answer.

A chat that names no known class fails with ``'other'``; a round the transcript does not
hold (a dialogue cut short, a follow-up never asked) fails with ``'empty'``, the kind for
"no content", so the agent keeps that class's previous state.
"""
from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Union

from skeletonagent.datasets.label_map import load_label_map
from skeletonagent.registry import LLM_BACKENDS

from ..prompts import PromptSet
from ..transcripts import TranscriptError, Turn, class_name_key, read_transcript_dir
from .base import ChatResult, LLMBackend, Message, check_messages
from .failures import LLMError

__all__ = ['TranscriptReplay']


PathLike = Union[str, 'os.PathLike[str]']

_FILE_RE = re.compile(r'^(\d+)_(.+)\.txt$')
_QUOTED_RE = re.compile(r"(?<!\w)'(.+?)'(?=[\s,.;:?!)]|$)")  # not the "'" of "person's"


def _squash(text: str) -> str:
    return ' '.join(text.split())


def _name_key(name: str) -> str:
    """A class name compared loosely: 'Drink_Water.' and 'drink water' are one name, and so
    are "person's" and "person\u2019s" (see :func:`..transcripts.class_name_key`)."""
    return class_name_key(name)


def _scan_names(directory: Path) -> list[str]:
    """Class names from the file names ``NNN_name_with_underscores.txt`` (in number order)."""
    found: dict[int, str] = {}
    for path in sorted(directory.glob('*.txt')):
        match = _FILE_RE.match(path.name)
        if match is None:
            continue
        index = int(match.group(1)) - 1
        if index in found:
            raise TranscriptError(f'two transcripts for class number {index + 1} in {directory}')
        found[index] = match.group(2).replace('_', ' ')
    if not found:
        raise TranscriptError(f'no transcripts (NNN_name.txt files) in {directory}')
    missing = sorted(set(range(max(found) + 1)) - set(found))
    if missing:
        raise TranscriptError(f'transcripts of class number(s) {[m + 1 for m in missing[:10]]} '
                              f'missing in {directory}; pass label_map= to name the classes')
    return [found[i] for i in range(len(found))]


@LLM_BACKENDS.register_module()
class TranscriptReplay(LLMBackend):
    """Answers from the transcripts in ``transcripts`` (one ``NNN_name.txt`` per class).

    Args:
        transcripts: the transcript folder (official format, see ``agent/transcripts.py``).
        label_map: class names, in label order: a label-map name or file, or a list; None
            reads them from the file names (underscores read as spaces).
        prompts: prompt templates (overrides or a :class:`PromptSet`) used to read the
            action name from a question; :meth:`configure` may set them later.
    """

    def __init__(self, transcripts: PathLike, label_map: PathLike | Sequence[str] | None = None,
                 prompts=None) -> None:
        self.directory = Path(transcripts).expanduser()
        if not self.directory.is_dir():
            raise TranscriptError(f'transcript directory not found: {self.directory}')
        if label_map is None:
            self.class_names = _scan_names(self.directory)
        elif isinstance(label_map, (str, os.PathLike)):
            self.class_names = load_label_map(label_map)
        else:
            self.class_names = [str(name) for name in label_map]
        self.transcripts: list[list[Turn]] = read_transcript_dir(self.directory, self.class_names)
        self.prompts = PromptSet.from_cfg(prompts)
        self._by_first_question: dict[str, int] = {}
        self._by_name: dict[str, set[int]] = {}
        for cls, (name, turns) in enumerate(zip(self.class_names, self.transcripts)):
            self._by_name.setdefault(_name_key(name), set()).add(cls)
            if turns:
                self._by_first_question.setdefault(_squash(turns[0].question), cls)
                for quoted in _QUOTED_RE.findall(turns[0].question)[:1]:
                    self._by_name.setdefault(_name_key(quoted), set()).add(cls)

    def configure(self, layout=None, prompts=None) -> None:
        if prompts is not None:
            self.prompts = PromptSet.from_cfg(prompts)

    def describe(self) -> str:
        return f'TranscriptReplay({self.directory}, {len(self.class_names)} classes)'

    def __repr__(self) -> str:
        return self.describe()

    # ------------------------------------------------------------------ answering
    def chat(self, messages: Sequence[Message]) -> str:
        """The stored answer; raises :class:`LLMError` (kind 'other' or 'empty') when none."""
        result = self._answer(messages)
        if not result.ok:
            raise LLMError(f'{self.describe()}: {result.error}: {result.detail}', kind=result.error)
        return result.text

    def answer(self, messages: Sequence[Message], round_state: object = None) -> ChatResult:
        """The stored answer of one chat of a round, or why there is none."""
        return self._answer(messages)

    def identify(self, question: str) -> int | None:
        """The class (0-based) a chat whose first question is ``question`` is about."""
        cls = self._by_first_question.get(_squash(question))
        if cls is not None:
            return cls
        candidates = []
        match = self.prompts.identify(question)
        if match is not None and match.fields.get('action'):
            candidates.append(match.fields['action'])
        candidates += _QUOTED_RE.findall(question)
        for name in candidates:
            classes = self._by_name.get(_name_key(name), set())
            if len(classes) == 1:
                return next(iter(classes))
        return None

    def _answer(self, messages: Sequence[Message]) -> ChatResult:
        try:
            check_messages(messages)
        except ValueError as exc:
            return ChatResult(None, error='other', detail=str(exc))
        questions = [m['content'] for m in messages if m['role'] == 'user']
        cls = self.identify(questions[0])
        if cls is None:
            head = _squash(questions[0])[:80]
            return ChatResult(None, error='other',
                              detail=f'no transcript in {self.directory} matches the chat whose '
                                     f'first question is {head!r}')
        turns = self.transcripts[cls]
        last = _squash(questions[-1])
        round_index = next((i for i, turn in enumerate(turns) if _squash(turn.question) == last),
                           len(questions) - 1)
        name = self.class_names[cls]
        if round_index >= len(turns) or not turns[round_index].answer:
            return ChatResult(None, error='empty',
                              detail=f'the transcript of class {cls} {name!r} holds no answer '
                                     f'for round {round_index + 1} ({len(turns)} rounds stored)')
        return ChatResult(turns[round_index].answer)
