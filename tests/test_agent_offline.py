"""The heuristic Offline backend and the prompt templates."""
import pytest

from skeletonagent.agent import INITIAL_ROUNDS, Offline, PromptSet, parse_critical_joints
from skeletonagent.agent.dialogue import ask_follow_ups, run_initial_dialogues
from skeletonagent.agent.llm.heuristics import guess_action
from skeletonagent.registry import LLM_BACKENDS
from skeletonagent.skeleton import get_layout

NTU = get_layout('nturgb+d')
COCO = get_layout('coco')


def joint_names(action, layout=NTU):
    return {layout.joint_names[j] for j in guess_action(action, layout).joints}


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
    assert joint_names('nod head') == {'neck', 'head'}
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


def dialogue(backend, action, layout=NTU):
    return run_initial_dialogues(backend, [action], layout)[0]


def test_every_round_answered_in_its_format():
    backend = Offline(layout='nturgb+d')
    turns = dialogue(backend, 'kick right leg')
    assert len(turns) == len(INITIAL_ROUNDS) == 5
    assert all(turn.answer for turn in turns)
    describe, parts, listing, motion, summary = (t.answer for t in turns)
    assert "'kick right leg'" in describe and 'right leg' in describe
    assert [line.split(':')[0] for line in parts.splitlines()] == \
        ['Head', 'Arms', 'Hands', 'Torso', 'Hips', 'Legs', 'Feet']
    assert listing == '17, 18, 19, 20'
    assert motion.splitlines()[0] == '17-right hip: flexes to swing the thigh.'
    assert parse_critical_joints(motion, NTU).joints == [16, 17, 18, 19]
    assert '\n' not in summary and len(summary.split()) < 50


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
    assert backend.chat(messages) == '3, 4'
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
    assert backend.chat_many([[{'role': 'user', 'content': PromptSet().initial_questions(
        'nod head', COCO)[2]}]]) == ['1, 2, 3, 4, 5']


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
    assert 'nod head' in turns[4].answer and turns[4].answer.startswith('Coordinated')
    with pytest.raises(KeyError, match='unknown prompt template'):
        PromptSet.from_cfg(dict(sumary='x'))
    with pytest.raises(KeyError, match="uses field 'bogus'"):
        PromptSet.from_cfg(dict(describe='{bogus}')).initial_questions('x', NTU)


@pytest.mark.parametrize('action,similar,expected', [
    # one class moving another arm, one moving the same arm: both named for what is true of them
    ('raise left hand', ['raise right hand', 'wave left hand'],
     "Unlike 'raise right hand', which relies on the right arm, 'raise left hand' is driven by the "
     "left arm; it shares the left arm with 'wave left hand', from which the path and timing of the "
     "left shoulder, left elbow and left wrist tell it apart."),
    ('nod head', ['shake head'],
     "'nod head' moves the same head as 'shake head', so it is told apart by the path and timing "
     "of the neck and head rather than by which body parts move."),
])
def test_follow_up_reply_is_a_true_sentence(action, similar, expected):
    from skeletonagent.agent import PromptSet
    backend = Offline(layout='nturgb+d')
    question = PromptSet().follow_up_question(action, similar)
    assert backend.chat([{'role': 'user', 'content': question}]) == expected
