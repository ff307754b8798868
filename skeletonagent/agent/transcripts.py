"""Dialogue transcripts in the official SkeletonAgent text format.

One file per action class, named ``{index + 1:03d}_{name}.txt`` where spaces and ``/`` in
the class name become ``_``. A file is a run of blocks, one per dialogue round::

    \\n
    Round N Question:\\n
    <question>\\n
    \\n
    Round N Answer:\\n
    <answer>\\n
    \\n
    ================================================================================\\n

(the separator is a line of 80 ``=``). The transcripts shipped with the official code
(``skeletonagent/models/heads/text/gpt4o/<dataset>/``) are read unchanged. Texts are stored
without surrounding whitespace: the reader strips each question and answer, the writer
writes them stripped, so a write-read round trip returns stripped texts.
"""
from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from ..errors import SkeletonAgentError
from ..utils.fileio import atomic_write_text

__all__ = [
    'SEPARATOR', 'Turn', 'TranscriptError', 'transcript_filename', 'format_transcript',
    'parse_transcript', 'read_transcript', 'write_transcript', 'read_transcript_dir',
    'turns_to_messages', 'messages_to_turns', 'class_name_key', 'find_transcript',
]

PathLike = Union[str, os.PathLike]

#: The line that closes every round (without its newline).
SEPARATOR = '=' * 80

_HEADER_RE = re.compile(r'^Round[ \t]+(\d+)[ \t]+(Question|Answer):[ \t]*$', re.MULTILINE)


@dataclass(frozen=True)
class Turn:
    """One round of a dialogue: the question put to the LLM and its answer."""

    question: str
    answer: str


class TranscriptError(SkeletonAgentError, ValueError):
    """A transcript file is missing or malformed; the message names the file."""


def transcript_filename(index0: int, name: str) -> str:
    """File name of the transcript of class ``index0`` (0-based) called ``name``.

    >>> transcript_filename(2, 'brushing teeth')
    '003_brushing_teeth.txt'
    """
    if index0 < 0:
        raise ValueError(f'class index must be >= 0, got {index0}')
    return f"{index0 + 1:03d}_{name.replace('/', '_').replace(' ', '_')}.txt"


#: Quote-like characters read as the ASCII apostrophe when class names are compared.
_QUOTES = str.maketrans(dict.fromkeys('\u2018\u2019\u201a\u201b\u2032\u00b4`', "'"))


def class_name_key(name: str) -> str:
    """A class name as transcripts are matched to it: Unicode-normalised (NFKC), curly
    quotes and accents read as ``'``, ``_`` and ``/`` as spaces, runs of blanks squashed,
    case and surrounding dots ignored.

    >>> class_name_key('grab other person\u2019s stuff') == class_name_key("Grab_other_person's stuff")
    True
    """
    text = unicodedata.normalize('NFKC', name).translate(_QUOTES)
    text = text.replace('_', ' ').replace('/', ' ')
    return ' '.join(text.split()).strip(' .').lower()


def find_transcript(directory: PathLike, index0: int, name: str) -> Path | None:
    """The transcript file of class ``index0`` called ``name`` in ``directory``, or None.

    The exact official file name (:func:`transcript_filename`) wins; otherwise a file with
    the class's number whose name part matches by :func:`class_name_key` (another quote
    character, other spacing or case), so a label map and a transcript folder that write
    "person's" and "person\u2019s" still pair up. A number with two matching files is
    ambiguous and raises.

    Raises:
        TranscriptError: when two files of that number match the name.
    """
    directory = Path(directory)
    exact = directory / transcript_filename(index0, name)
    if exact.is_file():
        return exact
    key = class_name_key(name)
    prefix = f'{index0 + 1:03d}_'
    matches = [p for p in sorted(directory.glob(f'{prefix}*.txt'))
               if class_name_key(p.name[len(prefix):-len('.txt')]) == key]
    if len(matches) > 1:
        raise TranscriptError(f'class {index0} {name!r}: {len(matches)} transcripts match in '
                              f'{directory}: {", ".join(p.name for p in matches)}')
    return matches[0] if matches else None


def format_transcript(turns: Iterable[Turn]) -> str:
    """The text of a transcript file holding ``turns`` (rounds numbered from 1)."""
    blocks = []
    for number, turn in enumerate(turns, 1):
        blocks.append(f'\nRound {number} Question:\n{turn.question.strip()}\n\n'
                      f'Round {number} Answer:\n{turn.answer.strip()}\n\n{SEPARATOR}\n')
    return ''.join(blocks)


