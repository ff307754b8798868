"""Selector: reading critical joints from replies, masks, descriptions."""
import random
import string
from types import MappingProxyType, SimpleNamespace

import numpy as np
import pytest

from skeletonagent.agent.selector import (
    base_stream,
    build_masks,
    critical_joints_from_transcript,
    descriptions_from_transcripts,
    parse_critical_joints,
    trim_words,
)
from skeletonagent.agent.transcripts import Turn
from skeletonagent.skeleton import get_layout

NTU = 'nturgb+d'


def names_of(selection, layout=NTU):
    layout = get_layout(layout)
    return [layout.joint_names[j] for j in selection.joints]


@pytest.mark.parametrize('reply, expected, method', [
    ('3, 4, 7', [2, 3, 6], 'list'),
    ('3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 21, 22, 24', [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 20, 21, 23],
     'list'),
    ('Critical joints: 3, 4 and 7.', [2, 3, 6], 'list'),
    ('[12, 8]', [7, 11], 'list'),
    ('3-neck: Tilts forward by about 30 degrees.  \n7-left wrist: Turns 0.5 times.\n'
     '22-tip of the left hand: Fine-tunes contact.', [2, 6, 21], 'labels'),
    ('- **8-left hand**: grips the cup\n- **4-head**: tilts back', [3, 7], 'labels'),
    ('Joint 7 (left wrist)\nJoint 12 (right hand)', [6, 11], 'labels'),
    ('3-neck, 4-head, 7-left wrist', [2, 3, 6], 'labels'),
    ('4. head\n8. left hand', [3, 7], 'labels'),
    ('The key joints are joint 3 and joint 21, the rest matter less.', [2, 20], 'tagged'),
    ('Mostly joints 5, 6 and 9.', [4, 5, 8], 'tagged'),
    ('left wrist, right knee', [6, 17], 'names'),
    ('The left wrist rotates while the Right_Knee bends.', [6, 17], 'names'),
    ('left wrist: rises toward the head\nright knee: bends slightly', [6, 17], 'names'),
    ('tip of the left hand and the right thumb', [21, 24], 'names'),
])
def test_reply_styles(reply, expected, method):
    selection = parse_critical_joints(reply, NTU)
    assert selection.joints == expected
    assert selection.method == method
    assert selection.dropped == []


def test_out_of_range_numbers_are_dropped_and_reported():
    selection = parse_critical_joints('0, 3, 26, 99, 3', NTU)
    assert selection.joints == [2]
    assert selection.dropped == [0, 26, 99]
    labels = parse_critical_joints('3-neck: bends.\n30-left toe: lifts.', NTU)
    assert labels.joints == [2] and labels.dropped == [30]
    # COCO has 17 joints: 18 and above are dropped.
    coco = parse_critical_joints('1, 17, 18', 'coco')
    assert coco.joints == [0, 16] and coco.dropped == [18]


def test_numbers_inside_prose_are_not_labels():
    reply = '1. The arm rises to 90 degrees.\n2. The hand opens for 3 seconds.'
    assert parse_critical_joints(reply, NTU).joints == []
    # Names still count when no joint number is given at all.
    assert names_of(parse_critical_joints('The head tilts by 20 degrees.', NTU)) == ['head']


@pytest.mark.parametrize('reply', [
    None, '', '   \n\n', 'I cannot help with that.', 12, '::::', '-----', '1e9999',
    'Joint', 'joints , and', '\x00\x01', '9' * 500, 'Round 4 Answer:', '3-', '(((', 'é漢字'])
def test_free_text_never_crashes(reply):
    selection = parse_critical_joints(reply, NTU)
    assert all(0 <= j < 25 for j in selection.joints)


def test_random_text_never_crashes():
    rng = random.Random(0)
    alphabet = string.printable + 'éü—–•'
    for _ in range(300):
        text = ''.join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        selection = parse_critical_joints(text, NTU)
        assert selection.joints == sorted(set(selection.joints))
        assert all(0 <= j < 25 for j in selection.joints)


# A hand-made 4-joint layout whose pair list is not in joint order, so the official row
# (pair position) and the bone's own row (v1) differ.
TINY = SimpleNamespace(
    name='tiny', joint_names=('a', 'b', 'c', 'd'), center=0, left=(), right=(),
    bone_pairs=((0, 0), (1, 0), (3, 2), (2, 1)),
    kbone_pairs=((0, 0), (1, 1), (2, 0), (3, 1)),
    body_parts=MappingProxyType({}), synonyms=MappingProxyType({}))


def rows_set(mask):
    return [int(r) for r in np.flatnonzero(mask.any(axis=1))]


