"""The heuristic Offline backend and the prompt templates.

The Offline answers are checked for what they must say (the joints of the body parts an
action names, the format each round asks for, the classes a follow-up contrasts), not
against a snapshot of their current wording."""
import re
import tempfile
from pathlib import Path

import pytest

from skeletonagent.agent import (
    INITIAL_ROUNDS,
    AgentState,
    MaskFormat,
    Offline,
    PromptSet,
    RoundQuestions,
    build_masks,
    descriptions_from_transcripts,
    parse_critical_joints,
    read_transcript_dir,
    run_round,
)
from skeletonagent.agent.describe import describe_classes
from skeletonagent.agent.llm.heuristics import guess_action
from skeletonagent.registry import LLM_BACKENDS
from skeletonagent.skeleton import get_layout

NTU = get_layout('nturgb+d')
COCO = get_layout('coco')


def joint_names(action, layout=NTU):
    return {layout.joint_names[j] for j in guess_action(action, layout).joints}


def part_names(part, layout=NTU):
    return [layout.joint_names[j] for j in layout.body_parts[part]]


def listed_names(reply, layout=NTU):
    """The joints of a 'critical joints' reply: 1-based numbers separated by ', '."""
    assert re.fullmatch(r'\d+(, \d+)*', reply), reply
    return [layout.joint_names[int(n) - 1] for n in reply.split(', ')]


def test_kick_right_leg_uses_right_leg_only():
    names = joint_names('kick right leg')
    assert {'right hip', 'right knee', 'right ankle', 'right foot'} <= names
    assert not any('left' in n for n in names)
    coco = joint_names('kicking something with the right leg', COCO)
    assert coco == {'right hip', 'right knee', 'right ankle'}


def test_hand_head_and_whole_body_actions():
    left_hand = joint_names('raise left hand')
    assert {'left shoulder', 'left elbow', 'left wrist', 'left hand'} <= left_hand
    assert not any('right' in n for n in left_hand)
    assert joint_names('nod head') == {'neck', 'head'} == set(part_names('head'))
    drink = joint_names('drink water')
    assert 'head' in drink and {'left hand', 'right hand'} <= drink
    assert not any(w in n for n in drink for w in ('knee', 'ankle', 'foot'))
    assert joint_names('sitting down') == {'left hip', 'left knee', 'right hip', 'right knee'}
    unknown = guess_action('zorbulating', NTU)
    assert not unknown.mapped
    assert {'left hip', 'right knee', 'left shoulder'} <= joint_names('zorbulating')
    # Every layout gets joints through its own names (COCO has no 'hand' joint: its
    # wrists and elbows stand in).
    assert {'left wrist', 'right wrist', 'nose'} <= joint_names('drink water', COCO)


def run_initial_dialogues(backend, names, layout, prompts=None):
    """Every class's initial dialogue, held as production holds it (describe_classes, one
    chat_results call per round) and read back from the transcripts it writes."""
    with tempfile.TemporaryDirectory() as folder:
        summary = describe_classes(backend, names, layout, folder, prompts)
        assert summary.failed == {} and summary.written == list(range(len(names)))
        return read_transcript_dir(Path(folder), names)


def ask_follow_ups(backend, transcripts, names, similar, layout=NTU):
    """The transcripts after one follow-up round, as the agent's round (run_round) asks it."""
    state = AgentState(descriptions_from_transcripts(transcripts),
                       build_masks([[] for _ in names], layout, 'j'))
    return run_round(backend, RoundQuestions(state, transcripts, names, similar),
                     MaskFormat(layout, 'j')).transcripts


def dialogue(backend, action, layout=NTU):
    return run_initial_dialogues(backend, [action], layout)[0]


