"""The evaluation report and the TensorBoard log on a tiny trained demo run.

The session's shared ``demo_run`` (tests/conftest.py: 2 epochs, a tiny copy of the demo
data, an agent round after epoch 1 installed at once): ``tools/train.py --validate
--test-best`` writes the report by itself; ``tools/analysis/report.py`` writes it again from
the annotation file.
"""
import csv
import html
import json
import pickle
import runpy
from pathlib import Path

import numpy as np
import pytest

from skeletonagent.evaluation import report as R

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture
def run(demo_run):
    return demo_run.work_dir, demo_run.log


@pytest.fixture
def tiny_data(demo_run):
    return demo_run.data


def _csv(path):
    with open(path, newline='', encoding='utf-8') as f:
        return list(csv.reader(f))


def _png_size(path):
    from PIL import Image
    with Image.open(path) as image:
        image.load()  # decodes the whole file
        return image.size


def test_training_writes_the_report(run, tiny_data):
    work_dir, log = run
    out = work_dir / 'report'
    assert 'evaluation report:' in log
    for name in ('index.html', 'confusion.png', 'confusion.csv', 'per_class_accuracy.csv',
                 'per_class_accuracy.png', 'confused_pairs.csv', 'curves.png'):
        assert (out / name).is_file(), name

    preds = np.stack(pickle.loads((work_dir / 'best_pred.pkl').read_bytes()))
    cm = np.load(work_dir / 'best_pred_confusion.npy')
    names = pickle.loads(Path(tiny_data).read_bytes())['classes']
    n, c = preds.shape
    assert cm.shape == (c, c) and cm.sum() == n

    rows = _csv(out / 'confusion.csv')
    assert rows[0][1:] == names
    counts = np.array([[int(v) for v in row[1:]] for row in rows[1:]])
    assert [row[0] for row in rows[1:]] == names
    np.testing.assert_array_equal(counts, cm)
    assert counts.sum() == n

    per_class = _csv(out / 'per_class_accuracy.csv')
    assert per_class[0] == ['index', 'class', 'samples', 'correct', 'predicted', 'accuracy']
    body = per_class[1:]
    assert [r[1] for r in body] == names
    assert sum(int(r[2]) for r in body) == n
    assert sum(int(r[3]) for r in body) == np.trace(cm)
    np.testing.assert_array_equal([int(r[4]) for r in body],
                                  np.bincount(preds.argmax(1), minlength=c))
    for r in body:
        assert float(r[5]) == pytest.approx(int(r[3]) / int(r[2]), abs=1e-6)

    pairs = _csv(out / 'confused_pairs.csv')[1:]
    assert sum(int(p[4]) for p in pairs) == n - np.trace(cm)
    assert all(p[0] != p[2] for p in pairs)
    assert [int(p[4]) for p in pairs] == sorted((int(p[4]) for p in pairs), reverse=True)

    # PNGs decode; every class gets at least 0.2 in (20 px at 100 dpi) of the confusion
    # plot both ways and of the bar plot's height; the curves are 12 x 8 in
    width, height = _png_size(out / 'confusion.png')
    assert width >= 20 * c and height >= 20 * c
    present = [i for i in range(c) if cm[i].sum()]
    assert _png_size(out / 'per_class_accuracy.png')[1] >= 20 * len(present)
    assert _png_size(out / 'curves.png') == (1200, 800)


def test_report_page_holds_names_rounds_and_escaped_replies(run):
    work_dir, _ = run
    page = (work_dir / 'report' / 'index.html').read_text(encoding='utf-8')
    rounds = sorted((work_dir / 'agent' / 'rounds').glob('round_*.json'))
    assert rounds
    report = json.loads(rounds[0].read_text(encoding='utf-8'))
    entry = next(e for e in report['classes'] if e['reply'])
    text = html.unescape(page)
    assert entry['name'] in text and entry['prompt'] in text and entry['reply'] in text
    if "'" in entry['reply']:
        assert entry['reply'] not in page        # the quotes are escaped
    for other in entry['confused']:
        assert other['name'] in text
    for src in ('confusion.png', 'per_class_accuracy.png', 'curves.png'):
        assert f'src="{src}"' in page
    # the selected joints: drawn on the skeleton, and named
    if entry['joints']:
        images = list((work_dir / 'report' / 'joints').glob('*.png'))
        assert images and all(_png_size(p) for p in images)
        assert 'src="joints/' in page
    for name in entry['joint_names']:
        assert name in text


