"""The effect of an agent round on the validation confusions of the pairs it asked about
(``evaluation/agent_effect.py``) and how the agent hook reports it, with constructed
matrices whose figures are worked out by hand here."""
from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from agent_fakes import FakeRecognizer, step_outputs

from skeletonagent.agent.hook import REPORT_SUBDIR, AgentHook
from skeletonagent.evaluation.agent_effect import (
    RoundMark,
    effect_table,
    format_change,
    mark_from_report,
    pair_figures,
    round_effects,
    work_dir_effects,
)
from skeletonagent.evaluation.val_confusion import (
    CONFUSION_METRIC,
    drop_val_confusions,
    read_val_confusions,
    save_val_confusion,
)


def _matrix(n: int, per_class: int, confusions: dict) -> np.ndarray:
    """``per_class`` validation samples of each of ``n`` classes; ``confusions[(i, j)]`` of
    class i's are predicted as j, the rest correctly."""
    cm = np.zeros((n, n), dtype=np.int64)
    for i in range(n):
        cm[i, i] = per_class
    for (i, j), count in confusions.items():
        cm[i, j] += count
        cm[i, i] -= count
    return cm


# 4 classes, 10 validation samples each. The round asked about (0 -> 1) and (2 -> 3).
BEFORE = _matrix(4, 10, {(0, 1): 6, (2, 3): 4, (1, 0): 2, (3, 2): 3})
AFTER = _matrix(4, 10, {(0, 1): 2, (2, 3): 1, (1, 0): 2, (3, 2): 1, (1, 2): 1})
ASKED = [(0, 1), (2, 3)]


def test_pair_figures_known_rates():
    before = pair_figures(BEFORE, ASKED, epoch=3)
    # asked: 6 + 4 = 10 confusions over the 10 + 10 samples of their true classes
    assert (before.asked, before.asked_samples, before.asked_rate) == (10, 20, 0.5)
    # others: 2 + 3 = 5 over the 10 other pairs (12 off-diagonal less 2) x 10 samples
    assert (before.other, before.other_samples, before.other_rate) == (5, 100, 0.05)
    assert (before.errors, before.samples) == (15, 40)
    after = pair_figures(AFTER, ASKED, epoch=4)
    assert (after.asked, after.asked_rate) == (3, 0.15)
    assert (after.other, after.other_rate) == (4, 0.04)


def test_pair_figures_ignore_self_pairs_and_refuse_foreign_classes():
    assert pair_figures(BEFORE, [(0, 1), (0, 0)]).asked == 6
    with pytest.raises(ValueError, match=r'pair \(0, 7\) names a class outside 0..3'):
        pair_figures(BEFORE, [(0, 7)], epoch=2)


def test_round_effect_before_after_and_line():
    mark = RoundMark(index=3, pairs=((0, 1, 5), (2, 3, 2)), installed_after=3, asked_after=2)
    [effect] = round_effects([mark], {2: BEFORE * 0 + np.eye(4, dtype=np.int64) * 10,
                                      3: BEFORE, 4: AFTER}, finished=True)
    assert effect.before.epoch == 3                 # the last validation at or before the install
    assert [f.epoch for f in effect.after] == [4]
    assert effect.change('asked') == pytest.approx(-0.7)   # 10 -> 3
    assert effect.change('other') == pytest.approx(-0.2)   # 5 -> 4
    assert effect.line() == ('round 3: asked 2 pairs; their confusions 10 → 3 (−70 %), other '
                             'pairs 5 → 4 (−20 %) (validation after epoch 3 → 4)')
    per_class = {row['index']: row for row in effect.per_class}
    assert per_class[0] == dict(index=0, samples=10, asked=True, errors_before=6, errors_after=2,
                                asked_confusions_before=6, asked_confusions_after=2)
    assert per_class[1]['asked'] is False and per_class[1]['errors_after'] == 3
    figures = effect.as_dict()
    assert figures['before']['asked_rate'] == 0.5 and figures['after'][0]['other_rate'] == 0.04
    assert figures['pairs'][0] == dict(true=0, confused_with=1, count=5)


