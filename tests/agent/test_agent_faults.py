"""Faults of a remote LLM during ONE AGENT ROUND, end to end.

Every test runs :func:`run_round` with a real ``OpenAIChat`` (built through
``build_backend``) talking HTTP to a :class:`FakeLLMServer` on 127.0.0.1, starting from the
demo's initial state (Offline initial dialogue). Whatever the fault, the round must return,
the classes whose chat failed must keep exactly their description, transcript and mask,
the others must be updated, the statistics must count each failure by kind, and the round
report must say what failed.
"""
import json
import logging
import shutil
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from agent_fakes import FakeRecognizer, step_outputs

from skeletonagent.agent import (
    INITIAL_ROUNDS,
    PromptSet,
    build_backend,
    build_initial_agent,
    run_round,
    write_round_report,
)
from skeletonagent.agent.initial import TRANSCRIPT_SUBDIR
from skeletonagent.agent.llm.openai_chat import REPHRASE_PREFIX
from skeletonagent.agent.round import MaskFormat, RoundQuestions, RoundReading
from skeletonagent.agent.selector import build_masks
from skeletonagent.agent.transcripts import read_transcript, transcript_filename
from skeletonagent.testing import FakeLLMServer, Fault, asks_about
from skeletonagent.testing.llm_server import BAD_JOINTS_TEXT

LAYOUT = 'nturgb+d'
MODALITY = 'j'
NUM_INITIAL = len(INITIAL_ROUNDS)
KEY_ENV = 'SKA_AGENT_FAULTS_TEST_KEY'
KEY = 'sk-agent-faults-test-0123456789'

# demo classes: 0 raise left hand, 1 raise right hand, 2 wave left hand, 4 kick left leg,
# 5 kick right leg, 6 nod head, 7 shake head, 8 squat down, 9 jump up, 11 bow
SIMILAR = {0: [1, 2], 4: [5], 6: [7], 7: [6], 9: [8], 11: [6], 3: []}
ASKED = sorted(c for c, others in SIMILAR.items() if others)


@pytest.fixture(scope='module')
def initial(tmp_path_factory):
    """The demo's initial agent (Offline dialogue), and a snapshot of it to check that no
    round modifies its input."""
    work_dir = tmp_path_factory.mktemp('initial')
    agent = build_initial_agent(dict(label_map='demo'), 12, LAYOUT, MODALITY, work_dir)
    assert agent.state.version == 0 and len(agent.class_names) == 12
    snapshot = (list(agent.state.descriptions), agent.state.masks.copy(),
                [list(t) for t in agent.transcripts])
    yield SimpleNamespace(agent=agent, work_dir=work_dir)
    descriptions, masks, transcripts = snapshot
    assert agent.state.descriptions == descriptions and agent.state.version == 0
    np.testing.assert_array_equal(agent.state.masks, masks)
    assert agent.transcripts == transcripts


@pytest.fixture
def srv():
    with FakeLLMServer() as server:
        yield server


@pytest.fixture
def make_backend(monkeypatch):
    """``make_backend(srv, **overrides)``: a configured OpenAIChat for ``srv`` (the openai SDK
    retries with its own backoff)."""
    monkeypatch.setenv(KEY_ENV, KEY)
    built = []

    def make(server, **kwargs):
        cfg = dict(type='OpenAIChat', model='fake-llm', base_url=server.base_url,
                   api_key_env=KEY_ENV, timeout=5.0, max_retries=2, max_concurrency=8)
        cfg.update(kwargs)
        backend = build_backend(cfg)
        backend.configure(layout=LAYOUT, prompts=PromptSet())
        built.append(backend)
        return backend

    yield make
    for backend in built:
        backend.close()


def one_round(backend, initial, similar=SIMILAR, **reading):
    agent = initial.agent
    return run_round(backend, RoundQuestions(agent.state, agent.transcripts, agent.class_names,
                                             similar),
                     MaskFormat(LAYOUT, MODALITY), RoundReading(**reading))


def requests_for(srv, name):
    """Requests the server received for class ``name``'s chat."""
    about = asks_about(name)
    return sum(1 for body in srv.requests if about(body))