def test_tensorboard_has_losses_accuracies_and_agent_rounds(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    work_dir, _ = run
    events = list(work_dir.glob('*/vis_data/events.out.tfevents.*'))
    assert events
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    tags = set(acc.Tags()['scalars'])
    assert {'train/loss_cls', 'train/loss_mix', 'train/loss_constraint', 'train/loss_align',
            'train/lr', 'train/top1_acc', 'train/top5_acc', 'val/acc/top1', 'val/acc/top5',
            'val/acc/mean1'} <= tags                 # issue 12: train/ and val/ prefixes
    assert {'agent/requests', 'agent/failures', 'agent/seconds', 'agent/classes_updated',
            'agent/version'} <= tags
    assert acc.Scalars('agent/version')[-1].value == 1
    assert acc.Scalars('agent/classes_updated')[-1].value > 0
    # the JSON scalars log keeps the same records
    records = R.read_scalars(work_dir)
    assert any('agent/requests' in r for r in records)


def test_report_tool_from_the_annotation_file(run, tiny_data, tmp_path, capsys):
    work_dir, _ = run
    out = tmp_path / 'again'
    tool = runpy.run_path(str(ROOT / 'tools' / 'analysis' / 'report.py'), run_name='tool')
    tool['main']([str(work_dir), '--pred', 'best_pred.pkl', '--ann', str(tiny_data),
                  '--split', 'test', '--top-n', '5', '--out', str(out)])
    assert capsys.readouterr().out.strip().endswith('index.html')
    assert _csv(out / 'confusion.csv') == _csv(work_dir / 'report' / 'confusion.csv')
    assert _csv(out / 'per_class_accuracy.csv') == _csv(
        work_dir / 'report' / 'per_class_accuracy.csv')


def test_report_of_many_classes_shows_the_confused_block_and_escapes(tmp_path, monkeypatch):
    """No training: 80 classes (the top-N block), an LLM reply with markup, no config; the
    user's matplotlib backend is left as it was."""
    import matplotlib
    monkeypatch.setitem(matplotlib.rcParams, 'backend', 'pdf')
    rng = np.random.default_rng(0)
    c, per_class = 80, 3
    labels = np.repeat(np.arange(c), per_class)
    scores = rng.random((len(labels), c)).astype(np.float32)
    scores[np.arange(len(labels)), labels] += 0.6
    (tmp_path / 'last_pred.pkl').write_bytes(pickle.dumps(list(scores)))
    from skeletonagent.evaluation import confusion_matrix
    cm = confusion_matrix(scores.argmax(1), labels, c)
    np.save(tmp_path / 'last_pred_confusion.npy', cm)
    rounds = tmp_path / 'agent' / 'rounds'
    rounds.mkdir(parents=True)
    reply = '<script>alert("x")</script> & the left wrist'
    (rounds / 'round_001.json').write_text(json.dumps(dict(
        round=1, backend='Fake', version_before=0, version_after=1, seconds=0.1,
        stats=dict(chats=1, requests=1, failures={}), updated=[3], failed=[],
        classes=[dict(index=3, name='a <b> class', confused=[dict(index=4, name='other',
                                                                   count=2)],
                      prompt='why?', reply=reply, error=None, detail='', joints=[6],
                      joint_names=['left wrist'], mask_changed=False,
                      description_changed=True, description=reply)])))
    index = R.write_report(tmp_path, top_n=10)
    assert matplotlib.rcParams['backend'] == 'pdf'
    page = index.read_text(encoding='utf-8')
    assert '<script>' not in page and reply not in page and reply in html.unescape(page)
    assert 'a &lt;b&gt; class' in page
    assert 'class 0' in page                       # no config, no label map: 'class N'
    assert len(R.confusion_block(cm, 10)) == 10
    # the 10-class block, labels 'NN: class NN' (12 characters): the 4 in minimum side plus
    # 12 x 0.075 in of labels = 4.9 in, + 1.5 in (colour bar) x + 0.6 in (title) at 100 dpi
    assert _png_size(tmp_path / 'report' / 'confusion.png') == (640, 550)
    # all 80 bars: 7 in + 0.9 in of labels wide, 80 x 0.2 in + 1.2 in high
    assert _png_size(tmp_path / 'report' / 'per_class_accuracy.png') == (790, 1720)
    assert len(_csv(tmp_path / 'report' / 'confusion.csv')) == c + 1   # the CSV is whole
    assert not (tmp_path / 'report' / 'curves.png').exists()          # no scalars log


# ----------------------------------------------------------------- training view, no training
def test_without_tensorboard_the_json_log_stays_and_one_warning(monkeypatch, caplog):
    import importlib

    from mmengine.config import Config

    from skeletonagent.engine import translate as engine_config
    real = importlib.import_module

    def no_tensorboard(name, *args, **kwargs):
        if 'tensorboard' in name:
            raise ImportError('No module named tensorboard')
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib, 'import_module', no_tensorboard)
    monkeypatch.setattr(engine_config, '_TENSORBOARD_WARNED', False)
    warnings = []
    monkeypatch.setattr(engine_config, 'print_log', lambda msg, **kw: warnings.append(msg))
    cfg = Config(dict(log_config=dict(interval=5)))
    for _ in range(2):
        assert engine_config._vis_backends(cfg) == [dict(type='LocalVisBackend')]
    assert len(warnings) == 1 and 'pip install tensorboard' in warnings[0]
    monkeypatch.setattr(importlib, 'import_module', real)
    off = Config(dict(log_config=dict(tensorboard=False)))
    assert engine_config._vis_backends(off) == [dict(type='LocalVisBackend')]