def test_windows_run_to_the_next_round_install():
    """Round 1 installed after epoch 2, round 2 after epoch 4; validations every epoch."""
    marks = [RoundMark(1, ((0, 1, 1),), installed_after=2), RoundMark(2, ((2, 3, 1),), installed_after=4)]
    confusions = dict.fromkeys(range(1, 6), BEFORE)
    first, second = round_effects(marks, confusions)
    assert (first.before.epoch, [f.epoch for f in first.after], first.complete) == (2, [3, 4], True)
    assert (second.before.epoch, [f.epoch for f in second.after], second.complete) == (4, [5], False)
    assert round_effects(marks, {1: BEFORE, 2: BEFORE, 3: BEFORE})[0].complete is False
    assert round_effects(marks, confusions, finished=True)[1].complete is True


def test_lines_without_validations():
    mark = RoundMark(1, ((0, 1, 1),), installed_after=2, changed=False)
    [none_before] = round_effects([mark], {3: BEFORE}, finished=True)
    assert none_before.line() == ('round 1: asked 1 pair (the state did not change); no validation '
                                  'before it was installed (after epoch 2): effect not measured')
    [none_after] = round_effects([mark], {1: BEFORE}, finished=True)
    assert 'no validation after it was installed' in none_after.line()
    assert format_change(0, 3) == 'n/a' and format_change(10, 10) == '±0 %'
    assert format_change(4, 5) == '+25 %'


def test_mark_from_report_and_refusals():
    report = dict(round=2, version_before=1, version_after=2, installed_after_epoch=6,
                  asked_after_epoch=5,
                  classes=[dict(index=0, confused=[dict(index=1, count=4), dict(index=0, count=0)]),
                           dict(index=2, confused=[dict(index=3, count=None)])])
    mark = mark_from_report(report)
    assert mark == RoundMark(2, ((0, 1, 4), (2, 3, None)), installed_after=6, asked_after=5)
    assert mark_from_report(dict(report, installed_after_epoch=None)) is None
    bad = dict(report, classes=[dict(index=4, confused=[dict(count=1)])])
    with pytest.raises(ValueError, match='round_002.json: class entry 4: field "confused"'):
        mark_from_report(bad, 'round_002.json')


def test_val_confusion_files_roundtrip(tmp_path):
    for epoch in (1, 2, 3):
        save_val_confusion(tmp_path, epoch, BEFORE * epoch)
    assert sorted(read_val_confusions(tmp_path)) == [1, 2, 3]
    assert np.array_equal(read_val_confusions(tmp_path, up_to=2)[2], BEFORE * 2)
    drop_val_confusions(tmp_path, after=1)
    assert sorted(read_val_confusions(tmp_path)) == [1]
    (tmp_path / 'val_confusion' / 'epoch_009.npy').write_bytes(b'junk')
    with pytest.raises(ValueError, match='epoch_009.npy: not a confusion matrix'):
        read_val_confusions(tmp_path)


# ------------------------------------------------------------------------------ the hook
NUM_CLASSES = 12


class _Visualizer:
    def __init__(self):
        self.calls = []

    def add_scalars(self, scalars, step=0, **kwargs):
        self.calls.append((dict(scalars), step))


def _runner(tmp_path, max_epochs):
    return SimpleNamespace(model=FakeRecognizer(NUM_CLASSES, embedding_dim=None),
                           work_dir=str(tmp_path), epoch=0, iter=0, max_epochs=max_epochs,
                           logger=logging.getLogger('test_agent_effect'), visualizer=_Visualizer())


def _hook(official: bool, interval: int = 2) -> AgentHook:
    return AgentHook(interval=interval, layout='nturgb+d', modality='j', top_k=1,
                     label_map='demo', official=official, final_wait=30,
                     llm=dict(type='Offline'), round_nice=0)


