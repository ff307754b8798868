"""One agent round (run_round) with the Offline backend and with failing fake backends."""
import json

import numpy as np
import pytest

from skeletonagent.agent import (
    INITIAL_ROUNDS,
    AgentState,
    LLMBackend,
    Offline,
    Turn,
    build_initial_state,
    read_transcript,
    read_transcript_dir,
    run_round,
    save_transcripts,
    transcript_filename,
    write_round_report,
)
from skeletonagent.agent.initial import TRANSCRIPT_SUBDIR
from skeletonagent.agent.llm import ChatResult
from skeletonagent.agent.round import MaskFormat, RoundQuestions, RoundReading
from skeletonagent.datasets.label_map import load_label_map

LAYOUT = 'nturgb+d'
NUM_INITIAL = len(INITIAL_ROUNDS)


@pytest.fixture(scope='module')
def initial(tmp_path_factory):
    """Demo classes, their initial state and transcripts (Offline dialogues)."""
    work_dir = tmp_path_factory.mktemp('work')
    names = load_label_map('demo')
    state = build_initial_state(dict(label_map='demo'), len(names), LAYOUT, 'j', work_dir)
    transcripts = read_transcript_dir(work_dir / TRANSCRIPT_SUBDIR, names)
    return names, state, transcripts


def offline():
    return Offline(layout=LAYOUT)


def run(backend, state, transcripts, names, similar, layout, modality, matrix=None,
        update_masks=False, official_history=False):
    """run_round with its arguments grouped as the hook groups them."""
    return run_round(backend,
                     RoundQuestions(state, transcripts, names, similar, matrix=matrix,
                                    official_history=official_history),
                     MaskFormat(layout, modality), RoundReading(update_masks=update_masks))


class Scripted(LLMBackend):
    """Answers a chat by the class it asks about: a fixed text, or a failure."""

    def __init__(self, answers):
        self.answers = answers  # name -> str reply, or ('error kind', detail)
        self.calls = []

    def chat(self, messages):  # pragma: no cover - chat_results is what rounds use
        raise AssertionError('run_round must use chat_results')

    def chat_results(self, chats):
        self.calls.append(chats)
        results = []
        for chat in chats:
            question = chat[-1]['content']
            name = next(n for n in self.answers if f"mixes up '{n}'" in question)
            answer = self.answers[name]
            if isinstance(answer, tuple):
                results.append(ChatResult(None, error=answer[0], detail=answer[1], requests=3))
            else:
                results.append(ChatResult(answer, requests=1, prompt_tokens=10,
                                          completion_tokens=5))
        return results


def test_offline_round_changes_only_the_asked_classes(initial):
    names, state, transcripts = initial
    similar = {6: [7], 0: [1, 2], 3: []}           # nod head; raise left hand; nothing
    matrix = np.zeros((len(names), len(names)), dtype=np.int64)
    matrix[6, 7], matrix[0, 1], matrix[0, 2] = 12, 5, 2
    result = run(offline(), state, transcripts, names, similar, LAYOUT, 'j',
                       matrix=matrix)
    assert result.updated == [0, 6] and result.failed == []
    assert result.state.version == state.version + 1 and result.changed
    assert result.previous_version == state.version
    changed = [c for c in range(len(names))
               if result.state.descriptions[c] != state.descriptions[c]]
    assert changed == [0, 6]
    np.testing.assert_array_equal(result.state.masks, state.masks)  # masks kept (official)
    assert result.state.critical_joints == state.critical_joints
    for cls in range(len(names)):
        if cls in (0, 6):
            turns = result.transcripts[cls]
            assert turns[:NUM_INITIAL] == transcripts[cls][:NUM_INITIAL]
            assert len(turns) == NUM_INITIAL + 1
            # The description is the (trimmed) follow-up answer.
            assert result.state.descriptions[cls] == turns[-1].answer
        else:
            assert result.transcripts[cls] == transcripts[cls]
    by_class = {r.index: r for r in result.classes}
    assert sorted(by_class) == [0, 6]
    assert "'shake head'" in by_class[6].prompt and "'nod head'" in by_class[6].prompt
    assert "'raise right hand', 'wave left hand'" in by_class[0].prompt
    assert by_class[6].confused == [(7, 'shake head', 12)]
    assert by_class[0].confused == [(1, 'raise right hand', 5), (2, 'wave left hand', 2)]
    assert by_class[6].description_changed and by_class[6].ok
    # Joints read from the reply ignore the quoted class names ('raise right hand').
    assert 11 not in by_class[0].joints and by_class[0].joints
    assert result.stats.chats == 2 and result.stats.num_failed == 0

    # A second round replaces the earlier follow-up instead of stacking another one.
    again = run(offline(), result.state, result.transcripts, names, {6: [7, 8]}, LAYOUT,
                      'j')
    assert len(again.transcripts[6]) == NUM_INITIAL + 1
    assert "'squat down'" in again.transcripts[6][-1].question
    assert again.transcripts[0] == result.transcripts[0]
    assert again.state.version == state.version + 2
    assert again.classes[0].confused == [(7, 'shake head', None), (8, 'squat down', None)]


