"""Transcripts in the official SkeletonAgent format: write, read, directory reads, errors."""
from pathlib import Path

import pytest

from skeletonagent.agent.transcripts import (
    SEPARATOR,
    TranscriptError,
    Turn,
    format_transcript,
    messages_to_turns,
    parse_transcript,
    read_transcript,
    read_transcript_dir,
    transcript_filename,
    turns_to_messages,
    write_transcript,
)

# A hand-written file in the official layout (our own text): a leading blank line before
# each round, answers with trailing double spaces as the shipped GPT-4o files have, and a
# 4th-round answer whose descriptions hold numbers that are not joint labels.
OFFICIAL_SAMPLE = (
    "\nRound 1 Question:\nHow does the body move when 'waving goodbye'?\n\n"
    "Round 1 Answer:\nOne arm lifts and the hand swings side to side a few times.\n\n"
    + SEPARATOR + "\n"
    "\nRound 2 Question:\nList the body parts for 'waving goodbye'.\nRules:\n1. One line each\n\n"
    "Round 2 Answer:\nHead: Steady.  \nArm: Raised to shoulder height.  \nHand: Swings.\n\n"
    + SEPARATOR + "\n"
    "\nRound 3 Question:\nJoints are: 1-base of the spine, 2-middle of the spine.\n"
    "Which are critical?\n\n"
    "Round 3 Answer:\n9, 10, 11, 12, 24\n\n"
    + SEPARATOR + "\n"
    "\nRound 4 Question:\nDescribe each critical joint.\n\n"
    "Round 4 Answer:\n9-right shoulder: Lifts the arm to about 90 degrees.  \n"
    "11-right wrist: Swings 2 or 3 times.  \n12-right hand: Opens wide.\n\n"
    + SEPARATOR + "\n"
    "\nRound 5 Question:\nSummarise 'waving goodbye' in one sentence.\n\n"
    "Round 5 Answer:\nA raised arm with the open hand swinging side to side at head "
    "height marks waving goodbye.\n\n"
    + SEPARATOR + "\n")


def test_filename_follows_official_naming():
    assert transcript_filename(0, 'drink water') == '001_drink_water.txt'
    assert transcript_filename(44, 'touch chest (stomachache/heart pain)') == \
        '045_touch_chest_(stomachache_heart_pain).txt'
    assert transcript_filename(56, "touch other person's pocket") == \
        "057_touch_other_person's_pocket.txt"
    with pytest.raises(ValueError):
        transcript_filename(-1, 'x')


def test_format_byte_layout():
    text = format_transcript([Turn('Q one?', 'A one.'), Turn('Q two?\nline 2', 'A two.')])
    expected = ('\nRound 1 Question:\nQ one?\n\nRound 1 Answer:\nA one.\n\n' + '=' * 80 + '\n'
                '\nRound 2 Question:\nQ two?\nline 2\n\nRound 2 Answer:\nA two.\n\n'
                + '=' * 80 + '\n')
    assert text == expected
    assert len(SEPARATOR) == 80 and set(SEPARATOR) == {'='}


def test_write_read_round_trip(tmp_path):
    turns = [Turn('Describe it.', 'It moves.'),
             Turn('Which joints?\nRules:\n1. numbers only', '3, 4, 7'),
             Turn('Each joint?', '3-neck: bends.  \n4-head: nods.'),
             Turn('Summary?', '')]
    path = write_transcript(tmp_path / 'sub' / '001_x.txt', turns)
    assert path.is_file()
    assert read_transcript(path) == turns
    # Atomic write leaves no temp file behind.
    assert [p.name for p in path.parent.iterdir()] == ['001_x.txt']
    # Surrounding whitespace is not kept; inner layout is.
    write_transcript(path, [Turn('  Q  \n', '\n A\n  B  \n\n')])
    assert read_transcript(path) == [Turn('Q', 'A\n  B')]


def test_reads_official_format_sample(tmp_path):
    path = tmp_path / '001_waving_goodbye.txt'
    path.write_text(OFFICIAL_SAMPLE, encoding='utf-8')
    turns = read_transcript(path)
    assert len(turns) == 5
    assert turns[0].question == "How does the body move when 'waving goodbye'?"
    assert turns[1].question.endswith('Rules:\n1. One line each')
    assert turns[1].answer == 'Head: Steady.  \nArm: Raised to shoulder height.  \nHand: Swings.'
    assert turns[2].answer == '9, 10, 11, 12, 24'
    assert turns[4].answer.startswith('A raised arm') and turns[4].answer.endswith('goodbye.')
    # Our writer reproduces a file like the sample byte for byte (its texts have no
    # surrounding whitespace).
    assert format_transcript(turns) == OFFICIAL_SAMPLE


