"""Selector: LLM replies -> critical joints -> Class x V x V masks; final answers -> descriptions.

The joint numbers are read from the round-4 answer (lines ``N-joint name: ...``, 1-based), as
the official ``tools/text/cls_matrix.py`` does. The masks they become are encoded by
:mod:`skeletonagent.skeleton.masks` (the one place that knows the mask format, shared with
the backbone and the drawings); :func:`build_masks` and :func:`base_stream` are its
:func:`~skeletonagent.skeleton.masks.encode_masks` and
:func:`~skeletonagent.skeleton.masks.mask_stream`.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

from ..skeleton.masks import encode_masks as build_masks
from ..skeleton.masks import mask_stream as base_stream
from .prompts import PromptSet
from .transcripts import Turn
from .vocab import LayoutArg, name_table, normalise, resolve_layout

__all__ = ['JointSelection', 'parse_critical_joints', 'build_masks', 'base_stream',
           'critical_joints_from_transcript', 'descriptions_from_transcripts', 'trim_words',
           'JOINT_MOTION_ROUND', 'CRITICAL_JOINTS_ROUND']

#: 0-based position of the joint-motion round (the official "Round 4") in a transcript.
JOINT_MOTION_ROUND = 3
#: 0-based position of the numbers-only critical-joints round ("Round 3").
CRITICAL_JOINTS_ROUND = 2

# "3-neck: ...", "3. neck", "Joint 7 (left wrist)", "- **12-right hand**: ...", "#4: head".
_LABEL_LINE_RE = re.compile(
    r'^[\s>*•·\-–—]*'                              # bullets and markdown emphasis
    r'(?P<joint>(?:critical\s+)?joint\s*)?'        # an optional "Joint" word
    r'(?:no\.?\s*|number\s*|#\s*)?'
    r'(?P<num>\d{1,4})(?![\d.]\d)'                  # the label (not a decimal like 0.5)
    r'\s*\**\s*(?P<sep>[-–—:.)(\]]|$)\s*\**\s*(?P<rest>.*)$',
    re.IGNORECASE)
# "4-head" inside a line (the label must not be part of a number or a word).
_INLINE_LABEL_RE = re.compile(r'(?<![\w.])(?P<num>\d{1,4})\s*[-–—]\s*(?=[A-Za-z])')
# "joint 7", "joints 3, 4 and 7", "joint #12" anywhere in a sentence.
_TAGGED_RE = re.compile(
    r'\bjoints?\s*(?:no\.?\s*|number\s*|#\s*)?'
    r'(?P<nums>\d{1,4}(?:\s*(?:,|;|&|\band\b|\bor\b)\s*#?\d{1,4})*)', re.IGNORECASE)
# A line that is a list of numbers, after an optional "Critical joints:" style lead-in.
_LIST_LINE_RE = re.compile(
    r'^(?:[A-Za-z][A-Za-z \t]{0,40}:)?[\s\[(]*'
    r'\d{1,4}(?:\s*(?:,|;|&|\band\b|\s)\s*\d{1,4})*[\s\])]*\.?\s*$', re.IGNORECASE)
_NUMBER_RE = re.compile(r'\d{1,4}')


@dataclass(frozen=True)
class JointSelection:
    """Critical joints read from one reply.

    Attributes:
        joints: 0-based joint indices, sorted, without repeats.
        dropped: numbers in the reply (1-based, as written) that name no joint of the layout.
        method: how they were read: 'labels', 'list', 'tagged', 'names' or 'none'.
    """

    joints: list[int] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)
    method: str = 'none'


@lru_cache(maxsize=64)
def _compiled_names(table: tuple[tuple[str, int], ...]) -> re.Pattern[str]:
    alternatives = '|'.join(re.escape(name) for name, _ in table)
    return re.compile(rf'(?<![a-z])(?:{alternatives})(?![a-z])')


def _name_regex(layout) -> tuple[re.Pattern[str], dict[str, int]]:
    """A regex finding any joint name or synonym of ``layout`` (longest first), and the
    table from each (normalised) name to its joint."""
    table = name_table(layout)
    return _compiled_names(table), dict(table)


def _starts_with_joint_name(text: str, layout) -> bool:
    pattern, _ = _name_regex(layout)
    return pattern.match(normalise(re.sub(r'[*_`]', ' ', text))) is not None


def _numbers_by_labels(lines: Sequence[str], layout) -> list[int]:
    found = []
    for line in lines:
        match = _LABEL_LINE_RE.match(line)
        if match is not None:
            rest, sep = match.group('rest'), match.group('sep')
            # Accept "Joint 7 ...", the official "7-name", "7. <joint name>" or a bare
            # number; a numbered list of sentences ("1. The arm rises") is not a label.
            if match.group('joint') or (sep and sep in '-–—') or not rest \
                    or _starts_with_joint_name(rest, layout):
                found.append(int(match.group('num')))
        # More "N-joint name" items on the same line ("3-neck, 4-head, 7-left wrist").
        for inline in _INLINE_LABEL_RE.finditer(line):
            if inline.start() > 0 and _starts_with_joint_name(line[inline.end():], layout):
                found.append(int(inline.group('num')))
    return found


def _numbers_by_list(lines: Sequence[str]) -> list[int]:
    found = []
    for line in lines:
        if _LIST_LINE_RE.match(line):
            lead_in = line.split(':', 1)[1] if ':' in line else line
            found.extend(int(n) for n in _NUMBER_RE.findall(lead_in))
    return found


def _numbers_by_tag(text: str) -> list[int]:
    return [int(n) for m in _TAGGED_RE.finditer(text) for n in _NUMBER_RE.findall(m['nums'])]


def _joints_by_names(text: str, lines: Sequence[str], layout) -> list[int]:
    pattern, table = _name_regex(layout)
    # "left wrist: moves up" lines: only the heads name critical joints.
    heads = [normalise(line.split(':', 1)[0].strip(' -*•')) for line in lines if ':' in line]
    head_joints = [table[h] for h in heads if h in table]
    if head_joints:
        return head_joints
    return [table[m.group(0)] for m in pattern.finditer(normalise(text))]


def parse_critical_joints(reply: object, layout: LayoutArg) -> JointSelection:
    """Read the critical joints a reply names; never raises on free text.

    Understands, in this order: label lines (``3-neck: ...``, ``Joint 7 (left wrist)``,
    ``4. head``), number lists (``3, 4, 7``, ``Critical joints: 3, 4 and 7``), "joint N"
    mentions in sentences, and, when the reply holds no joint numbers at all, joint names
    and synonyms of the layout ('left wrist', 'right knee'). Numbers are 1-based; those
    outside ``1..V`` are dropped and reported.
    """
    layout = resolve_layout(layout)
    text = reply if isinstance(reply, str) else ('' if reply is None else str(reply))
    text = text.replace('\r\n', '\n')
    lines = [line for line in text.split('\n') if line.strip()]
    num_joints = len(layout.joint_names)

    numbers, method = [], 'none'
    for name, found in (('labels', lambda: _numbers_by_labels(lines, layout)),
                        ('list', lambda: _numbers_by_list(lines)),
                        ('tagged', lambda: _numbers_by_tag(text))):
        numbers = found()
        if numbers:
            method = name
            break
    if numbers:
        joints = {n - 1 for n in numbers if 1 <= n <= num_joints}
        dropped = list(dict.fromkeys(n for n in numbers if not 1 <= n <= num_joints))
        return JointSelection(sorted(joints), dropped, method)
    by_name = _joints_by_names(text, lines, layout)
    if by_name:
        return JointSelection(sorted(set(by_name)), [], 'names')
    return JointSelection()


def _round_of_kind(turns: Sequence[Turn], prompts: PromptSet, kind: str) -> int | None:
    for i, turn in enumerate(turns):
        match = prompts.identify(turn.question)
        if match is not None and match.kind == kind:
            return i
    return None


def critical_joints_from_transcript(turns: Sequence[Turn], layout: LayoutArg,
                                    prompts: PromptSet | None = None) -> JointSelection:
    """Critical joints of one class's dialogue.

    Read from the joint-motion answer (the round our ``joint_motion`` template asked, or
    round 4 as in the official tool); when that names no joint, from the critical-joints
    answer (round 3). Returns an empty selection when neither names one.
    """
    prompts = prompts or PromptSet()
    motion = _round_of_kind(turns, prompts, 'joint_motion')
    listing = _round_of_kind(turns, prompts, 'critical_joints')
    candidates = [motion if motion is not None else JOINT_MOTION_ROUND,
                  listing if listing is not None else CRITICAL_JOINTS_ROUND]
    tried: list[JointSelection] = []
    for position in candidates:
        if position < len(turns):
            selection = parse_critical_joints(turns[position].answer, layout)
            if selection.joints:
                return selection
            tried.append(selection)
    # Nothing usable: report every number the rounds tried had to drop.
    dropped = [n for selection in tried for n in selection.dropped]
    return JointSelection([], list(dict.fromkeys(dropped)), 'none')


def trim_words(text: str, max_words: int,
               count_tokens: Callable[[str], int] | None = None,
               max_tokens: int = 77) -> str:
    """``text`` on one line, cut to ``max_words`` words and, given a token counter, to
    ``max_tokens`` tokens (CLIP's context is 77 tokens including its two special ones).

    A cut text ends with '.' (trailing commas and the like are removed first).
    """
    tokens = text.split()
    kept = tokens[:max_words] if max_words > 0 else tokens
    cut = len(kept) < len(tokens)

    def render(parts: list[str], was_cut: bool) -> str:
        out = ' '.join(parts)
        if was_cut:
            out = out.rstrip(',;:-–— ')
            if not out.endswith(('.', '!', '?')):
                out += '.'
        return out

    result = render(kept, cut)
    if count_tokens is not None:
        while len(kept) > 1 and count_tokens(result) > max_tokens:
            kept = kept[:-1]
            result = render(kept, True)
    return result


def descriptions_from_transcripts(transcripts: Sequence[Sequence[Turn]], max_words: int = 50,
                                  count_tokens: Callable[[str], int] | None = None,
                                  max_tokens: int = 77,
                                  class_names: Sequence[str] | None = None) -> list[str]:
    """Each class's description: the final non-empty answer of its dialogue, trimmed to
    what a text encoder accepts (see :func:`trim_words`) instead of failing.

    Raises:
        ValueError: naming the class whose dialogue has no answer at all.
    """
    descriptions = []
    for cls, turns in enumerate(transcripts):
        answers = [turn.answer for turn in turns if turn.answer.strip()]
        if not answers:
            label = f' {class_names[cls]!r}' if class_names is not None else ''
            raise ValueError(f'class {cls}{label}: the dialogue has no answer to describe it')
        descriptions.append(trim_words(answers[-1], max_words, count_tokens, max_tokens))
    return descriptions