def report_sections(md):
    """The round report's per-class sections, by their heading."""
    return {part.splitlines()[0]: part for part in md.split('\n## ')[1:]}


def check_round(result, initial, failed, tmp_path, similar=SIMILAR):
    """The checks common to every fault: ``failed`` maps each class whose chat must fail to
    its failure kind; every other class asked must be updated."""
    agent = initial.agent
    state, transcripts, names = agent.state, agent.transcripts, agent.class_names
    asked = sorted(c for c, others in similar.items() if others)
    reports = {r.index: r for r in result.classes}
    assert sorted(reports) == asked

    # Failures, by class and by kind.
    assert result.failed == sorted(failed)
    assert {c: reports[c].error for c in failed} == failed
    assert result.stats.failures == Counter(failed.values())
    assert result.stats.num_failed == len(failed) and result.stats.chats == len(asked)
    assert result.updated == [c for c in asked if c not in failed]

    for cls in range(len(names)):
        if cls in failed:
            # Exactly what the class had before the round.
            report = reports[cls]
            assert report.reply is None and report.detail
            assert not report.description_changed and not report.mask_changed
            assert report.description == state.descriptions[cls]
        if cls not in result.updated:
            assert result.state.descriptions[cls] == state.descriptions[cls]
            assert result.transcripts[cls] == transcripts[cls]
            np.testing.assert_array_equal(result.state.masks[cls], state.masks[cls])
            assert result.state.critical_joints[cls] == state.critical_joints[cls]
        else:
            report = reports[cls]
            assert report.ok and report.reply
            turns = result.transcripts[cls]
            assert turns[:NUM_INITIAL] == transcripts[cls][:NUM_INITIAL]
            assert len(turns) == NUM_INITIAL + 1
            assert turns[-1].question == report.prompt and turns[-1].answer == report.reply
            assert result.state.descriptions[cls] == report.description
            assert report.description_changed
            assert report.description != state.descriptions[cls]

    # The version goes up once when anything changed; otherwise the very same state.
    if result.updated:
        assert result.state.version == state.version + 1 and result.changed
    else:
        assert result.state is state and not result.changed
    assert result.previous_version == state.version
    masks = result.state.masks
    assert masks.shape == state.masks.shape and masks.dtype == state.masks.dtype
    assert set(np.unique(masks).tolist()) <= {0.0, 1.0}

    # The report names each failure, in its class's section and in the summary.
    md_path = write_round_report(result, tmp_path / 'rounds', 1, layout=LAYOUT)
    md = md_path.read_text(encoding='utf-8')
    assert result.stats.summary() in md
    assert f'updated: {len(result.updated)}, failed: {len(failed)}' in md
    sections = report_sections(md)
    for cls in asked:
        section = sections[f'{cls + 1:03d} {names[cls]}']
        if cls in failed:
            assert f'**Failed: {failed[cls]}**' in section
            assert 'keeps its previous transcript, description and mask' in section
        else:
            assert 'Failed' not in section and reports[cls].reply in section
    for kind, count in Counter(failed.values()).items():
        assert f'{kind} {count}' in md
    data = json.loads((tmp_path / 'rounds' / 'round_001.json').read_text(encoding='utf-8'))
    assert data['failed'] == sorted(failed) and data['updated'] == result.updated
    assert data['stats']['failures'] == dict(Counter(failed.values()))
    assert {c['index']: c['error'] for c in data['classes'] if c['error']} == failed
    return reports, md


# --------------------------------------------------------------------------- the faults
def test_no_fault_updates_every_asked_class(srv, make_backend, initial, tmp_path):
    result = one_round(make_backend(srv), initial)
    check_round(result, initial, {}, tmp_path)
    assert result.stats.requests == len(ASKED) == srv.request_count
    assert srv.records[0].headers['authorization'] == f'Bearer {KEY}'
    assert KEY not in result.backend


def test_429_then_success(srv, make_backend, initial, tmp_path):
    srv.when(asks_about('nod head'), Fault.status(429, retry_after=0.05))
    result = one_round(make_backend(srv), initial)
    _, md = check_round(result, initial, {}, tmp_path)
    assert requests_for(srv, 'nod head') == 2
    assert all(requests_for(srv, initial.agent.class_names[c]) == 1 for c in ASKED if c != 6)
    assert result.stats.requests == len(ASKED) + 1
    assert srv.counts == {'status 429': 1, 'ok': len(ASKED)}
    assert f'{len(ASKED) + 1} requests' in md       # the retry shows in the report