def test_every_round_answered_in_its_format():
    backend = Offline(layout='nturgb+d')
    turns = dialogue(backend, 'kick right leg')
    assert len(turns) == len(INITIAL_ROUNDS) == 5
    assert all(turn.answer for turn in turns)
    describe, parts, listing, motion, summary = (t.answer for t in turns)
    assert "'kick right leg'" in describe and 'right leg' in describe
    regions = dict(line.split(': ', 1) for line in parts.splitlines())
    assert list(regions) == ['Head', 'Arms', 'Hands', 'Torso', 'Hips', 'Legs', 'Feet']
    moving = {name for name, text in regions.items() if 'still' not in text}
    assert {'Legs', 'Feet', 'Hips'} <= moving and not {'Arms', 'Hands', 'Head'} & moving
    assert 'right' in regions['Legs']
    # the right leg's joints (NTU 17-20: right hip, knee, ankle, foot), by number
    assert listed_names(listing) == part_names('right_leg') == \
        ['right hip', 'right knee', 'right ankle', 'right foot']
    # one 'N-joint name: what it does.' line per listed joint, the name matching the number
    lines = motion.splitlines()
    assert len(lines) == 4
    for line, name in zip(lines, part_names('right_leg')):
        number, rest = line.split('-', 1)
        assert NTU.joint_names[int(number) - 1] == name and rest.startswith(f'{name}: ')
        assert rest.endswith('.') and len(rest) > len(name) + 3
    assert parse_critical_joints(motion, NTU).joints == [16, 17, 18, 19]
    assert '\n' not in summary and len(summary.split()) < 50 and 'kick right leg' in summary


def test_joint_motion_keeps_few_joints_when_many():
    turns = dialogue(Offline(layout='nturgb+d'), 'drink water')
    listed = parse_critical_joints(turns[2].answer, NTU).joints
    motion = parse_critical_joints(turns[3].answer, NTU)
    assert len(listed) > 10 and len(motion.joints) == 8
    assert set(motion.joints) <= set(listed)
    assert 'left thumb' not in {NTU.joint_names[j] for j in motion.joints}


def test_answers_are_deterministic():
    first = run_initial_dialogues(Offline(layout='nturgb+d'), ['drink water', 'hopping'], NTU)
    second = run_initial_dialogues(Offline(layout='nturgb+d'), ['drink water', 'hopping'], NTU)
    assert first == second


def test_follow_up_names_confused_classes_and_contrasts_parts():
    backend = Offline(layout='nturgb+d')
    transcripts = [dialogue(backend, name) for name in
                   ('kick right leg', 'raise left hand', "touch other person's pocket")]
    names = ['kick right leg', 'raise left hand', "touch other person's pocket"]
    updated = ask_follow_ups(backend, transcripts, names, {0: [1, 2]})
    assert len(updated[0]) == 6 and len(updated[1]) == 5
    reply = updated[0][-1].answer
    assert "'raise left hand'" in reply and "'touch other person's pocket'" in reply
    assert 'right leg' in reply and 'left arm' in reply
    assert '\n' not in reply
    # A second follow-up replaces the first, as the official agent does.
    again = ask_follow_ups(backend, updated, names, {0: [1]})
    assert len(again[0]) == 6 and "'touch other" not in again[0][-1].answer


def test_unknown_wording_answered_by_position():
    backend = Offline(layout='nturgb+d')
    messages = [{'role': 'user', 'content': "Tell me about 'nod head'."},
                {'role': 'assistant', 'content': '...'},
                {'role': 'user', 'content': 'And the parts?'},
                {'role': 'assistant', 'content': '...'},
                {'role': 'user', 'content': 'Which joints, by number?'}]
    assert listed_names(backend.chat(messages)) == part_names('head')     # neck, head
    # A sixth question is a follow-up; the quoted names in it are the confused classes.
    later = messages + [{'role': 'assistant', 'content': '.'},
                        {'role': 'user', 'content': '?'}, {'role': 'assistant', 'content': '.'},
                        {'role': 'user', 'content': '?'}, {'role': 'assistant', 'content': '.'},
                        {'role': 'user', 'content': "How does it differ from 'kick right leg'?"}]
    reply = backend.chat(later)
    assert "'kick right leg'" in reply and "'nod head'" in reply