def test_reader_tolerates_crlf_and_missing_final_separator():
    text = OFFICIAL_SAMPLE.replace('\n', '\r\n')
    assert parse_transcript(text) == parse_transcript(OFFICIAL_SAMPLE)
    cut = '\nRound 1 Question:\nQ?\n\nRound 1 Answer:\nA.'
    assert parse_transcript(cut) == [Turn('Q?', 'A.')]
    assert parse_transcript('\nRound 1 Question:\nQ?\n\n') == [Turn('Q?', '')]
    assert parse_transcript('') == []


def test_reader_rejects_mismatched_rounds():
    bad = '\nRound 1 Question:\nQ?\n\nRound 2 Answer:\nA.\n\n' + SEPARATOR + '\n'
    with pytest.raises(TranscriptError, match='f.txt.*round 1 question is followed by a round 2'):
        parse_transcript(bad, source='f.txt')
    with pytest.raises(TranscriptError, match='has no question'):
        parse_transcript('Round 1 Answer:\nA.\n')


def test_read_transcript_dir(tmp_path):
    names = ['waving goodbye', 'sit/stand']
    (tmp_path / transcript_filename(0, names[0])).write_text(OFFICIAL_SAMPLE, encoding='utf-8')
    with pytest.raises(TranscriptError) as err:
        read_transcript_dir(tmp_path, names)
    assert "class 1 'sit/stand': 002_sit_stand.txt" in str(err.value)
    assert '1 of 2 transcripts missing' in str(err.value)

    write_transcript(tmp_path / '002_sit_stand.txt', [Turn('Q?', '')])
    with pytest.raises(TranscriptError, match=r"class 1 'sit/stand' has no answers: .*002_sit"):
        read_transcript_dir(tmp_path, names)

    write_transcript(tmp_path / '002_sit_stand.txt', [Turn('Q?', 'A.')])
    transcripts = read_transcript_dir(tmp_path, names)
    assert [len(t) for t in transcripts] == [5, 1]
    with pytest.raises(TranscriptError, match='directory not found'):
        read_transcript_dir(tmp_path / 'nope', names)


def test_messages_conversion():
    turns = [Turn('q1', 'a1'), Turn('q2', 'a2'), Turn('q3', '')]
    messages = turns_to_messages(turns)
    assert messages == [{'role': 'user', 'content': 'q1'}, {'role': 'assistant', 'content': 'a1'},
                        {'role': 'user', 'content': 'q2'}, {'role': 'assistant', 'content': 'a2'}]
    assert messages_to_turns([{'role': 'system', 'content': 's'}] + messages
                             + [{'role': 'user', 'content': 'q3'}]) == turns[:2]


def test_missing_file_error_names_path(tmp_path):
    with pytest.raises(TranscriptError, match=str(Path(tmp_path / 'x.txt'))):
        read_transcript(tmp_path / 'x.txt')


def test_ntu120_label_map_writes_class_109_as_the_official_text():
    from skeletonagent.datasets.label_map import load_label_map
    names = load_label_map('ntu120')
    assert names[108] == 'grab other person\u2019s stuff'          # U+2019, as officially
    assert names[56] == "touch other person's pocket"              # ASCII there, as officially


@pytest.mark.parametrize('file_name,map_name', [
    ('grab other person\u2019s stuff', "grab other person's stuff"),   # official file, ASCII map
    ("grab other person's stuff", 'grab other person\u2019s stuff'),   # ASCII file, official map
    ('Grab  Other_person\u2018s stuff.', 'grab other person\u2019s stuff'),
])
def test_transcripts_pair_with_class_names_across_quotes_and_spacing(tmp_path, file_name, map_name):
    names = ['drink water', map_name]
    write_transcript(tmp_path / transcript_filename(0, 'drink water'), [Turn('Q?', 'water')])
    write_transcript(tmp_path / transcript_filename(1, file_name), [Turn('Q?', 'grab')])
    transcripts = read_transcript_dir(tmp_path, names)
    assert [t[0].answer for t in transcripts] == ['water', 'grab']


def test_a_number_with_two_matching_transcripts_is_ambiguous(tmp_path):
    write_transcript(tmp_path / "001_it's.txt", [Turn('Q?', 'a')])
    write_transcript(tmp_path / '001_it\u2019S.txt', [Turn('Q?', 'b')])
    with pytest.raises(TranscriptError, match='2 transcripts match'):
        read_transcript_dir(tmp_path, ['it\u2018s'])
