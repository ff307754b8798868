"""Comparing two settings (``evaluation/compare.py``, ``tools/analysis/compare.py``):
constructed prediction files whose statistics are worked out by hand here, and the refusal
of files that score other samples."""
from __future__ import annotations

import json
import math
import pickle
import runpy
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT

from skeletonagent.evaluation.compare import (
    CompareError,
    compare_settings,
    format_comparison,
    load_run,
    load_setting,
    mcnemar_exact,
    plot_comparison,
    split_info,
)
from skeletonagent.evaluation.predictions import samples_path

NUM_CLASSES = 4
N = 20
LABELS = np.arange(N) % NUM_CLASSES            # 5 samples of each class


@pytest.fixture(scope='module')
def ann(tmp_path_factory) -> Path:
    """An annotation file whose 'test' split holds N samples of 4 classes (and a 'val' split
    of 8)."""
    path = tmp_path_factory.mktemp('ann') / 'tiny.pkl'
    annotations, splits = [], {'test': [], 'val': []}
    for split, count in (('test', N), ('val', 8)):
        for i in range(count):
            name = f'{split}_{i:03d}'
            splits[split].append(name)
            annotations.append(dict(frame_dir=name, label=int(i % NUM_CLASSES), total_frames=2,
                                    keypoint=np.zeros((1, 2, 25, 3), np.float32)))
    path.write_bytes(pickle.dumps(dict(split=splits, annotations=annotations,
                                       classes=['a', 'b', 'c', 'd'])))
    return path


def _scores(correct: np.ndarray, labels: np.ndarray = LABELS) -> list[np.ndarray]:
    """One score row per sample: the true class on top where ``correct``, else the next class
    (the true class second, for top-5)."""
    rows = []
    for label, ok in zip(labels, correct):
        row = np.zeros(NUM_CLASSES, np.float32)
        row[label] = 0.6 if ok else 0.3
        row[(label + 1) % NUM_CLASSES] = 0.3 if ok else 0.6
        rows.append(row)
    return rows


def _write(path: Path, correct, seed: int | None = None, frame_dirs=None, split='test') -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(_scores(np.asarray(correct, bool))))
    if seed is not None:
        (path.parent / 'run_info.json').write_text(json.dumps(dict(lines=dict(seed=str(seed)))))
    if frame_dirs is not None:
        samples_path(path).write_text(json.dumps(dict(split=split, frame_dirs=frame_dirs)))
    return path


def _pattern(both: int, only_a: int, only_b: int) -> tuple[np.ndarray, np.ndarray]:
    """Correctness of runs A and B over N samples: ``both`` right in both, ``only_a`` right in
    A only, ``only_b`` in B only, the rest wrong in both."""
    a = np.zeros(N, bool)
    b = np.zeros(N, bool)
    a[:both] = b[:both] = True
    a[both:both + only_a] = True
    b[both + only_a:both + only_a + only_b] = True
    return a, b


def test_mcnemar_known_answer(ann, tmp_path):
    """8 right in both, 7 only in A, 2 only in B, 3 wrong in both: the 9 discordant samples
    split 7 / 2; p = 2 * P(X <= 2), X ~ Binomial(9, 1/2) = 2 * (1 + 9 + 36) / 512."""
    a, b = _pattern(8, 7, 2)
    info = split_info(ann, 'test')
    one_a = load_setting('A', [_write(tmp_path / 'a' / 'last_pred.pkl', a)], info)
    one_b = load_setting('B', [_write(tmp_path / 'b' / 'last_pred.pkl', b)], info)
    result = compare_settings(one_a, one_b, info)
    test = result['difference_figures']['test']
    expected_p = 2 * (math.comb(9, 0) + math.comb(9, 1) + math.comb(9, 2)) / 2 ** 9
    assert expected_p == pytest.approx(0.1796875)
    assert (test['test'], test['b'], test['c'], test['statistic']) == ('McNemar exact', 7, 2, 2)
    assert test['p_value'] == pytest.approx(expected_p, rel=1e-12)
    # top-1 15/20 vs 10/20; the difference is B - A
    assert result['settings'][0]['top1']['mean'] == pytest.approx(0.75)
    assert result['settings'][1]['top1']['mean'] == pytest.approx(0.5)
    assert result['difference_figures']['top1']['mean'] == pytest.approx(-0.25)
    assert result['settings'][0]['top5']['mean'] == 1.0          # the true class is 2nd at worst
    text = format_comparison(result)
    assert "McNemar's exact test, b=7 (only A right), c=2 (only B right), statistic 2, p = 0.18" in text