def test_nothing_to_ask_keeps_the_state(initial):
    names, state, transcripts = initial
    result = run(offline(), state, transcripts, names, {2: []}, LAYOUT, 'j')
    assert result.state is state and not result.changed
    assert result.classes == [] and result.updated == [] and result.stats.chats == 0


def test_failed_chats_keep_the_previous_class_state(initial, tmp_path):
    names, state, transcripts = initial
    backend = Scripted({'nod head': "A short downward dip of the head marks 'nod head'.",
                        'shake head': ('timeout', 'no answer after 3 tries'),
                        'jump up': ('refusal', 'declined'),
                        'bow': '   '})
    similar = {6: [7], 7: [6], 9: [8], 11: [6]}
    result = run(backend, state, transcripts, names, similar, LAYOUT, 'j')
    assert len(backend.calls) == 1 and len(backend.calls[0]) == 4  # one batched call
    assert result.updated == [6] and result.failed == [7, 9, 11]
    assert result.stats.num_failed == 3
    assert result.stats.failures == {'timeout': 1, 'refusal': 1, 'empty': 1}
    for cls in (7, 9, 11):
        assert result.state.descriptions[cls] == state.descriptions[cls]
        assert result.transcripts[cls] == transcripts[cls]
        np.testing.assert_array_equal(result.state.masks[cls], state.masks[cls])
    assert result.state.descriptions[6] == "A short downward dip of the head marks 'nod head'."
    reports = {r.index: r for r in result.classes}
    assert reports[7].error == 'timeout' and reports[7].reply is None
    assert reports[11].error == 'empty'  # a blank text is no answer
    assert result.state.version == state.version + 1

    # All failed: the very same state comes back.
    failing = Scripted(dict.fromkeys(names, ('server_error', '503')))
    none = run(failing, state, transcripts, names, {0: [1], 1: [0]}, LAYOUT, 'j')
    assert none.state is state and none.stats.failures == {'server_error': 2}
    assert none.stats.requests == 6

    # The report shows the failure.
    md = write_round_report(result, tmp_path, 2, layout=LAYOUT).read_text()
    assert 'Failed: timeout' in md and 'no answer after 3 tries' in md


def test_update_masks_uses_the_joints_of_the_follow_up(initial):
    names, state, transcripts = initial
    reply = "Unlike 'shake head':\n3-neck: bends forward.\n4-head: dips and rises."
    backend = Scripted({'nod head': reply, 'kick left leg': 'It is led by the left knee.'})
    similar = {6: [7], 4: [5]}
    kept = run(backend, state, transcripts, names, similar, LAYOUT, 'j')
    np.testing.assert_array_equal(kept.state.masks, state.masks)
    assert {r.index: r.joints for r in kept.classes} == {4: [13], 6: [2, 3]}

    assert state.critical_joints[4] != [13]
    updated = run(backend, state, transcripts, names, similar, LAYOUT, 'j',
                        update_masks=True)
    reports = {r.index: r for r in updated.classes}
    assert reports[4].mask_changed and updated.state.critical_joints[4] == [13]
    assert [int(r) for r in np.flatnonzero(updated.state.masks[4].any(1))] == [13]
    # Nod head names the joints it already had: its mask stays.
    assert updated.state.critical_joints[6] == state.critical_joints[6] == [2, 3]
    assert not reports[6].mask_changed
    unchanged = [c for c in range(len(names)) if c != 4]
    np.testing.assert_array_equal(updated.state.masks[unchanged], state.masks[unchanged])
    assert isinstance(updated.state, AgentState) and updated.state.version == 1

    # Class names in a reply are not joints ('nod head' is no head), but the words around
    # them are read whole ('bow' inside 'elbow' stays).
    names_reply = Scripted({'bow': "Unlike 'nod head', 'bow' bends at the left elbow."})
    bow = run(names_reply, state, transcripts, names, {11: [6]}, LAYOUT, 'j')
    assert bow.classes[0].joints == [5]


