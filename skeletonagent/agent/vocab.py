"""Words for joints: how the agent reads and writes joint names of a skeleton layout.

Everything the agent knows about a skeleton comes from ``skeletonagent.skeleton`` (joint
names, synonyms, body parts, left/right); this module only turns that into lookup tables
(normalised names, name tokens) that the Selector and the offline backend share.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING, Union

from skeletonagent.skeleton import get_layout

if TYPE_CHECKING:  # pragma: no cover - typing only
    from skeletonagent.skeleton import Layout

LayoutArg = Union[str, 'Layout']

_WORD_RE = re.compile(r'[a-z]+')


def resolve_layout(layout: LayoutArg) -> Layout:
    """The :class:`~skeletonagent.skeleton.Layout` for a name (a layout object is kept).

    Objects that merely look like a layout (tests build small hand-made ones) pass through.
    """
    if isinstance(layout, str):
        return get_layout(layout)
    return layout


def normalise(text: str) -> str:
    """Lower case, ``_``/``-`` read as spaces, runs of whitespace as one space."""
    return ' '.join(text.lower().replace('_', ' ').replace('-', ' ').split())


def words(text: str) -> list[str]:
    """The lower-case alphabetic words of ``text``."""
    return _WORD_RE.findall(text.lower())


@lru_cache(maxsize=64)
def _name_table_cached(joint_names: tuple[str, ...],
                       synonyms: tuple[tuple[str, int], ...]) -> tuple[tuple[str, int], ...]:
    table: dict[str, int] = {}
    for index, name in enumerate(joint_names):
        table.setdefault(normalise(name), index)
    for name, index in synonyms:
        table.setdefault(normalise(name), int(index))
    # Longest first, so 'tip of the left hand' wins over 'left hand' when scanning text.
    return tuple(sorted(table.items(), key=lambda item: (-len(item[0]), item[0])))


def name_table(layout: Layout) -> tuple[tuple[str, int], ...]:
    """Every normalised joint name and synonym with its 0-based joint, longest name first.

    Joint names win over synonyms that spell the same words.
    """
    synonyms = tuple(sorted(dict(getattr(layout, 'synonyms', {}) or {}).items()))
    return _name_table_cached(tuple(layout.joint_names), synonyms)


def joint_words(layout: Layout) -> list[frozenset[str]]:
    """The set of words in each joint's own name (synonyms not included)."""
    return [frozenset(words(normalise(name))) for name in layout.joint_names]


def synonym_words(layout: Layout) -> list[frozenset[str]]:
    """The set of words of all synonyms that name each joint."""
    per_joint: list[set[str]] = [set() for _ in layout.joint_names]
    for name, index in dict(getattr(layout, 'synonyms', {}) or {}).items():
        if 0 <= int(index) < len(per_joint):
            per_joint[int(index)].update(words(normalise(name)))
    return [frozenset(s) for s in per_joint]


def numbered_joint_list(layout: Layout) -> str:
    """The layout's joints numbered from 1, as the dialogue shows them: '1-head, 2-neck, ...'."""
    return ', '.join(f'{i + 1}-{name}' for i, name in enumerate(layout.joint_names))


def side_of_joints(layout: Layout) -> list[str]:
    """'left', 'right' or 'centre' for every joint (from ``layout.left/right`` and names)."""
    left, right = set(layout.left), set(layout.right)
    sides = []
    for index, tokens in enumerate(joint_words(layout)):
        if index in left or ('left' in tokens and 'right' not in tokens):
            sides.append('left')
        elif index in right or ('right' in tokens and 'left' not in tokens):
            sides.append('right')
        else:
            sides.append('centre')
    return sides