@pytest.mark.parametrize('code, kind', [(500, 'server_error'), (503, 'server_error'),
                                        (429, 'rate_limit')])
def test_error_storm_for_one_class(srv, make_backend, initial, tmp_path, code, kind):
    srv.when(asks_about('shake head'), Fault.status(code, times=None))
    result = one_round(make_backend(srv, max_retries=2), initial)
    reports, _ = check_round(result, initial, {7: kind}, tmp_path)
    assert requests_for(srv, 'shake head') == 3     # 1 + max_retries
    assert 'after 3 attempts' in reports[7].detail
    assert result.stats.requests == len(ASKED) + 2


def test_timeouts(srv, make_backend, initial, tmp_path):
    srv.when(asks_about('jump up'), Fault.hang(5.0, times=None))
    result = one_round(make_backend(srv, timeout=0.3, max_retries=1), initial)
    reports, _ = check_round(result, initial, {9: 'timeout'}, tmp_path)
    assert requests_for(srv, 'jump up') == 2
    assert 'no answer within 0.3 s' in reports[9].detail   # the client's timeout, not the hang


def test_timeout_then_success(srv, make_backend, initial, tmp_path):
    srv.when(asks_about('jump up'), Fault.hang(5.0))
    result = one_round(make_backend(srv, timeout=0.3, max_retries=1), initial)
    check_round(result, initial, {}, tmp_path)
    assert requests_for(srv, 'jump up') == 2 and srv.counts['hang'] == 1


@pytest.mark.parametrize('times, failed', [(1, {}), (None, {11: 'connection'})])
def test_dropped_connection(srv, make_backend, initial, tmp_path, times, failed):
    srv.when(asks_about('bow'), Fault.drop(times=times))
    result = one_round(make_backend(srv, max_retries=2), initial)
    check_round(result, initial, failed, tmp_path)
    assert requests_for(srv, 'bow') == (2 if times == 1 else 3)


def test_refusal_rephrased_then_answered(srv, make_backend, initial, tmp_path):
    srv.when(asks_about('nod head'), Fault.refusal())
    result = one_round(make_backend(srv), initial)
    reports, _ = check_round(result, initial, {}, tmp_path)
    asked = [body for body in srv.requests if asks_about('nod head')(body)]
    assert len(asked) == 2
    first, second = (body['messages'][-1]['content'] for body in asked)
    assert second == REPHRASE_PREFIX + first == REPHRASE_PREFIX + reports[6].prompt
    # The transcript keeps the question as asked, not the rephrase.
    assert result.transcripts[6][-1].question == reports[6].prompt
    assert not result.transcripts[6][-1].question.startswith(REPHRASE_PREFIX)


@pytest.mark.parametrize('style', ['text', 'field', 'filter'])
def test_refused_twice(srv, make_backend, initial, tmp_path, style):
    srv.when(asks_about('nod head'), Fault.refusal(style, times=None))
    result = one_round(make_backend(srv), initial)
    reports, _ = check_round(result, initial, {6: 'refusal'}, tmp_path)
    assert requests_for(srv, 'nod head') == 2       # asked once more, rephrased
    assert 'refused twice' in reports[6].detail


@pytest.mark.parametrize('fault', [Fault.empty(times=None), Fault.reply(None, times=None),
                                   Fault.reply('  \n ', times=None)],
                         ids=['empty', 'null', 'blank'])
def test_empty_content(srv, make_backend, initial, tmp_path, fault):
    srv.when(asks_about('kick left leg'), fault)
    result = one_round(make_backend(srv), initial)
    check_round(result, initial, {4: 'empty'}, tmp_path)
    assert requests_for(srv, 'kick left leg') == 1  # not retried


def test_malformed_content(srv, make_backend, initial, tmp_path):
    srv.when(asks_about('kick left leg'), Fault.malformed(times=None))
    result = one_round(make_backend(srv), initial)
    check_round(result, initial, {4: 'malformed'}, tmp_path)
    assert requests_for(srv, 'kick left leg') == 1  # not retried


