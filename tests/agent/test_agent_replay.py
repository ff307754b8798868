"""TranscriptReplay: answering the dialogue from stored transcripts."""
import logging
import tempfile
from pathlib import Path

import pytest

from skeletonagent.agent import (
    AgentState,
    MaskFormat,
    Offline,
    PromptSet,
    RoundQuestions,
    Turn,
    build_backend,
    build_masks,
    descriptions_from_transcripts,
    read_transcript_dir,
    run_round,
    write_transcript,
)
from skeletonagent.agent.describe import describe_classes
from skeletonagent.agent.llm import LLMError, TranscriptReplay
from skeletonagent.agent.transcripts import TranscriptError, transcript_filename
from skeletonagent.skeleton import get_layout

NAMES = ['drink water', 'eat meal/snack', 'brushing teeth']
NTU = get_layout('nturgb+d')


def run_initial_dialogues(backend, names, layout):
    """Every class's initial dialogue, held as production holds it (describe_classes, one
    chat_results call per round) and read back from the transcripts it writes."""
    with tempfile.TemporaryDirectory() as folder:
        summary = describe_classes(backend, names, layout, folder)
        assert summary.failed == {}
        return read_transcript_dir(Path(folder), names)


def ask_follow_ups(backend, transcripts, names, similar):
    """The transcripts after one follow-up round, as the agent's round (run_round) asks it."""
    state = AgentState(descriptions_from_transcripts(transcripts),
                       build_masks([[] for _ in names], NTU, 'j'))
    return run_round(backend, RoundQuestions(state, transcripts, names, similar),
                     MaskFormat(NTU, 'j')).transcripts


@pytest.fixture(scope='module')
def dialogues():
    return run_initial_dialogues(Offline(layout=NTU), NAMES, NTU)


@pytest.fixture
def folder(tmp_path, dialogues):
    for i, (name, turns) in enumerate(zip(NAMES, dialogues)):
        follow_up = Turn(PromptSet().follow_up_question(name, [n for n in NAMES if n != name]),
                         f'Stored follow-up answer of {name}.')
        write_transcript(tmp_path / transcript_filename(i, name), turns + [follow_up])
    return tmp_path


def test_replays_the_initial_dialogues_exactly(folder, dialogues):
    replay = TranscriptReplay(folder, label_map=NAMES)
    assert run_initial_dialogues(replay, NAMES, NTU) == dialogues
    assert replay.describe() == f'TranscriptReplay({folder}, 3 classes)'


def test_class_names_from_the_file_names(folder, dialogues):
    replay = TranscriptReplay(folder)
    assert replay.class_names == ['drink water', 'eat meal snack', 'brushing teeth']
    assert run_initial_dialogues(replay, NAMES, NTU) == dialogues


def test_class_names_from_a_label_map_file(folder, tmp_path_factory, dialogues):
    label_map = tmp_path_factory.mktemp('maps') / 'mine.txt'
    label_map.write_text('\n'.join(NAMES) + '\n')
    replay = build_backend(dict(type='TranscriptReplay', transcripts=str(folder),
                                label_map=str(label_map)))
    assert isinstance(replay, TranscriptReplay) and replay.class_names == NAMES


def test_follow_ups_get_the_stored_answer(folder, dialogues):
    replay = TranscriptReplay(folder, label_map=NAMES)
    updated = ask_follow_ups(replay, dialogues, NAMES, {0: [1, 2], 2: [0]})
    assert updated[0][-1].answer == 'Stored follow-up answer of drink water.'
    assert updated[2][-1].answer == 'Stored follow-up answer of brushing teeth.'
    assert updated[1] == dialogues[1]


def test_identifies_the_class_by_the_quoted_name(folder):
    replay = TranscriptReplay(folder, label_map=NAMES)
    # Another wording of the first question (the official one, say), and a looser name.
    chat = [{'role': 'user', 'content': "Describe the person's motion in 'Brushing_Teeth'."}]
    assert replay.identify(chat[0]['content']) == 2
    assert replay.chat(chat) == replay.transcripts[2][0].answer
    second = chat + [{'role': 'assistant', 'content': 'x'},
                     {'role': 'user', 'content': 'And which body parts?'}]
    assert replay.chat(second) == replay.transcripts[2][1].answer


def test_unknown_class_and_missing_round(folder, caplog):
    replay = TranscriptReplay(folder, label_map=NAMES)
    unknown = [{'role': 'user', 'content': "How does the body move in 'juggling'?"}]
    with pytest.raises(LLMError, match='no transcript.*juggling') as info:
        replay.chat(unknown)
    assert info.value.kind == 'other'
    known = [{'role': 'user', 'content': replay.transcripts[0][0].question}]
    too_long = known + [{'role': 'assistant', 'content': 'a'}, {'role': 'user', 'content': 'q'}] * 7
    with caplog.at_level(logging.WARNING):
        results = replay.chat_results([known, unknown, too_long])
    assert [r.error for r in results] == [None, 'other', 'empty']
    assert results[0].requests == 0 and 'round 8' in results[2].detail
    assert caplog.text.count('no answer for chat') == 2


def test_an_unanswered_round_is_empty(tmp_path):
    (tmp_path / '001_wave.txt').write_text(
        "\nRound 1 Question:\nHow does 'wave' look?\n\nRound 1 Answer:\nThe hand swings.\n\n"
        + '=' * 80 + "\n\nRound 2 Question:\nWhich joints?\n\n")
    replay = TranscriptReplay(tmp_path)
    first = [{'role': 'user', 'content': "How does 'wave' look?"}]
    assert replay.chat(first) == 'The hand swings.'
    second = first + [{'role': 'assistant', 'content': 'The hand swings.'},
                      {'role': 'user', 'content': 'Which joints?'}]
    assert replay.chat_results([second])[0].error == 'empty'


def test_missing_transcripts(tmp_path, folder):
    with pytest.raises(TranscriptError, match='not found'):
        TranscriptReplay(tmp_path / 'nowhere')
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(TranscriptError, match='no transcripts'):
        TranscriptReplay(empty)
    with pytest.raises(TranscriptError, match='1 of 4 transcripts missing'):
        TranscriptReplay(folder, label_map=NAMES + ['sneeze'])
    (folder / '001_drink_water.txt').rename(folder / '009_drink_water.txt')
    with pytest.raises(TranscriptError, match='missing'):
        TranscriptReplay(folder)


def test_replay_pairs_a_curly_quote_file_with_an_ascii_label_map(tmp_path):
    from skeletonagent.agent.transcripts import Turn, write_transcript
    write_transcript(tmp_path / '001_grab_other_person\u2019s_stuff.txt',
                     [Turn("Describe 'grab other person\u2019s stuff'.", 'Reach and pull.')])
    replay = TranscriptReplay(tmp_path, label_map=["grab other person's stuff"])
    reply = replay.chat([{'role': 'user', 'content': "Describe 'grab other person's stuff'."}])
    assert reply == 'Reach and pull.'
