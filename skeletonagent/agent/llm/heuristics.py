"""Guess which joints an action uses from its name alone (for the offline backend).

This is a lexicon heuristic, not a model: words of the class name ('kick', 'right', 'leg',
'drink', ...) map to coarse body regions ("concepts"), and the concepts map to joints
through the layout's own body parts, joint names and synonyms. No joint index is written
here; a layout with other joint names gets its joints by the same words.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..vocab import joint_words, side_of_joints, synonym_words, words

__all__ = ['ActionGuess', 'guess_action', 'LEXICON', 'joint_motion_phrase', 'part_label']

# Concepts: coarse body regions an action word points at.
#   head  - head, neck, face joints          arm   - the whole arm, shoulder to fingers
#   hand  - elbow to fingers                 leg   - the whole leg, hip to toes
#   foot  - knee to toes                     trunk - the torso and the centre joint
#   lower - hips and knees (sitting, standing, squatting)
#   whole - big joints of the whole body (fallback for names nothing here maps)
LEXICON: dict[str, tuple[str, ...]] = {
    # legs and feet
    'kick': ('leg',), 'step': ('leg',), 'stamp': ('foot', 'leg'), 'stomp': ('foot', 'leg'),
    'hop': ('leg', 'lower'), 'skip': ('leg', 'lower'), 'walk': ('leg', 'lower'),
    'run': ('leg', 'lower'), 'jog': ('leg', 'lower'), 'jump': ('leg', 'lower'),
    'leap': ('leg', 'lower'), 'stagger': ('leg', 'lower'), 'leg': ('leg',), 'foot': ('foot',),
    'feet': ('foot',), 'knee': ('leg',), 'toe': ('foot',), 'ankle': ('foot',),
    'heel': ('foot',), 'shoe': ('foot', 'hand'), 'sock': ('foot', 'hand'),
    'split': ('leg',),
    # arms and hands
    'raise': ('arm',), 'lift': ('arm',), 'wave': ('arm',), 'clap': ('hand',),
    'applaud': ('hand',), 'throw': ('arm',), 'toss': ('arm',), 'punch': ('arm',),
    'slap': ('arm',), 'hit': ('arm',), 'point': ('arm',), 'salute': ('arm', 'head'),
    'write': ('hand',), 'type': ('hand',), 'reach': ('arm',), 'grab': ('hand',),
    'catch': ('arm', 'hand'), 'push': ('arm',), 'pull': ('arm',), 'hug': ('arm',),
    'handshake': ('hand',), 'hand': ('hand',), 'arm': ('arm',), 'finger': ('hand',),
    'wrist': ('hand',), 'elbow': ('arm',), 'shoulder': ('arm',), 'fist': ('hand',),
    'carry': ('arm',), 'tear': ('hand',), 'fold': ('hand',), 'cut': ('hand',),
    'rub': ('hand',), 'scratch': ('hand',), 'snap': ('hand',), 'juggle': ('hand',),
    'swing': ('arm',), 'stretch': ('arm', 'trunk'), 'give': ('arm',), 'take': ('hand',),
    'put': ('hand',), 'drop': ('hand',), 'pick': ('hand', 'lower'), 'pickup': ('hand', 'lower'),
    'wear': ('hand',), 'touch': ('hand',), 'play': ('hand',), 'phone': ('hand',),
    'tablet': ('hand',), 'keyboard': ('hand',), 'fan': ('hand',), 'cross': ('arm',),
    'open': ('hand',), 'box': ('arm',), 'draw': ('hand',), 'paint': ('hand',),
    'knock': ('hand',), 'pat': ('hand',), 'jacket': ('arm', 'trunk'), 'toast': ('arm',),
    'shoot': ('arm',), 'thumb': ('hand',), 'cheer': ('arm',), 'bounce': ('hand',),
    'dribble': ('hand',), 'ball': ('hand',), 'paper': ('hand',), 'money': ('hand',),
    'object': ('hand',), 'rope': ('arm',), 'watch': ('hand',), 'sign': ('hand',),
    'staple': ('hand',), 'book': ('hand',), 'read': ('hand', 'head'), 'knife': ('arm',),
    'wield': ('arm',), 'five': ('arm',), 'exchange': ('hand',), 'hush': ('hand', 'head'),
    'sniff': ('hand', 'head'), 'smell': ('hand', 'head'), 'follow': ('leg', 'lower'),
    # the hand brought to the face or head
    'drink': ('hand', 'head'), 'eat': ('hand', 'head'), 'meal': ('hand', 'head'),
    'snack': ('hand', 'head'), 'brush': ('hand', 'head'), 'teeth': ('head',),
    'comb': ('hand', 'head'), 'hair': ('head',), 'wipe': ('hand',), 'face': ('head',),
    'glass': ('head',), 'hat': ('head',), 'cap': ('head',), 'headache': ('hand', 'head'),
    'sneeze': ('head', 'hand', 'trunk'), 'cough': ('head', 'hand', 'trunk'),
    'yawn': ('head', 'arm'), 'blow': ('head', 'hand'), 'nose': ('head',),
    'call': ('hand', 'head'), 'mouth': ('head',), 'ear': ('head',), 'eye': ('head',),
    'neckache': ('hand', 'head'),
    # head
    'nod': ('head',), 'head': ('head',), 'neck': ('head',), 'look': ('head',),
    'whisper': ('head',), 'bow': ('head', 'trunk'),
    # trunk
    'bend': ('trunk', 'lower'), 'twist': ('trunk',), 'chest': ('trunk',), 'back': ('trunk',),
    'stomach': ('trunk',), 'stomachache': ('hand', 'trunk'), 'lean': ('trunk',),
    'stoop': ('trunk', 'lower'), 'heart': ('trunk',), 'vomit': ('head', 'trunk'),
    # hips and knees
    'sit': ('lower',), 'stand': ('lower',), 'squat': ('lower',), 'kneel': ('lower',),
    'fall': ('lower', 'trunk'), 'lie': ('lower', 'trunk'), 'crouch': ('lower',),
    'rise': ('lower',), 'chair': ('lower',),
    # whole body
    'salto': ('whole',), 'cartwheel': ('whole',), 'somersault': ('whole',),
    'dance': ('whole',), 'exercise': ('whole',),
}

# Words of joint names that each concept selects (matched against the layout's names).
_CONCEPT_WORDS: dict[str, frozenset[str]] = {
    'head': frozenset({'head', 'neck', 'nose', 'eye', 'ear'}),
    'hand': frozenset({'elbow', 'wrist', 'hand', 'thumb', 'finger', 'palm'}),
    'arm': frozenset({'shoulder', 'elbow', 'wrist', 'hand', 'thumb', 'finger', 'palm'}),
    'leg': frozenset({'hip', 'knee', 'ankle', 'foot', 'toe', 'heel'}),
    'foot': frozenset({'knee', 'ankle', 'foot', 'toe', 'heel'}),
    'trunk': frozenset({'spine', 'pelvis', 'thorax', 'chest', 'torso'}),
    'lower': frozenset({'hip', 'knee', 'pelvis'}),
    'whole': frozenset({'shoulder', 'hip', 'knee'}),
}
# Body parts (layout keys) that stand for a concept where the layout has them.
_CONCEPT_PARTS: dict[str, tuple[str, ...]] = {
    'arm': ('left_arm', 'right_arm'), 'leg': ('left_leg', 'right_leg'), 'head': ('head',),
    'trunk': ('trunk',),
}
# Joints with these words in their names are the big movers; others (thumb, fingertip,
# eye, ear) are dropped first when an answer must be cut to a few joints.
_MAJOR_WORDS = frozenset({'head', 'neck', 'nose', 'shoulder', 'elbow', 'wrist', 'hand', 'hip',
                          'knee', 'ankle', 'foot', 'spine'})

# (words of a joint name, how that joint moves): the first row whose word is in the name.
_MOTION_PHRASES: tuple[tuple[frozenset[str], str], ...] = (
    (frozenset({'tip', 'thumb', 'finger', 'pinky'}), 'follows the hand closely'),
    (frozenset({'head'}), 'tilts and turns with the action'),
    (frozenset({'neck'}), 'flexes to carry the head'),
    (frozenset({'nose', 'eye', 'ear'}), 'moves with the head'),
    (frozenset({'shoulder'}), 'rotates to raise and guide the arm'),
    (frozenset({'elbow'}), 'bends and straightens'),
    (frozenset({'wrist'}), 'turns to orient the hand'),
    (frozenset({'hand', 'palm'}), 'leads the movement'),
    (frozenset({'hip'}), 'flexes to swing the thigh'),
    (frozenset({'knee'}), 'bends and extends'),
    (frozenset({'ankle'}), 'flexes as the foot moves'),
    (frozenset({'foot', 'toe', 'heel'}), 'lifts off and returns to the ground'),
    (frozenset({'spine', 'pelvis', 'thorax', 'center', 'centre', 'chest'}),
     'keeps the trunk balanced'),
)


def _lexicon_entry(word: str) -> tuple[str, ...] | None:
    """Lexicon concepts of ``word`` or of a simple inflection of it (plural, -ing, -ed)."""
    candidates = [word]
    if word.endswith('s') and not word.endswith('ss'):
        candidates.append(word[:-1])
    if word.endswith('es'):
        candidates.append(word[:-2])
    for suffix in ('ing', 'ed'):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            stem = word[:-len(suffix)]
            candidates += [stem, stem + 'e']
            if len(stem) > 2 and stem[-1] == stem[-2]:
                candidates.append(stem[:-1])
    for candidate in candidates:
        if candidate in LEXICON:
            return LEXICON[candidate]
    return None


@dataclass(frozen=True)
class ActionGuess:
    """What the heuristic made of a class name.

    Attributes:
        action: the class name.
        concepts: body regions named by its words, in order of first mention.
        side: 'left', 'right' or 'both'.
        joints: 0-based critical joints, sorted.
        parts: layout body-part keys the joints mostly cover, in the layout's order.
        mapped: False when no word was known and the whole-body fallback was used.
    """

    action: str
    concepts: tuple[str, ...]
    side: str
    joints: tuple[int, ...]
    parts: tuple[str, ...]
    mapped: bool


class _LayoutIndex:
    """Joint lookups by words, body parts and side for one layout."""

    def __init__(self, layout) -> None:
        self.layout = layout
        self.name_words = joint_words(layout)
        self.syn_words = synonym_words(layout)
        self.sides = side_of_joints(layout)
        self.body_parts = {k: tuple(v) for k, v in dict(layout.body_parts).items()}

    def by_words(self, wanted: Iterable[str]) -> set[int]:
        """Joints whose names hold one of ``wanted``; failing that, whose synonyms do."""
        wanted = frozenset(wanted)
        found = {j for j, ws in enumerate(self.name_words) if ws & wanted}
        if not found:
            found = {j for j, ws in enumerate(self.syn_words) if ws & wanted}
        return found

    def concept_joints(self, concept: str) -> set[int]:
        part_keys = [k for k in _CONCEPT_PARTS.get(concept, ()) if k in self.body_parts]
        if concept == 'head':  # the head part plus any head-like joint the trunk holds
            joints = {j for k in part_keys for j in self.body_parts[k]}
            return joints | self.by_words(_CONCEPT_WORDS['head'])
        if concept == 'trunk':
            joints = {j for k in part_keys for j in self.body_parts[k]}
            return joints | self.by_words(_CONCEPT_WORDS['trunk']) | {int(self.layout.center)}
        if part_keys:
            return {j for k in part_keys for j in self.body_parts[k]}
        joints = self.by_words(_CONCEPT_WORDS[concept])
        if concept == 'whole':
            joints.add(int(self.layout.center))
        return joints

    def keep_side(self, joints: set[int], side: str) -> set[int]:
        if side == 'both':
            return joints
        other = 'right' if side == 'left' else 'left'
        return {j for j in joints if self.sides[j] != other}

    def parts_of(self, joints: Iterable[int]) -> tuple[str, ...]:
        """Body parts at least half covered by ``joints`` (any touched one if none is)."""
        chosen = set(joints)
        touched = [(k, len(chosen & set(v)) / max(len(v), 1))
                   for k, v in self.body_parts.items() if chosen & set(v)]
        mostly = tuple(k for k, share in touched if share >= 0.5)
        return mostly or tuple(k for k, _ in touched)


def _side_of(tokens: list[str]) -> str:
    has_left, has_right = 'left' in tokens, 'right' in tokens
    if has_left and not has_right:
        return 'left'
    if has_right and not has_left:
        return 'right'
    return 'both'


def guess_action(action: str, layout) -> ActionGuess:
    """Guess the critical joints of ``action`` on ``layout`` from the words of its name."""
    index = _LayoutIndex(layout)
    tokens = words(action)
    concepts: list[str] = []
    for token in tokens:
        for concept in _lexicon_entry(token) or ():
            if concept not in concepts:
                concepts.append(concept)
    mapped = bool(concepts)
    if not concepts:
        concepts = ['whole']
    side = _side_of(tokens)
    joints: set[int] = set()
    for concept in concepts:
        joints |= index.concept_joints(concept)
    joints = index.keep_side(joints, side)
    if not joints:  # a layout without the named regions: fall back to the whole body
        joints = index.keep_side(index.concept_joints('whole'), side) or {int(layout.center)}
    ordered = tuple(sorted(joints))
    return ActionGuess(action, tuple(concepts), side, ordered, index.parts_of(ordered), mapped)


def select_few(joints: Iterable[int], layout, keep: int) -> tuple[int, ...]:
    """At most ``keep`` of ``joints``: the big movers first (in index order), then the rest."""
    names = joint_words(layout)
    ranked = sorted(joints, key=lambda j: (not (names[j] & _MAJOR_WORDS), j))
    return tuple(sorted(ranked[:keep]))


def joint_motion_phrase(layout, joint: int) -> str:
    """A short, generic movement of ``joint`` chosen by the words of its name."""
    name_words = joint_words(layout)[joint]
    for keys, phrase in _MOTION_PHRASES:
        if name_words & keys:
            return phrase
    return 'moves with the body'


def part_label(key: str) -> str:
    """A body-part key as words: 'right_leg' -> 'right leg'."""
    return key.replace('_', ' ')


def region_joints(layout, region: str) -> set[int]:
    """Joints of a generic body region ('head', 'arms', 'hands', 'torso', 'hips', 'legs',
    'feet') on ``layout``; used to say which of these regions an action moves."""
    index = _LayoutIndex(layout)
    concept = {'head': 'head', 'arms': 'arm', 'hands': 'hand', 'torso': 'trunk',
               'legs': 'leg'}.get(region)
    if concept is not None:
        return index.concept_joints(concept)
    if region == 'hips':
        return index.by_words({'hip', 'pelvis'})
    if region == 'feet':
        return index.by_words({'ankle', 'foot', 'toe', 'heel'})
    raise KeyError(f'unknown body region {region!r}')
