"""The questions the agent puts to the LLM about each action class.

The initial dialogue has five rounds (the order of :data:`INITIAL_ROUNDS`):

1. ``describe``: how the body moves during the action;
2. ``body_parts``: what each body part does;
3. ``critical_joints``: the critical joints, by number, from the layout's numbered list;
4. ``joint_motion``: how each critical joint moves, one ``N-joint name: ...`` line each
   (the masks are built from this answer, as in the official tool);
5. ``summary``: one sentence, the class description used for text alignment.

Later rounds use ``follow_up``: it names the classes this one is confused with and asks for
its distinguishing motion in one sentence.

Templates are plain :meth:`str.format` strings with named fields (``{action}``,
``{num_joints}``, ``{joint_list}``, ``{similar}``); any of them can be replaced from config
(``agent_cfg['prompts'] = dict(summary='...')``). The wording is ours.
"""
from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from typing import Any

from .vocab import LayoutArg, numbered_joint_list, resolve_layout

__all__ = ['INITIAL_ROUNDS', 'FOLLOW_UP', 'PromptMatch', 'PromptSet', 'quote_names']

#: Kinds of the initial rounds, in dialogue order.
INITIAL_ROUNDS: tuple[str, ...] = (
    'describe', 'body_parts', 'critical_joints', 'joint_motion', 'summary')
#: Kind of the rounds that follow the initial dialogue.
FOLLOW_UP = 'follow_up'

_DESCRIBE = (
    "In one sentence, explain how a person's body moves from start to end while doing "
    "the action '{action}'.")

_BODY_PARTS = (
    "Which body parts take part in '{action}', and how? Go through head, arms, hands, torso, "
    "hips, legs and feet in that order.\n"
    "Answer format:\n"
    "- one line per body part, written as \"Part: what it does.\"\n"
    "- say \"stays still\" for a part that hardly moves\n"
    "- no numbering, no blank lines, a few words per part")

_CRITICAL_JOINTS = (
    "A skeleton of {num_joints} joints describes the body. Its joints are numbered as "
    "follows: {joint_list}.\n"
    "Which of these joints matter most for recognising '{action}'? Include the left and "
    "the right joint where both take part.\n"
    "Answer format:\n"
    "- only the joint numbers, in increasing order\n"
    "- separated by a comma and a space, on a single line\n"
    "- nothing else")

_JOINT_MOTION = (
    "For each joint you chose, say briefly how it moves during '{action}'.\n"
    "Answer format:\n"
    "- one line per joint, written as \"N-joint name: movement.\" with the joint's number N\n"
    "- in increasing order of N, no blank lines\n"
    "- if you chose more than ten joints, keep only the four to eight most telling ones")

_SUMMARY = (
    "Now sum up in one sentence the motion that identifies '{action}'.\n"
    "Answer format:\n"
    "- a single plain sentence with no line breaks, lists, dashes or joint numbers\n"
    "- begin with the description itself and keep it short")

_FOLLOW_UP = (
    "A skeleton-based recognizer often mixes up '{action}' with {similar}.\n"
    "In one sentence, state the motion that sets '{action}' apart from them.\n"
    "Answer format:\n"
    "- a single plain sentence with no line breaks, lists, dashes or joint numbers\n"
    "- under 60 words, beginning with the description itself")


def quote_names(names: Sequence[str]) -> str:
    """Class names as the follow-up lists them: ``'a', 'b'``."""
    return ', '.join(f"'{name}'" for name in names)


@dataclass(frozen=True)
class PromptMatch:
    """Which prompt a text is, and the field values read back from it."""

    kind: str
    fields: dict[str, str] = field(default_factory=dict)


@lru_cache(maxsize=256)
def _template_regex(template: str) -> re.Pattern[str]:
    """A regex that matches texts produced by ``template`` and captures its fields."""
    parts: list[str] = []
    seen: set[str] = set()
    for literal, name, _spec, _conv in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if name is None:
            continue
        key = name if name.isidentifier() else None
        if key is None:
            parts.append(r'.+?')
        elif key in seen:
            parts.append(f'(?P={key})')
        else:
            seen.add(key)
            parts.append(f'(?P<{key}>.+?)')
    return re.compile(''.join(parts), re.DOTALL)


@dataclass(frozen=True)
class PromptSet:
    """The templates of one dialogue. Build with :meth:`from_cfg` to apply overrides."""

    describe: str = _DESCRIBE
    body_parts: str = _BODY_PARTS
    critical_joints: str = _CRITICAL_JOINTS
    joint_motion: str = _JOINT_MOTION
    summary: str = _SUMMARY
    follow_up: str = _FOLLOW_UP

    @classmethod
    def kinds(cls) -> tuple[str, ...]:
        """All template names."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_cfg(cls, overrides: Mapping[str, str] | None = None) -> PromptSet:
        """Default templates with ``overrides`` applied.

        Raises:
            KeyError: for an unknown template name (the message lists the known ones).
            TypeError: for a template that is not a string.
        """
        if isinstance(overrides, PromptSet):
            return overrides
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(cls.kinds()))
        if unknown:
            raise KeyError(f'unknown prompt template(s) {unknown} in agent prompts; known: '
                           f'{list(cls.kinds())}')
        for name, value in overrides.items():
            if not isinstance(value, str):
                raise TypeError(f'prompt template {name!r} must be a str, got '
                                f'{type(value).__name__}')
        return replace(cls(), **overrides)

    def render(self, kind: str, **values: Any) -> str:
        """Fill template ``kind`` with ``values`` (extra values are ignored).

        Raises:
            KeyError: naming the template and the field it needs that was not given.
        """
        template = getattr(self, kind)
        try:
            return template.format(**values)
        except (KeyError, IndexError) as err:
            raise KeyError(f'prompt template {kind!r} uses field {err} that is not one of '
                           f'{sorted(values)}') from None

    def fields_for(self, action: str, layout: LayoutArg) -> dict[str, Any]:
        """The values every initial template may use."""
        layout = resolve_layout(layout)
        return dict(action=action, num_joints=len(layout.joint_names),
                    joint_list=numbered_joint_list(layout))

    def initial_questions(self, action: str, layout: LayoutArg) -> list[str]:
        """The five questions of the initial dialogue about ``action``."""
        values = self.fields_for(action, layout)
        return [self.render(kind, **values) for kind in INITIAL_ROUNDS]

    def follow_up_question(self, action: str, similar: Sequence[str]) -> str:
        """The follow-up question naming the classes ``action`` is confused with."""
        return self.render(FOLLOW_UP, action=action, similar=quote_names(similar))

    def identify(self, text: str) -> PromptMatch | None:
        """Which template produced ``text`` (None when none did), with its field values.

        Follow-up is tried first, then the initial rounds in order; surrounding whitespace
        is ignored. A text stored without the template's ``*`` characters still matches (the
        official dialogue writer removes every ``*`` from what it stores).
        """
        text = text.strip()
        for strip_stars in (False, True):
            candidate = text.replace('*', '') if strip_stars else text
            for kind in (FOLLOW_UP,) + INITIAL_ROUNDS:
                template = getattr(self, kind).strip()
                if strip_stars:
                    if '*' not in template:
                        continue
                    template = template.replace('*', '')
                match = _template_regex(template).fullmatch(candidate)
                if match is not None:
                    return PromptMatch(kind, dict(match.groupdict()))
        return None