def test_mcnemar_edges():
    same = np.array([True, False, True])
    assert mcnemar_exact(same, same) == dict(test='McNemar exact', b=0, c=0, statistic=0,
                                             p_value=1.0)
    # all 5 discordant samples one way: p = 2 / 2**5
    result = mcnemar_exact(np.ones(5, bool), np.zeros(5, bool))
    assert (result['b'], result['c'], result['p_value']) == (5, 0, pytest.approx(2 / 32))


def test_paired_t_test_over_seeds_known_answer(ann, tmp_path):
    """Top-1 of A per seed 50, 55, 60 %, of B 55, 65, 75 %: differences 5, 10, 15 points,
    mean 10, sd 5, t = 10 / (5 / sqrt 3) = 2 sqrt 3; with 2 degrees of freedom the t
    distribution's CDF is 1/2 + t / (2 sqrt(2 + t^2)), so p = 1 - t / sqrt(2 + t^2)."""
    info = split_info(ann, 'test')
    right_a, right_b = (10, 11, 12), (11, 13, 15)
    seeds = (0, 1, 2)
    files_a = [_write(tmp_path / f'a{s}' / 'last_pred.pkl', np.arange(N) < k, seed=s)
               for s, k in zip(seeds, right_a)]
    # B's files in another order: the runs are paired by their seeds
    files_b = [_write(tmp_path / f'b{s}' / 'last_pred.pkl', np.arange(N) < k, seed=s)
               for s, k in reversed(list(zip(seeds, right_b)))]
    result = compare_settings(load_setting('A', files_a, info), load_setting('B', files_b, info),
                              info)
    diff = result['difference_figures']
    assert diff['pairing'] == 'by seed'
    assert diff['top1']['mean'] == pytest.approx(0.10) and diff['top1']['std'] == pytest.approx(0.05)
    t = 0.10 / (0.05 / math.sqrt(3))
    assert diff['test']['test'] == 'paired t-test over 3 seeds'
    assert diff['test']['statistic'] == pytest.approx(t)
    assert diff['test']['p_value'] == pytest.approx(1 - t / math.sqrt(2 + t * t))
    a = result['settings'][0]['top1']
    assert (a['mean'], a['std']) == (pytest.approx(0.55), pytest.approx(0.05))
    assert [m['seed_a'] for m in diff['mcnemar']] == [0, 1, 2]
    assert [(m['b'], m['c']) for m in diff['mcnemar']] == [(0, 1), (0, 2), (0, 3)]
    text = format_comparison(result)
    assert 'paired t-test over 3 seeds (runs paired by seed), t = 3.464, p = 0.0742' in text
    assert text.splitlines()[4].split()[:2] == ['B', '−']


def test_classes_and_pairs_that_changed_most(ann, tmp_path):
    info = split_info(ann, 'test')
    a = np.ones(N, bool)
    b = np.ones(N, bool)
    b[[2, 6, 10]] = False                     # three samples of class 2 (label 2) now wrong
    b[[1]] = False                            # one of class 1
    result = compare_settings(load_setting('A', [_write(tmp_path / 'a.pkl', a)], info),
                              load_setting('B', [_write(tmp_path / 'b.pkl', b)], info), info)
    classes = result['classes_changed_most']
    assert [(c['name'], round(c['change'], 6)) for c in classes] == [('c', -0.6), ('b', -0.2)]
    pairs = result['pairs_changed_most']
    assert [(p['true_name'], p['predicted_name'], p['change']) for p in pairs] == \
        [('c', 'd', 3.0), ('b', 'c', 1.0)]