def test_several_faults_in_one_round(srv, make_backend, initial, tmp_path):
    srv.when(asks_about('raise left hand'), Fault.status(500, times=None))
    srv.when(asks_about('kick left leg'), Fault.malformed(times=None))
    srv.when(asks_about('shake head'), Fault.refusal(times=None))
    srv.when(asks_about('jump up'), Fault.hang(5.0, times=None))
    srv.when(asks_about('bow'), Fault.status(429, retry_after=0.02))
    result = one_round(make_backend(srv, timeout=0.3, max_retries=1), initial)
    check_round(result, initial, {0: 'server_error', 4: 'malformed', 7: 'refusal',
                                  9: 'timeout'}, tmp_path)
    assert result.updated == [6, 11]


def test_joint_numbers_out_of_range(srv, make_backend, initial, tmp_path):
    agent = initial.agent
    srv.when(asks_about('kick left leg'), Fault.bad_joints(times=None))     # '0, 3, 4, 99, 1000'
    srv.when(asks_about('jump up'), Fault.reply('0, 26, 99 and 1000', times=None))
    result = one_round(make_backend(srv), initial, update_masks=True)
    reports, md = check_round(result, initial, {}, tmp_path)

    # Kick left leg: the valid numbers (3-neck, 4-head) make its mask; the rest are dropped.
    kick = reports[4]
    assert kick.reply == BAD_JOINTS_TEXT
    assert kick.joints == [2, 3] and kick.dropped == [0, 99, 1000] and kick.mask_changed
    assert result.state.critical_joints[4] == [2, 3] != agent.state.critical_joints[4]
    np.testing.assert_array_equal(result.state.masks[4],
                                  build_masks([[2, 3]], LAYOUT, MODALITY)[0])
    # Jump up: no valid number at all, so its mask is kept.
    jump = reports[9]
    assert jump.joints == [] and jump.dropped == [0, 26, 99, 1000] and not jump.mask_changed
    np.testing.assert_array_equal(result.state.masks[9], agent.state.masks[9])
    assert result.state.critical_joints[9] == agent.state.critical_joints[9]

    num_joints = 25
    assert result.state.masks.shape == (12, num_joints, num_joints)
    assert set(np.unique(result.state.masks).tolist()) <= {0.0, 1.0}
    assert all(0 <= j < num_joints for joints in result.state.critical_joints for j in joints)
    sections = report_sections(md)
    assert 'Dropped joint numbers: 0, 99, 1000' in sections['005 kick left leg']
    assert 'Joints named: 3-neck, 4-head (applied to the mask)' in sections['005 kick left leg']
    assert 'Dropped joint numbers: 0, 26, 99, 1000' in sections['010 jump up']
    assert 'Joints named: none (mask kept)' in sections['010 jump up']


def test_server_down_for_the_whole_round(srv, make_backend, initial, tmp_path):
    backend = make_backend(srv, max_retries=4)
    srv.down()
    result = one_round(backend, initial)
    reports, md = check_round(result, initial, dict.fromkeys(ASKED, 'connection'), tmp_path)
    assert result.state is initial.agent.state and result.state.version == 0
    assert result.updated == [] and srv.request_count == 0
    assert 'state version: 0 -> 0' in md
    # Failed fast: no retries (at most the one attempt each chat had made), and one short
    # line naming the server and how to check it, in the report too.
    line = (f'cannot reach the LLM server at {srv.base_url} (connection refused); '
            f'check it with: curl {srv.base_url}/models')
    assert result.stats.requests <= len(ASKED)
    assert all(reports[c].detail == line for c in ASKED) and line in md
    # The server is back for the next round, and the same backend uses it.
    srv.up()
    again = one_round(backend, initial)
    assert again.failed == [] and again.updated == ASKED and again.state.version == 1