def _train_epoch(hook, runner, pairs):
    """One epoch whose clean samples are (label, predicted) ``pairs``; a round in flight
    finishes during it."""
    if pairs:
        labels = torch.tensor([p[0] for p in pairs])
        logits = torch.full((len(pairs), NUM_CLASSES), -5.0)
        logits[torch.arange(len(pairs)), torch.tensor([p[1] for p in pairs])] = 5.0
        hook.after_train_iter(runner, 0, outputs=step_outputs(logits, labels))
    if hook._future is not None:
        hook._future.result(timeout=60)
    hook.after_train_epoch(runner)
    runner.epoch += 1                                # mmengine: after the epoch's hooks


def _validate(hook, runner, confusions):
    hook.after_val_epoch(runner, {'acc/top1': 0.5,
                                  CONFUSION_METRIC: _matrix(NUM_CLASSES, 10, confusions)})


# (6, 7) confusions of the validation after each epoch; (0, 1), never asked, 2 then 3
VALIDATIONS = {1: 5, 2: 5, 3: 4, 4: 2, 5: 1}


@pytest.mark.parametrize('official,installed,after,line', [
    # official: asked and installed after epoch 2; the next round is installed after epoch 4
    (True, 2, [3, 4], 'their confusions 5 → 2 (−60 %), other pairs 2 → 2 (±0 %) '
                      '(validation after epoch 2 → 4)'),
    # background: asked after epoch 2, installed after epoch 3; no other round asks anything
    (False, 3, [4, 5], 'their confusions 4 → 1 (−75 %), other pairs 2 → 3 (+50 %) '
                       '(validation after epoch 3 → 5)'),
], ids=['official', 'background'])
def test_hook_reports_each_round(tmp_path, caplog, official, installed, after, line):
    """Training confuses 6 -> 7 in epoch 2, and the round after it asks about (6, 7)."""
    hook, runner = _hook(official), _runner(tmp_path, max_epochs=5)
    hook.before_train(runner)
    caplog.set_level(logging.INFO, logger='test_agent_effect')
    for epoch in range(1, 6):
        _train_epoch(hook, runner, [(6, 7)] if epoch == 2 else [])
        _validate(hook, runner, {(6, 7): VALIDATIONS[epoch], (0, 1): 2 if epoch < 5 else 3})
    hook.after_train(runner)
    report = json.loads((tmp_path / REPORT_SUBDIR / 'round_001.json').read_text())
    assert (report['asked_after_epoch'], report['installed_after_epoch']) == (2, installed)
    effect = report['effect']
    assert effect['complete'] is True and effect['installed_after_epoch'] == installed
    assert [6, 7] in [[p['true'], p['confused_with']] for p in effect['pairs']]
    assert effect['before']['epoch'] == installed
    assert [a['epoch'] for a in effect['after']] == after
    asked_before, asked_after = VALIDATIONS[installed], VALIDATIONS[after[-1]]
    assert (effect['before']['asked'], effect['after'][-1]['asked']) == (asked_before, asked_after)
    assert effect['asked_change'] == pytest.approx((asked_after - asked_before) / asked_before)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith('agent: round 1: asked')]
    assert lines == [f'agent: {effect["line"]}'] and effect['line'].endswith(line)
    # per-validation scalars of the round, from the validation after its install on
    steps = {step: scalars for scalars, step in runner.visualizer.calls
             if scalars.get('agent_effect/round') == 1}
    assert sorted(steps) == after
    assert steps[after[-1]]['agent_effect/asked_confusions'] == asked_after
    changes = [(s, step) for s, step in runner.visualizer.calls if 'agent_effect/asked_change' in s]
    assert changes[0][1] == after[-1]
    assert changes[0][0]['agent_effect/asked_change'] == pytest.approx(effect['asked_change'])
    if official:      # round 2 (asked after epoch 4) is measured on epoch 5 at the end
        second = json.loads((tmp_path / REPORT_SUBDIR / 'round_002.json').read_text())['effect']
        assert second['before']['epoch'] == 4 and [a['epoch'] for a in second['after']] == [5]