def test_joint_masks():
    masks = build_masks([[1], [0, 3], []], TINY, 'j')
    assert masks.shape == (3, 4, 4) and masks.dtype == np.float32
    assert rows_set(masks[0]) == [1] and rows_set(masks[1]) == [0, 3] and rows_set(masks[2]) == []
    assert np.all(masks[1, 0] == 1) and np.all(masks[1, 3] == 1) and masks[1].sum() == 8
    np.testing.assert_array_equal(build_masks([[1], [0, 3], []], TINY, 'jm'), masks)


def test_bone_and_kbone_masks():
    # Joint 2 is in pair 2 (3, 2) and pair 3 (2, 1).
    assert rows_set(build_masks([[2]], TINY, 'b')[0]) == [2, 3]
    # Joint 0 is in (0, 0), (1, 0); with k-bones in (0, 0), (2, 0).
    assert rows_set(build_masks([[0]], TINY, 'b')[0]) == [0, 1]
    assert rows_set(build_masks([[0]], TINY, 'k')[0]) == [0, 2]
    np.testing.assert_array_equal(build_masks([[0], [2]], TINY, 'km'),
                                  build_masks([[0], [2]], TINY, 'k'))
    # row_index='joint' puts each pair's row at its first joint: (3, 2) -> row 3, (2, 1) -> row 2.
    assert rows_set(build_masks([[1]], TINY, 'b', row_index='joint')[0]) == [1, 2]
    assert rows_set(build_masks([[1]], TINY, 'b')[0]) == [1, 3]


def test_ntu_bone_rows_match_official_tool():
    # The official tool sets the rows at the positions of the pairs holding the joint: the
    # spine (0-based 20) is in (1, 20), (2, 20), (4, 20), (8, 20) and (20, 20), the latter
    # at position 21 of the NTU pair list.
    masks = build_masks([[20]], NTU, 'b')
    assert rows_set(masks[0]) == [1, 2, 4, 8, 21]
    assert rows_set(build_masks([[20]], NTU, 'b', row_index='joint')[0]) == [1, 2, 4, 8, 20]
    # Joint masks: only the joint's own row.
    assert rows_set(build_masks([[20]], NTU, 'j')[0]) == [20]


def test_mask_errors():
    with pytest.raises(ValueError, match='unknown modality'):
        build_masks([[0]], TINY, 'x')
    with pytest.raises(ValueError, match='class 1: joint 4 is outside 0..3'):
        build_masks([[0], [4]], TINY, 'j')
    with pytest.raises(ValueError, match='row_index'):
        build_masks([[0]], TINY, 'b', row_index='bad')
    assert base_stream('bm') == 'b'


OFFICIAL_TURNS = [
    Turn('Describe.', 'Moves.'), Turn('Parts?', 'Head: still.'),
    Turn('Critical?', '5, 6, 7, 8, 30'),
    Turn('Each joint?', '6-left elbow: bends at 90 degrees.\n8-left hand: waves 3 times.'),
    Turn('Summary?', 'The left hand waves.')]


def test_critical_joints_from_round_four_then_three():
    selection = critical_joints_from_transcript(OFFICIAL_TURNS, NTU)
    assert selection.joints == [5, 7] and selection.dropped == []
    no_labels = OFFICIAL_TURNS[:3] + [Turn('Each joint?', 'Sorry.')] + OFFICIAL_TURNS[4:]
    fallback = critical_joints_from_transcript(no_labels, NTU)
    assert fallback.joints == [4, 5, 6, 7] and fallback.dropped == [30]
    assert critical_joints_from_transcript([Turn('q', 'a')], NTU).joints == []


def test_descriptions_are_final_answers_trimmed():
    turns = OFFICIAL_TURNS + [Turn('Follow-up?', 'The left hand waves\nfaster than when pointing.')]
    long_answer = ' '.join(f'w{i},' for i in range(80))
    descriptions = descriptions_from_transcripts([OFFICIAL_TURNS, turns, [Turn('q', long_answer)]],
                                                 max_words=50)
    assert descriptions[0] == 'The left hand waves.'
    assert descriptions[1] == 'The left hand waves faster than when pointing.'
    assert len(descriptions[2].split()) == 50 and descriptions[2].endswith('w49.')
    with pytest.raises(ValueError, match="class 0 'x': the dialogue has no answer"):
        descriptions_from_transcripts([[Turn('q', '')]], class_names=['x'])


def test_trim_to_token_budget():
    text = ' '.join(['word'] * 40)
    def count(s: str) -> int:
        return len(s.split()) * 2 + 2  # two tokens a word, plus start/end tokens
    trimmed = trim_words(text, max_words=100, count_tokens=count, max_tokens=77)
    assert count(trimmed) <= 77 and len(trimmed.split()) == 37
    assert trim_words('short text', 50, count) == 'short text'
