"""A short demo run with two agent rounds measures their effect: the log lines, the
``effect`` in each round's JSON, the ``agent_effect/*`` scalars (TensorBoard and the JSON
scalars log), the plot in the report, and ``tools/analysis/agent_effect.py``."""
from __future__ import annotations

import json
import re
import runpy
import subprocess
import sys

import numpy as np
import pytest
from conftest import DEMO_CONFIG, ROOT, data_options, tool_env

pytestmark = pytest.mark.slow

LINE = re.compile(r'agent: round (\d+): asked (\d+) pairs?; their confusions (\d+) → (\d+) '
                  r'\((?:[−+]\d+ %|±0 %|n/a)\), other pairs (\d+) → (\d+) '
                  r'\((?:[−+]\d+ %|±0 %|n/a)\) \(validation after epoch (\d+) → (\d+)\)')


@pytest.fixture(scope='module')
def run(tmp_path_factory, demo_data):
    """3 epochs, a round after epochs 1 and 2, each installed at once
    (``agent.background=False``), validated after every epoch, the last checkpoint tested
    (which writes the report)."""
    work_dir = tmp_path_factory.mktemp('effect_run')
    opts = [f'work_dir={work_dir}', 'total_epochs=3', 'data.workers_per_gpu=0',
            'agent.interval=1', 'agent.background=False', 'agent.top_k=3',
            *data_options(demo_data)]
    proc = subprocess.run([sys.executable, 'tools/train.py', str(DEMO_CONFIG), '--validate',
                           '--test-last', '--seed', '0', '--cfg-options', *opts],
                          cwd=ROOT, env=tool_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return work_dir, proc.stdout + proc.stderr


def test_every_validation_keeps_its_confusion_matrix(run):
    work_dir, _ = run
    history = json.loads((work_dir / 'val_history.json').read_text())
    for record in history:
        cm = np.load(work_dir / 'val_confusion' / f"epoch_{record['epoch']:03d}.npy")
        assert cm.shape == (12, 12) and cm.sum() == 24            # 2 val samples x 12 classes
        assert np.trace(cm) / cm.sum() == pytest.approx(record['acc/top1'])
    assert sorted(p.name for p in (work_dir / 'val_confusion').iterdir()) == \
        ['epoch_001.npy', 'epoch_002.npy', 'epoch_003.npy']


def test_one_line_per_round_matching_the_json(run):
    work_dir, log = run
    lines = list(LINE.finditer(log))
    assert [int(m.group(1)) for m in lines] == [1, 2]
    for m in lines:
        effect = json.loads((work_dir / 'agent' / 'rounds' / f'round_{int(m.group(1)):03d}.json')
                            .read_text())['effect']
        assert m.group(0) == f'agent: {effect["line"]}'
        before, last = effect['before'], effect['after'][-1]
        assert (int(m.group(3)), int(m.group(4))) == (before['asked'], last['asked'])
        assert (int(m.group(5)), int(m.group(6))) == (before['other'], last['other'])
        cm_before = np.load(work_dir / 'val_confusion' / f"epoch_{before['epoch']:03d}.npy")
        pairs = [(p['true'], p['confused_with']) for p in effect['pairs']]
        assert len(pairs) == int(m.group(2))
        assert before['asked'] == sum(int(cm_before[i, j]) for i, j in pairs)
        assert before['asked'] + before['other'] == cm_before.sum() - np.trace(cm_before)


def test_round_json_fields(run):
    work_dir, _ = run
    for index, installed in ((1, 1), (2, 2)):
        report = json.loads((work_dir / 'agent' / 'rounds' / f'round_{index:03d}.json').read_text())
        assert (report['asked_after_epoch'], report['installed_after_epoch']) == (installed, installed)
        effect = report['effect']
        assert effect['complete'] is True
        assert effect['before']['epoch'] == installed
        assert [a['epoch'] for a in effect['after']] == [installed + 1]
        asked = {(c['index'], o['index']) for c in report['classes'] for o in c['confused']}
        assert {(p['true'], p['confused_with']) for p in effect['pairs']} == asked
        assert len(effect['per_class']) == 12
        assert {'asked_rate', 'other_rate', 'asked_samples', 'other_samples'} <= set(effect['before'])


def test_scalars_in_tensorboard_and_the_json_log(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from skeletonagent.evaluation.report import read_scalars
    work_dir, _ = run
    records = [r for r in read_scalars(work_dir) if 'agent_effect/asked_rate' in r]
    assert sorted(r['step'] for r in records) == [2, 3]
    assert [r['agent_effect/round'] for r in sorted(records, key=lambda r: r['step'])] == [1, 2]
    events = list(work_dir.glob('*/vis_data/events.out.tfevents.*'))
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    tags = set(acc.Tags()['scalars'])
    assert {'agent_effect/asked_rate', 'agent_effect/other_rate', 'agent_effect/asked_confusions',
            'agent_effect/other_confusions'} <= tags
    assert [e.step for e in acc.Scalars('agent_effect/asked_rate')] == [2, 3]


def test_report_plot_and_tool(run, tmp_path, capsys):
    work_dir, _ = run
    page = (work_dir / 'report' / 'index.html').read_text(encoding='utf-8')
    assert 'Effect of the agent rounds' in page and 'src="agent_effect.png"' in page
    png = (work_dir / 'report' / 'agent_effect.png').read_bytes()
    assert png[:8] == b'\x89PNG\r\n\x1a\n' and len(png) > 10_000
    out = tmp_path / 'effect.json'
    tool = runpy.run_path(str(ROOT / 'tools' / 'analysis' / 'agent_effect.py'), run_name='tool')
    assert tool['main']([str(work_dir), '--json', str(out)]) == 0
    printed = capsys.readouterr().out
    rows = printed.splitlines()
    assert rows[0].split()[:3] == ['round', 'installed', 'pairs']
    assert [r.split()[0] for r in rows[2:4]] == ['1', '2']
    assert tool['main']([str(work_dir), '--baseline', str(work_dir)]) == 0   # itself
    table = capsys.readouterr().out.split("in this run and in")[1].splitlines()[3:5]
    for row in table:                # the same pairs, the same validations: the same figures
        cells = re.split(r'\s{2,}', row.strip())   # round, pairs, val, this run, change, ...
        assert len(cells) == 7 and cells[3:5] == cells[5:7]
    figures = json.loads(out.read_text())
    for index, figure in enumerate(figures, 1):
        stored = json.loads((work_dir / 'agent' / 'rounds' / f'round_{index:03d}.json').read_text())
        assert figure['line'] == stored['effect']['line'] and figure['line'] in printed


def test_tool_refuses_a_run_without_rounds(tmp_path):
    tool = runpy.run_path(str(ROOT / 'tools' / 'analysis' / 'agent_effect.py'), run_name='tool')
    with pytest.raises(SystemExit) as info:
        tool['main']([str(tmp_path)])
    assert str(info.value) == (f'error: {tmp_path}: no installed agent round '
                               '(agent/rounds/round_NNN.json with installed_after_epoch); was '
                               'the agent on, with rounds?')


def test_predictions_name_their_samples_and_compare_to_themselves(run, demo_data):
    """The test writes which samples its predictions score; compare.py reads the run against
    itself: no difference, McNemar's p = 1."""
    from skeletonagent.evaluation.compare import compare_settings, load_setting, split_info
    work_dir, _ = run
    record = json.loads((work_dir / 'last_pred_samples.json').read_text())
    assert record['split'] == 'test' and record['num_classes'] == 12
    assert len(record['frame_dirs']) == 24 and record['frame_dirs'][0].startswith('demo_test_')
    info = split_info(demo_data, 'test')
    assert list(info.frame_dirs) == record['frame_dirs']
    same = [work_dir / 'last_pred.pkl']
    result = compare_settings(load_setting('a', same, info), load_setting('b', same, info), info)
    assert result['difference_figures']['top1'] == dict(mean=0.0, std=0.0)
    assert result['difference_figures']['test']['p_value'] == 1.0
    assert result['settings'][0]['runs'][0]['seed'] == 0          # from run_info.json