def _section_text(raw: str) -> str:
    """A question/answer body without the trailing round separator and surrounding space."""
    text = raw.strip()
    if text.endswith(SEPARATOR):
        text = text[:-len(SEPARATOR)].rstrip()
    return text


def parse_transcript(text: str, source: str = '<string>') -> list[Turn]:
    """Parse transcript text into turns.

    A question without an answer (a dialogue cut short) becomes a turn with an empty answer.

    Raises:
        TranscriptError: naming ``source`` when an answer's round number does not match its
            question's, or two questions follow each other.
    """
    text = text.replace('\r\n', '\n').replace('\r', '\n')
    headers = list(_HEADER_RE.finditer(text))
    turns: list[Turn] = []
    pending: tuple[int, str] | None = None  # (round number, question) awaiting its answer
    for i, header in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
        body = _section_text(text[header.end():end])
        number, kind = int(header.group(1)), header.group(2)
        if kind == 'Question':
            if pending is not None:
                raise TranscriptError(
                    f'{source}: round {pending[0]} question has no answer before round '
                    f'{number} question')
            pending = (number, body)
        else:
            if pending is None:
                raise TranscriptError(f'{source}: round {number} answer has no question')
            if pending[0] != number:
                raise TranscriptError(
                    f'{source}: round {pending[0]} question is followed by a round {number} '
                    f'answer')
            turns.append(Turn(pending[1], body))
            pending = None
    if pending is not None:
        turns.append(Turn(pending[1], ''))
    return turns


def read_transcript(path: PathLike) -> list[Turn]:
    """Read one transcript file (official format) into its turns."""
    path = Path(path)
    try:
        text = path.read_text(encoding='utf-8')
    except FileNotFoundError:
        raise TranscriptError(f'transcript not found: {path}') from None
    return parse_transcript(text, source=str(path))


def write_transcript(path: PathLike, turns: Sequence[Turn]) -> Path:
    """Write ``turns`` to ``path`` in the official format, atomically (temp file + rename).

    Parent folders are created. Returns the path written.
    """
    path = Path(path)
    atomic_write_text(path, format_transcript(turns))
    return path


def read_transcript_dir(directory: PathLike, class_names: Sequence[str]) -> list[list[Turn]]:
    """Read the transcript of every class, in class order.

    Files are found by :func:`find_transcript` (quote characters, spacing and case in the
    names aside).

    Raises:
        TranscriptError: naming the missing files (with their class index and name), or a
            transcript in which no round has an answer.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise TranscriptError(f'transcript directory not found: {directory}')
    found = [find_transcript(directory, i, name) for i, name in enumerate(class_names)]
    missing = [(i, name, directory / transcript_filename(i, name))
               for (i, name), p in zip(enumerate(class_names), found) if p is None]
    if missing:
        shown = '; '.join(f'class {i} {name!r}: {p.name}' for i, name, p in missing[:5])
        more = f' (and {len(missing) - 5} more)' if len(missing) > 5 else ''
        raise TranscriptError(
            f'{len(missing)} of {len(class_names)} transcripts missing in {directory}: '
            f'{shown}{more}')
    transcripts = []
    for (i, name), path in zip(enumerate(class_names), found):
        turns = read_transcript(path)
        if not any(turn.answer for turn in turns):
            raise TranscriptError(f'transcript of class {i} {name!r} has no answers: {path}')
        transcripts.append(turns)
    return transcripts


def turns_to_messages(turns: Iterable[Turn]) -> list[dict[str, str]]:
    """Chat messages (``{'role', 'content'}``) replaying a dialogue; unanswered turns stop it."""
    messages: list[dict[str, str]] = []
    for turn in turns:
        if not turn.answer:
            break
        messages.append({'role': 'user', 'content': turn.question})
        messages.append({'role': 'assistant', 'content': turn.answer})
    return messages


def messages_to_turns(messages: Sequence[dict[str, str]]) -> list[Turn]:
    """Turns from chat messages: each user message paired with the assistant reply after it.

    System messages are skipped; a final user message without a reply is dropped.
    """
    turns: list[Turn] = []
    question: str | None = None
    for message in messages:
        role = message.get('role')
        if role == 'user':
            question = message.get('content', '')
        elif role == 'assistant' and question is not None:
            turns.append(Turn(question, message.get('content', '')))
            question = None
    return turns