# --------------------------------------------------------------------------- the live hook
@pytest.mark.parametrize('background', [True, False])
def test_agent_hook_round_with_a_failing_class(srv, initial, tmp_path, monkeypatch, background):
    """AgentHook's own round logic (no mmengine Runner): confusions counted from the
    'training' logits, a round against the server with a 500 storm for one class, the new
    state installed at the next epoch boundary, report and transcripts on disk."""
    from skeletonagent.agent.hook import REPORT_SUBDIR, AgentHook
    monkeypatch.setenv(KEY_ENV, KEY)
    agent = initial.agent
    names = agent.class_names
    # The initial dialogue is reused from the work dir: no request for it.
    shutil.copytree(initial.work_dir / TRANSCRIPT_SUBDIR, tmp_path / TRANSCRIPT_SUBDIR)
    hook = AgentHook(interval=1, layout=LAYOUT, modality=MODALITY, top_k=2, background=background,
                     final_wait=10, label_map='demo',
                     llm=dict(type='OpenAIChat', model='fake-llm', base_url=srv.base_url,
                              api_key_env=KEY_ENV, timeout=5.0, max_retries=1))
    model = FakeRecognizer()
    runner = SimpleNamespace(model=model, work_dir=str(tmp_path), epoch=0, max_epochs=2,
                             logger=logging.getLogger('test_agent_faults'))
    hook.before_train(runner)
    assert srv.request_count == 0 and hook.state.digests() == agent.state.digests()
    assert len(model.installed) == 1

    # Epoch 0: nod head (6) is taken for shake head (7) and the other way round.
    srv.when(asks_about('shake head'), Fault.status(500, times=None))
    labels = torch.tensor([6, 7, 6, 0])
    logits = torch.full((4, 12), -5.0)
    logits[torch.arange(4), torch.tensor([7, 6, 7, 0])] = 5.0
    hook.after_train_iter(runner, 0, outputs=step_outputs(logits, labels))
    hook.after_train_epoch(runner)                  # starts the round
    if background:
        hook._future.result(timeout=10)
        assert hook.state.version == 0              # installed only at the next boundary
    runner.epoch = 1
    hook.after_train_epoch(runner)                  # installs it (the last epoch: no new round)
    assert hook.rounds_done == 1

    state = hook.state
    assert state.version == 1
    assert state.descriptions[7] == agent.state.descriptions[7]          # failed: kept
    assert state.descriptions[6] != agent.state.descriptions[6]          # answered: updated
    assert [c for c in range(12) if state.descriptions[c] != agent.state.descriptions[c]] == [6]
    np.testing.assert_array_equal(state.masks, agent.state.masks)
    assert state.embeddings is not None and tuple(state.embeddings.shape) == (12, 4)
    assert len(model.installed) == 2 and model.installed[-1][0] == state.descriptions
    assert requests_for(srv, 'shake head') == 2 and requests_for(srv, 'nod head') == 1

    md = (tmp_path / REPORT_SUBDIR / 'round_001.md').read_text(encoding='utf-8')
    assert '**Failed: server_error**' in report_sections(md)['008 shake head']
    data = json.loads((tmp_path / REPORT_SUBDIR / 'round_001.json').read_text(encoding='utf-8'))
    assert data['failed'] == [7] and data['updated'] == [6]
    assert data['stats']['failures'] == {'server_error': 1}
    # Transcripts on disk: the answered class gained its follow-up, the failed one did not.
    folder = tmp_path / TRANSCRIPT_SUBDIR
    assert len(read_transcript(folder / transcript_filename(6, names[6]))) == NUM_INITIAL + 1
    assert read_transcript(folder / transcript_filename(7, names[7])) == agent.transcripts[7]
    hook.after_train(runner)

    # A checkpoint carries the state; a resumed run installs it and does not rebuild it.
    checkpoint = {}
    hook.before_save_checkpoint(runner, checkpoint)
    resumed = AgentHook(interval=1, layout=LAYOUT, modality=MODALITY, top_k=2, label_map='demo',
                        llm=dict(type='Offline'))
    model2 = FakeRecognizer()
    runner2 = SimpleNamespace(model=model2, work_dir=str(tmp_path), epoch=1, max_epochs=3,
                              logger=logging.getLogger('test_agent_faults'))
    resumed.after_load_checkpoint(runner2, checkpoint)
    resumed.before_train(runner2)
    assert resumed.rounds_done == 1 and resumed.state.version == 1
    assert resumed.state.descriptions == state.descriptions
    assert model2.installed[-1][0] == state.descriptions
    resumed.after_train(runner2)