def test_chat_validation_and_registry():
    backend = LLM_BACKENDS.build(dict(type='Offline', layout='coco'))
    assert isinstance(backend, Offline)
    with pytest.raises(ValueError, match='last message'):
        backend.chat([{'role': 'assistant', 'content': 'x'}])
    with pytest.raises(ValueError, match='at least one'):
        backend.chat([])
    with pytest.raises(RuntimeError, match='needs a skeleton layout'):
        Offline().chat([{'role': 'user', 'content': 'hi'}])
    results = backend.chat_results([[{'role': 'user', 'content': PromptSet().initial_questions(
        'nod head', COCO)[2]}]])
    replies = [result.text for result in results]
    assert len(replies) == 1 and results[0].ok
    assert listed_names(replies[0], COCO) == part_names('head', COCO) == \
        ['nose', 'left eye', 'right eye', 'left ear', 'right ear']


def test_prompt_templates_render_identify_and_override():
    prompts = PromptSet()
    questions = prompts.initial_questions("touch other person's pocket", NTU)
    assert '1-base of the spine, 2-middle of the spine' in questions[2]
    assert '25 joints' in questions[2]
    for kind, question in zip(INITIAL_ROUNDS, questions):
        match = prompts.identify(question)
        assert match.kind == kind
        assert match.fields.get('action', "touch other person's pocket") == \
            "touch other person's pocket"
    follow = prompts.follow_up_question('sit down', ['stand up', 'squat'])
    match = prompts.identify(follow)
    assert match.kind == 'follow_up' and match.fields == {
        'action': 'sit down', 'similar': "'stand up', 'squat'"}
    assert prompts.identify('Something else entirely.') is None

    custom = PromptSet.from_cfg(dict(summary='Sum up {action} briefly.'))
    assert custom.initial_questions('wave', NTU)[4] == 'Sum up wave briefly.'
    backend = Offline(layout='nturgb+d', prompts=dict(summary='Sum up {action} briefly.'))
    turns = run_initial_dialogues(backend, ['nod head'], NTU, custom)[0]
    # the reworded question is still the summary round: the same answer as the default one
    default = run_initial_dialogues(Offline(layout='nturgb+d'), ['nod head'], NTU)[0]
    assert turns[4].answer == default[4].answer and 'nod head' in turns[4].answer
    with pytest.raises(KeyError, match='unknown prompt template'):
        PromptSet.from_cfg(dict(sumary='x'))
    with pytest.raises(KeyError, match="uses field 'bogus'"):
        PromptSet.from_cfg(dict(describe='{bogus}')).initial_questions('x', NTU)


def _follow_up(action, similar):
    question = PromptSet().follow_up_question(action, similar)
    reply = Offline(layout='nturgb+d').chat([{'role': 'user', 'content': question}])
    assert '\n' not in reply and reply.endswith('.') and reply.count('. ') == 0   # one sentence
    for name in (action, *similar):
        assert reply.count(f"'{name}'") == 1, (name, reply)
    return reply


def test_follow_up_reply_contrasts_other_parts_and_shared_ones():
    """'raise left hand' against a class moving the other arm and one moving the same arm:
    each is named with what is true of it."""
    reply = _follow_up('raise left hand', ['raise right hand', 'wave left hand'])
    other, shared = reply.split(';')
    # the other class relies on the right arm; this one on the left arm
    before, after = other.split("'raise left hand'")
    assert "'raise right hand'" in before and 'right arm' in before and 'left' not in before
    assert 'left arm' in after and 'right' not in after
    # the class moving the same arm: told apart by the left arm's joints
    assert "'wave left hand'" in shared and 'right' not in shared
    named = [n for n in part_names('left_arm') if n in shared]
    assert len(named) >= 2, shared


def test_follow_up_reply_for_the_same_parts_names_the_key_joints():
    reply = _follow_up('nod head', ['shake head'])
    assert 'head' in reply.replace("'nod head'", '').replace("'shake head'", '')
    assert all(name in reply for name in part_names('head'))            # neck and head
    assert not any(word in reply for word in ('arm', 'leg', 'hand', 'left', 'right'))