@pytest.mark.parametrize('kind,message', [
    ('split', r'a\.pkl: 8 predictions, but split .test. of .*tiny\.pkl has 20 samples: '
              r'written for another split\?'),
    ('classes', r'a\.pkl: scores for 6 classes, but .*tiny\.pkl has 4 classes'),
    ('order', r"a\.pkl: another sample order than split 'test' of .*tiny\.pkl \(per "
              r"a_samples\.json: sample 0 is 'test_001', the split has 'test_000'\)"),
    ('record', r"a\.pkl: written for split 'val' \(per a_samples\.json\), not split 'test'"),
    ('pickle', r'a\.pkl cannot be unpickled'),
], ids=['split', 'classes', 'order', 'record', 'pickle'])
def test_mismatched_files_are_refused_by_name(ann, tmp_path, kind, message):
    info = split_info(ann, 'test')
    path = tmp_path / 'a.pkl'
    names = [f'test_{i:03d}' for i in range(N)]
    if kind == 'split':
        path.write_bytes(pickle.dumps(_scores(np.ones(8, bool), LABELS[:8])))
    elif kind == 'classes':
        path.write_bytes(pickle.dumps([np.zeros(6, np.float32)] * N))
    elif kind == 'order':
        _write(path, np.ones(N, bool), frame_dirs=[names[1], names[0], *names[2:]])
    elif kind == 'record':
        _write(path, np.ones(N, bool), frame_dirs=names, split='val')
    else:
        path.write_bytes(b'not a pickle')
    with pytest.raises(CompareError, match=message):
        load_run(path, info)


def test_tool_prints_writes_and_refuses(ann, tmp_path, capsys):
    a, b = _pattern(8, 7, 2)
    pa, pb = _write(tmp_path / 'a' / 'p.pkl', a), _write(tmp_path / 'b' / 'p.pkl', b)
    out_json, out_png = tmp_path / 'cmp.json', tmp_path / 'cmp.png'
    tool = runpy.run_path(str(ROOT / 'tools' / 'analysis' / 'compare.py'), run_name='tool')
    head = ['--ann', str(ann), '--split', 'test', '--setting', 'on']
    assert tool['main'](head + [str(pa), '--setting', 'off', str(pb), '--json', str(out_json),
                                '--plot', str(out_png)]) == 0
    printed = capsys.readouterr().out
    assert 'p = 0.18' in printed and printed.splitlines()[2].split()[:3] == ['on', '1', '?']
    assert json.loads(out_json.read_text())['difference'] == 'off − on'
    assert out_png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    short = tmp_path / 'short.pkl'
    short.write_bytes(pickle.dumps(_scores(np.ones(8, bool), LABELS[:8])))
    with pytest.raises(SystemExit) as info:
        tool['main'](head + [str(short), '--setting', 'off', str(pb)])
    assert str(info.value) == (f"error: {short}: 8 predictions, but split 'test' of {ann} "
                               'has 20 samples: written for another split?')
    with pytest.raises(SystemExit, match='error: give --setting NAME PRED'):
        tool['main'](head + [str(pa)])


def test_plot_has_both_panels(ann, tmp_path):
    info = split_info(ann, 'test')
    a, b = _pattern(8, 7, 2)
    result = compare_settings(load_setting('A', [_write(tmp_path / 'a.pkl', a)], info),
                              load_setting('B', [_write(tmp_path / 'b.pkl', b)], info), info)
    out = plot_comparison(result, tmp_path / 'plot.png')
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and out.stat().st_size > 10_000