def test_reports_and_transcripts_on_disk(initial, tmp_path):
    names, state, transcripts = initial
    result = run(offline(), state, transcripts, names, {6: [7], 9: [8]}, LAYOUT, 'j',
                       update_masks=True)
    md_path = write_round_report(result, tmp_path / 'reports', 7, layout=LAYOUT)
    assert md_path.name == 'round_007.md'
    md = md_path.read_text(encoding='utf-8')
    for report in result.classes:
        assert report.name in md and report.prompt in md and report.reply in md
    assert "'shake head'" in md and 'Joints named: 3-neck, 4-head' in md
    assert result.stats.summary() in md
    data = json.loads((tmp_path / 'reports' / 'round_007.json').read_text(encoding='utf-8'))
    assert data['round'] == 7 and data['version_after'] == 1 and data['updated'] == [6, 9]
    assert [c['name'] for c in data['classes']] == ['nod head', 'jump up']
    assert data['classes'][0]['confused'] == [dict(index=7, name='shake head', count=None)]
    assert data['classes'][0]['joint_names'] == ['neck', 'head']
    assert data['stats']['chats'] == 2

    out = tmp_path / 'transcripts'
    paths = save_transcripts(result.transcripts, names, out, classes=result.updated)
    assert [p.name for p in paths] == [transcript_filename(6, 'nod head'),
                                       transcript_filename(9, 'jump up')]
    assert read_transcript(paths[0]) == result.transcripts[6]
    assert len(save_transcripts(result.transcripts, names, out)) == len(names)


def test_bad_inputs(initial):
    names, state, transcripts = initial
    with pytest.raises(ValueError, match='outside 0..11'):
        run(offline(), state, transcripts, names, {0: [12]}, LAYOUT, 'j')
    with pytest.raises(ValueError, match='12 classes but there are 11 transcripts'):
        run(offline(), state, transcripts[:-1], names, {0: [1]}, LAYOUT, 'j')
    with pytest.raises(ValueError, match='matrix has shape'):
        run(offline(), state, transcripts, names, {0: [1]}, LAYOUT, 'j',
                  matrix=np.zeros((3, 3)))

    class Short(LLMBackend):
        def chat(self, messages):
            return 'x'

        def chat_results(self, chats):
            return []
    with pytest.raises(RuntimeError, match='0 results for 1 chats'):
        run(Short(), state, transcripts, names, {0: [1]}, LAYOUT, 'j')
    assert Turn  # re-exported


@pytest.mark.parametrize('official_history', [False, True])
def test_follow_up_history_as_stored_or_as_the_official_code_reads_it(initial, official_history):
    names, state, transcripts = initial
    stored = [Turn('Q one?\n\n  Rules:  \n1. short  ', 'Head: still.  \n\nArm: up.  '),
              *transcripts[6][1:NUM_INITIAL]]
    chats_of = list(transcripts)
    chats_of[6] = stored
    backend = Scripted({names[6]: 'It nods.'})
    run(backend, state, chats_of, names, {6: [7]}, LAYOUT, 'j',
              official_history=official_history)
    (chat,) = backend.calls[0]
    first_q, first_a = chat[0]['content'], chat[1]['content']
    if official_history:   # each line stripped, blank lines dropped (official update_description)
        assert (first_q, first_a) == ('Q one?\nRules:\n1. short', 'Head: still.\nArm: up.')
    else:
        assert (first_q, first_a) == (stored[0].question, stored[0].answer)