def test_progress_bar_hook_counts_test_iterations(monkeypatch, capsys):
    from types import SimpleNamespace

    from skeletonagent.engine.hooks import ProgressBarHook, progress_enabled
    monkeypatch.setenv('SKELETONAGENT_PROGRESS', '0')
    assert not progress_enabled()
    hook = ProgressBarHook()
    runner = SimpleNamespace(rank=0, test_dataloader=[0, 1, 2], val_dataloader=[0])
    hook.before_test_epoch(runner)
    assert hook._bar is None                       # off: nothing shown
    monkeypatch.setenv('SKELETONAGENT_PROGRESS', '1')
    hook.before_test_epoch(runner)
    for i in range(3):
        hook.after_test_iter(runner, i)
    assert hook._bar.n == 3
    hook.after_test_epoch(runner)
    assert hook._bar is None and 'test' in capsys.readouterr().err
    hook.before_val_epoch(SimpleNamespace(rank=1, val_dataloader=[0]))
    assert hook._bar is None                       # rank 0 only


def test_openai_chat_reports_progress_per_class(monkeypatch):
    from skeletonagent.agent.llm import OpenAIChat
    from skeletonagent.testing import FakeLLMServer
    monkeypatch.setenv('SKELETONAGENT_PROGRESS', '0')
    chats = [[{'role': 'user', 'content': f'Describe the action {name!r}.'}]
             for name in ('drink water', 'eat meal', 'throw')]
    seen = []
    with FakeLLMServer() as srv:
        backend = OpenAIChat(model='fake-llm', base_url=srv.base_url, api_key_env=None,
                             timeout=5.0, max_concurrency=2)
        try:
            results = backend.chat_results(chats, progress=seen.append)
            assert len(backend.chat_results(chats[:1])) == 1     # no callback, no bar
        finally:
            backend.close()
    assert len(seen) == 3 and {id(r) for r in seen} == {id(r) for r in results}


def test_report_tables_are_the_metric_functions(tmp_path):
    """The report's accuracies come from evaluation/functional.py: the same numbers as the
    validation metric from the scores and labels; a class without test samples has no
    accuracy (an empty cell), not 0."""
    from skeletonagent.evaluation.functional import confusion_matrix, mean_class_accuracy, top_k_accuracy
    from skeletonagent.evaluation.report import tables
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 5, 200)                      # class 5 has no sample
    scores = rng.normal(size=(200, 6))
    scores[np.arange(200), labels] += 1.0
    cm = confusion_matrix(scores.argmax(1), labels, 6)
    top1, mean1 = top_k_accuracy(scores, labels, (1,))[0], mean_class_accuracy(scores, labels)
    assert tables.accuracy_line(cm) == (f'top-1 accuracy {top1:.4f}, mean class accuracy '
                                        f'{mean1:.4f} (200 test samples)')
    rows = tables.per_class_rows(cm, [f'c{i}' for i in range(6)])
    for i, row in enumerate(rows[:5]):
        hit = labels == i
        assert row[2:5] == [int(hit.sum()), int((scores[hit].argmax(1) == i).sum()),
                            int((scores.argmax(1) == i).sum())]
        assert float(row[5]) == pytest.approx(row[3] / row[2], abs=5e-7)
    assert rows[5][5] == ''
    per_class, pairs = tables.write_tables(tmp_path, cm, [f'c{i}' for i in range(6)])
    assert per_class == rows and pairs == tables.confused_pairs(cm)
    assert {p.name for p in tmp_path.iterdir()} == {'confusion.csv', 'per_class_accuracy.csv',
                                                    'confused_pairs.csv'}


def test_report_page_template_is_package_data():
    """The page is a file of the package (shipped in the wheel, read through importlib)."""
    from importlib.resources import files

    from skeletonagent.evaluation.report import page
    text = page.page_template()
    assert text.startswith('<!DOCTYPE html>') and '{{ title }}' in text
    assert files('skeletonagent.evaluation.report').joinpath('template.html').is_file()