def test_effect_table_of_a_work_dir(tmp_path):
    rounds = tmp_path / REPORT_SUBDIR
    rounds.mkdir(parents=True)
    report = dict(round=1, version_before=0, version_after=1, installed_after_epoch=1,
                  classes=[dict(index=0, confused=[dict(index=1, count=3)]),
                           dict(index=2, confused=[dict(index=3, count=1)])])
    (rounds / 'round_001.json').write_text(json.dumps(report))
    save_val_confusion(tmp_path, 1, BEFORE)
    save_val_confusion(tmp_path, 2, AFTER)
    [effect] = work_dir_effects(tmp_path)
    assert (effect.before.asked, effect.last.asked) == (10, 3)
    table = effect_table([effect]).splitlines()
    assert table[0].split() == ['round', 'installed', 'pairs', 'val', 'before', 'val', 'after',
                                'asked', 'before', 'asked', 'after', 'change', 'asked', 'rate',
                                '%', 'other', 'before', 'other', 'after', 'change', 'other',
                                'rate', '%']
    assert table[2].split() == ['1', 'after', '1', '2', '1', '2', '10', '3', '−70', '%',
                                '50.0', '→', '15.0', '5', '4', '−20', '%', '5.0', '→', '4.0']


def test_hook_resumed_run_measures_the_open_round(tmp_path, caplog):
    """A run killed after epoch 1 (round 1 asked and installed after it, official) and
    resumed: the round is measured against the validation kept on disk."""
    hook, runner = _hook(official=True, interval=1), _runner(tmp_path, max_epochs=3)
    hook.before_train(runner)
    _train_epoch(hook, runner, [(6, 7)])
    save_val_confusion(tmp_path, 1, _matrix(NUM_CLASSES, 10, {(6, 7): 6}))   # ValHistoryHook's
    _validate(hook, runner, {(6, 7): 6})
    assert hook.rounds_done == 1                    # killed here: no after_train

    resumed, runner2 = _hook(official=True, interval=0), _runner(tmp_path, max_epochs=3)
    resumed.rounds_done, resumed.state = hook.rounds_done, hook.state   # from the checkpoint
    runner2.epoch = 1
    resumed.before_train(runner2)
    caplog.set_level(logging.INFO, logger='test_agent_effect')
    runner2.epoch = 2
    _validate(resumed, runner2, {(6, 7): 2})
    resumed.after_train(runner2)
    effect = json.loads((tmp_path / REPORT_SUBDIR / 'round_001.json').read_text())['effect']
    assert effect['before']['epoch'] == 1 and effect['after'][-1]['asked'] == 2
    assert any('their confusions 6 → 2 (−67 %)' in r.getMessage() for r in caplog.records)


def test_the_same_pairs_in_a_baseline_run():
    """The round's pairs at the same validations of another run (without the agent): there
    (0, 1) and (2, 3) go 3 -> 10 while this run has them 10 -> 3."""
    from skeletonagent.evaluation.agent_effect import baseline_table, on_baseline
    mark = RoundMark(index=1, pairs=((0, 1, 5), (2, 3, 2)), installed_after=3)
    [effect] = round_effects([mark], {3: BEFORE, 4: AFTER}, finished=True)
    before, last = on_baseline(effect, {3: AFTER, 4: BEFORE})
    assert (before.epoch, before.asked, last.epoch, last.asked) == (3, 3, 4, 10)
    assert on_baseline(effect, {3: AFTER}) == (pair_figures(AFTER, ASKED, 3), None)
    row = baseline_table([effect], {3: AFTER, 4: BEFORE}).splitlines()[2].split()
    assert row == ['1', '2', '3', '→', '4', '10', '→', '3', '−70', '%', '3', '→', '10', '+233', '%']
