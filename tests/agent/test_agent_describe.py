"""tools/agent/describe.py and skeletonagent.agent.describe: initial dialogues, resumable."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from skeletonagent.agent import INITIAL_ROUNDS, read_transcript, transcript_filename
from skeletonagent.agent.describe import complete_transcript, describe_classes
from skeletonagent.agent.llm import ChatResult, Offline
from skeletonagent.datasets.label_map import load_label_map

REPO = Path(__file__).resolve().parents[2]
NAMES = load_label_map('demo')


class FlakyOffline(Offline):
    """Offline answers, except that chats about one class fail from a given round on."""

    def __init__(self, fail_name: str, fail_round: int) -> None:
        super().__init__()
        self.fail_name, self.fail_round = fail_name, fail_round
        self.chats = 0

    def chat_results(self, chats):
        self.chats += len(chats)
        results = super().chat_results(chats)
        for k, chat in enumerate(chats):
            users = [m for m in chat if m['role'] == 'user']
            if f"'{self.fail_name}'" in users[0]['content'] and len(users) >= self.fail_round:
                results[k] = ChatResult(None, error='timeout', detail='scripted')
        return results


def test_describe_writes_every_class_and_resumes(tmp_path):
    flaky = FlakyOffline(NAMES[4], fail_round=3)
    summary = describe_classes(flaky, NAMES, 'nturgb+d', tmp_path, chunk_size=5)
    assert summary.failed.keys() == {4} and 'round 3: timeout' in summary.failed[4]
    assert sorted(summary.written) == [i for i in range(len(NAMES)) if i != 4]
    assert not (tmp_path / transcript_filename(4, NAMES[4])).exists()   # nothing half-written
    turns = read_transcript(tmp_path / transcript_filename(0, NAMES[0]))
    assert len(turns) == len(INITIAL_ROUNDS) and all(t.answer for t in turns)
    assert summary.stats.failures['timeout'] == 1

    again = FlakyOffline('no such class', fail_round=1)
    summary = describe_classes(again, NAMES, 'nturgb+d', tmp_path)
    assert summary.written == [4] and len(summary.skipped) == len(NAMES) - 1
    assert again.chats == len(INITIAL_ROUNDS)          # only the missing class was asked
    assert all(complete_transcript(tmp_path / transcript_filename(i, n)) for i, n in enumerate(NAMES))


def test_truncated_transcript_is_redone(tmp_path):
    describe_classes(Offline(), NAMES[:2], 'nturgb+d', tmp_path)
    path = tmp_path / transcript_filename(1, NAMES[1])
    text = path.read_text()
    path.write_text(text[:text.index('Round 3 Question:')])
    assert not complete_transcript(path)
    summary = describe_classes(Offline(), NAMES[:2], 'nturgb+d', tmp_path)
    assert summary.written == [1] and summary.skipped == [0]


def test_describe_tool_from_config(tmp_path):
    out = tmp_path / 'transcripts'
    cmd = [sys.executable, 'tools/agent/describe.py', '--config', 'configs/demo/j.py',
           '--out', str(out)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f'{len(NAMES)} written' in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == sorted(
        transcript_filename(i, n) for i, n in enumerate(NAMES))
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and f'{len(NAMES)} already complete' in proc.stdout


def test_initial_state_names_failed_classes_and_keeps_the_rest(tmp_path):
    from skeletonagent.agent import build_initial_agent
    from skeletonagent.agent.initial import TRANSCRIPT_SUBDIR
    cfg = dict(label_map='demo', llm=FlakyOffline(NAMES[7], fail_round=2))
    with pytest.raises(RuntimeError, match=r"008 'shake head': round 2: timeout") as err:
        build_initial_agent(cfg, len(NAMES), 'nturgb+d', 'j', tmp_path)
    assert 'tools/agent/describe.py' in str(err.value)
    out = tmp_path / TRANSCRIPT_SUBDIR
    assert len(list(out.iterdir())) == len(NAMES) - 1
    retry = FlakyOffline('nobody', fail_round=1)
    initial = build_initial_agent(dict(label_map='demo', llm=retry), len(NAMES), 'nturgb+d', 'j',
                                  tmp_path)
    assert retry.chats == len(INITIAL_ROUNDS) and len(initial.state.descriptions) == len(NAMES)
