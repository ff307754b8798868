"""``Offline``: a deterministic stand-in for an LLM, for tests, demos and machines without one.

IT IS NOT AN LLM. It answers every round of the agent's dialogue from the class name alone,
with the word heuristic of :mod:`.heuristics` (a small lexicon of action verbs and body
words plus the layout's joint names, synonyms and body parts). Its answers are well-formed
(numbers where numbers are asked, ``N-joint name: ...`` lines, one-sentence summaries), so
the whole agent pipeline runs end to end without network access, but they carry none of
the knowledge a real model would add. Use ``OpenAIChat`` (or replay official transcripts)
for real descriptions.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

from skeletonagent.registry import LLM_BACKENDS

from ..prompts import FOLLOW_UP, INITIAL_ROUNDS, PromptSet
from ..vocab import LayoutArg, resolve_layout
from .base import LLMBackend, Message, check_messages
from .heuristics import ActionGuess, guess_action, joint_motion_phrase, part_label, region_joints, select_few

__all__ = ['Offline']

# A quoted class name: from a quote to the next quote that ends a word (so "person's"
# inside a name does not end it).
_QUOTED_RE = re.compile(r"'(.+?)'(?=[\s,.;:?!)]|$)")
_REGIONS = ('head', 'arms', 'hands', 'torso', 'hips', 'legs', 'feet')


def _join_words(items: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    items = list(items)
    if len(items) <= 1:
        return ''.join(items)
    return ', '.join(items[:-1]) + ' and ' + items[-1]


def _merge_sides(names: Sequence[str]) -> list[str]:
    """Names with each 'left X' / 'right X' pair read as 'Xs': ['left hip', 'right hip',
    'neck'] -> ['hips', 'neck']."""
    merged: list[str] = []
    for name in names:
        side, _, rest = name.partition(' ')
        mirror = {'left': 'right', 'right': 'left'}.get(side)
        if mirror and f'{mirror} {rest}' in names:
            name = f'{rest}s'
        if name not in merged:
            merged.append(name)
    return merged


@LLM_BACKENDS.register_module()
class Offline(LLMBackend):
    """Heuristic, deterministic answers to the agent's dialogue (a stand-in, not an LLM).

    Args:
        layout: skeleton layout (name or object) the joint numbers refer to; set later by
            :meth:`configure` when None.
        prompts: prompt templates (overrides dict or :class:`PromptSet`) used to recognise
            the questions; defaults to the agent's default templates.
        max_listed_joints: the joint-motion answer lists every critical joint when there
            are at most this many ...
        keep_joints: ... and otherwise only this many (big movers first), as the joint
            motion question asks.
    """

    # NOTE: a heuristic stand-in, not an LLM. Every answer is a function of the class name,
    # the layout and the round alone (no model, no randomness, no network).

    def __init__(self, layout: LayoutArg | None = None, prompts=None,
                 max_listed_joints: int = 10, keep_joints: int = 8) -> None:
        self.layout = resolve_layout(layout) if layout is not None else None
        self.prompts = PromptSet.from_cfg(prompts)
        self.max_listed_joints = int(max_listed_joints)
        self.keep_joints = int(keep_joints)

    def configure(self, layout: LayoutArg | None = None, prompts=None) -> None:
        if layout is not None:
            self.layout = resolve_layout(layout)
        if prompts is not None:
            self.prompts = PromptSet.from_cfg(prompts)

    # ------------------------------------------------------------------ dispatch
    def chat(self, messages: Sequence[Message]) -> str:
        check_messages(messages)
        if self.layout is None:
            raise RuntimeError('the Offline backend needs a skeleton layout: pass layout= '
                               'or call configure(layout=...)')
        user_texts = [m['content'] for m in messages if m['role'] == 'user']
        question = user_texts[-1]
        match = self.prompts.identify(question)
        if match is not None:
            kind, fields = match.kind, match.fields
        else:  # an unknown wording: the position in the dialogue tells the round
            position = len(user_texts)
            kind = INITIAL_ROUNDS[position - 1] if position <= len(INITIAL_ROUNDS) else FOLLOW_UP
            fields = {}
        action = fields.get('action') or self._action_from_history(user_texts)
        if kind == FOLLOW_UP:
            similar = self._similar_names(fields.get('similar'), question, action)
            return self._answer_follow_up(action, similar)
        return getattr(self, f'_answer_{kind}')(action)

    def _action_from_history(self, user_texts: Sequence[str]) -> str:
        """The class name: from the first question that a template recognises, else the
        first quoted name in the dialogue, else the first question itself."""
        for text in user_texts:
            match = self.prompts.identify(text)
            if match is not None and match.fields.get('action'):
                return match.fields['action']
        for text in user_texts:
            quoted = _QUOTED_RE.findall(text)
            if quoted:
                return quoted[0]
        return ' '.join(user_texts[0].split()[:8])

    @staticmethod
    def _similar_names(field: str | None, question: str, action: str) -> list[str]:
        names = _QUOTED_RE.findall(field) if field else []
        if not names:
            names = [n for n in _QUOTED_RE.findall(question) if n != action]
        if not names and field:
            names = [field.strip()]
        return list(dict.fromkeys(names))

    # ------------------------------------------------------------------ helpers
    def _guess(self, action: str) -> ActionGuess:
        return guess_action(action, self.layout)

    def _listed_joints(self, guess: ActionGuess) -> tuple[int, ...]:
        if len(guess.joints) <= self.max_listed_joints:
            return guess.joints
        return select_few(guess.joints, self.layout, self.keep_joints)

    def _parts_phrase(self, guess: ActionGuess) -> str:
        if not guess.mapped:
            return 'whole body'
        return _join_words(_merge_sides([part_label(p) for p in guess.parts])) or 'whole body'

    def _joint_names(self, joints: Sequence[int], limit: int = 4) -> str:
        """The first ``limit`` joints in words, a left/right pair as one plural."""
        names = _merge_sides([self.layout.joint_names[j] for j in joints])
        return _join_words(names[:limit])

    # ------------------------------------------------------------------ the rounds
    def _answer_describe(self, action: str) -> str:
        guess = self._guess(action)
        joints = self._joint_names(self._listed_joints(guess))
        if not guess.mapped:
            return (f"To perform '{action}', the whole body moves, mostly through the "
                    f"{joints}.")
        return (f"To perform '{action}', the person mainly moves the "
                f"{self._parts_phrase(guess)}, led by the {joints}, while the rest of the "
                f"body stays comparatively still.")

    def _answer_body_parts(self, action: str) -> str:
        guess = self._guess(action)
        chosen = set(guess.joints)
        lines = []
        for region in _REGIONS:
            involved = bool(region_joints(self.layout, region) & chosen)
            singular = region in ('head', 'torso')
            label = region.capitalize()
            if not involved:
                lines.append(f"{label}: {'stays' if singular else 'stay'} still.")
            elif guess.side != 'both' and not singular:
                lines.append(f'{label}: the {guess.side} one moves to carry out the action.')
            else:
                lines.append(f"{label}: {'moves' if singular else 'move'} as part of the "
                             f"action.")
        return '\n'.join(lines)

    def _answer_critical_joints(self, action: str) -> str:
        return ', '.join(str(j + 1) for j in self._guess(action).joints)

    def _answer_joint_motion(self, action: str) -> str:
        joints = self._listed_joints(self._guess(action))
        return '\n'.join(f'{j + 1}-{self.layout.joint_names[j]}: '
                         f'{joint_motion_phrase(self.layout, j)}.' for j in joints)

    def _answer_summary(self, action: str) -> str:
        guess = self._guess(action)
        joints = self._joint_names(self._listed_joints(guess))
        if not guess.mapped:
            return (f"Motion spread over the whole body, mostly through the {joints}, marks "
                    f"'{action}'.")
        return (f"Coordinated motion of the {joints} ({self._parts_phrase(guess)}), with "
                f"the rest of the body comparatively still, marks '{action}'.")

    def _answer_follow_up(self, action: str, similar: Sequence[str]) -> str:
        """One sentence: what the classes that move other body parts rely on, what this one is
        driven by, and, for the classes that move the same parts, that the path and timing of
        its key joints tell it apart."""
        guess = self._guess(action)
        own = set(guess.parts)
        joints = self._joint_names(self._listed_joints(guess), 3)
        if not similar:
            return f"'{action}' is recognised by the path and timing of the {joints}."
        parts_of = {name: set(self._guess(name).parts) for name in similar}
        share = [n for n in similar if own & parts_of[n]]
        differ = [n for n in similar if n not in share]
        quoted = lambda names: _join_words([f"'{n}'" for n in names])  # noqa: E731
        labels = lambda parts: _join_words([part_label(p) for p in self.layout.body_parts  # noqa: E731
                                            if p in parts])
        sentence = ''
        if differ:
            theirs = set().union(*(parts_of[n] for n in differ)) - own
            verb = 'relies' if len(differ) == 1 else 'rely'
            contrast = f', which {verb} on the {labels(theirs)}' if theirs else ''
            sentence = (f"Unlike {quoted(differ)}{contrast}, '{action}' is driven by the "
                        f"{self._parts_phrase(guess)}")
            if not share:
                return f'{sentence}, especially the {joints}.'
        shared = own & set().union(*(parts_of[n] for n in share))
        if sentence:
            return (f'{sentence}; it shares the {labels(shared)} with {quoted(share)}, from '
                    f'which the path and timing of the {joints} tell it apart.')
        return (f"'{action}' moves the same {labels(shared)} as {quoted(share)}, so it is told "
                f"apart by the path and timing of the {joints} rather than by which body "
                f"parts move.")
