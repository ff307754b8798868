"""Stream fusion (tools/ensemble.py, skeletonagent/evaluation/fusion.py) on generated
predictions with hand-computed answers."""
import itertools
import math
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from skeletonagent.evaluation.fusion import (
    FusionError,
    fuse,
    load_scores,
    main,
    run_ensemble,
    search_weights,
    split_labels,
    stream_names,
)

ROOT = Path(__file__).resolve().parents[2]
C = 8                                       # classes in the score files
LABELS = [0, 0, 0, 1, 2, 3, 4, 5]           # unbalanced: mean class accuracy differs from top-1


def _right(label):
    s = np.full(C, 0.05)
    s[label] = 0.65
    return s


def _wrong(label, label_score):
    """Top-1 is (label + 1) % C; the label itself gets ``label_score``."""
    rest = (1.0 - 0.40 - label_score) / (C - 2)
    s = np.full(C, rest)
    s[(label + 1) % C] = 0.40
    s[label] = label_score
    return s


def _stream_a(labels):
    """Right on the first half; wrong on the second, label second best (top-5 hit)."""
    half = len(labels) // 2
    return [_right(y) if i < half else _wrong(y, 0.30) for i, y in enumerate(labels)]


def _stream_b(labels):
    """Right on the second half; wrong on the first, the label last on two samples."""
    half = len(labels) // 2
    return [_right(y) if i >= half else _wrong(y, 0.30 if i < 2 else 0.0)
            for i, y in enumerate(labels)]


def _stream_bad(labels):
    """Always (confidently) the next class: any weight on it costs accuracy."""
    return [np.eye(C)[(y + 1) % C] for y in labels]


def _ann(tmp_path):
    """NTU-like pickle: xsub_val (the evaluation split), search_val, xsub_test."""
    anns = []
    splits = {}
    for split in ('xsub_val', 'search_val', 'xsub_test'):
        names = [f'{split}_{i}' for i in range(len(LABELS))]
        anns += [dict(frame_dir=n, label=y, total_frames=2,
                      keypoint=np.zeros((1, 2, 25, 3), np.float32))
                 for n, y in zip(names, LABELS)]
        # the split lists names in another order: the dataset (and every prediction file)
        # follows the annotation order
        splits[split] = names[::-1]
    path = tmp_path / 'ntu60_3danno.pkl'
    path.write_bytes(pickle.dumps(dict(split=splits, annotations=anns)))
    return path


def _write_preds(root: Path, streams: dict, sub='xsub_val'):
    paths = {}
    for name, scores in streams.items():
        path = root / sub / name / 'best_pred.pkl'
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps([np.asarray(s, np.float32) for s in scores]))
        paths[name] = str(path)
    return paths


def _rows(lines):
    """Parse the table: {fusion name: (streams, weights, top1, top5, mean_class)}."""
    rows = {}
    for line in lines:
        parts = line.split()
        if len(parts) == 6 and parts[0] != 'fusion':
            try:
                rows[parts[0]] = (parts[1], parts[2], *map(float, parts[3:]))
            except ValueError:
                pass
    return rows


def test_known_answers_pair(tmp_path):
    ann = _ann(tmp_path)
    np.testing.assert_array_equal(split_labels(ann, 'xsub_val'), LABELS)
    paths = _write_preds(tmp_path, dict(j=_stream_a(LABELS), b=_stream_b(LABELS)))
    lines = []
    out = run_ensemble(str(ann), 'xsub_val', [paths['j'], paths['b']], echo=lines.append)
    rows = _rows(lines)
    # hand-computed: j right on samples 0-3 (classes 0, 0, 0, 1): 4/8; recall 1 on classes
    # 0 and 1 of the six present -> 2/6; its misses keep the label second -> top-5 8/8
    assert rows['j'] == ('j', '1', 50.00, 100.00, 33.33)
    # b right on 4-7 (classes 2..5) -> 4/6; the label ranks last on samples 2 and 3 -> 6/8
    assert rows['b'] == ('b', '1', 50.00, 75.00, 66.67)
    # together (1, 1) every sample is right
    assert rows['2s'] == ('j+b', '1,1', 100.00, 100.00, 100.00)
    assert rows['given'] == ('j+b', '1,1', 100.00, 100.00, 100.00)
    assert '4s' not in rows and '6s' not in rows          # their streams are not all given
    assert lines[0].startswith("ensemble of 2 stream(s) on split 'xsub_val': 8 samples, "
                               '8 classes')
    assert out['weights'] == (1.0, 1.0)
    # with too much weight on b the label-last samples flip: 6/8
    bad = run_ensemble(str(ann), 'xsub_val', [paths['j'], paths['b']], weights=[1, 3],
                       echo=lambda _: None)
    assert bad['results'][-1].top1 == pytest.approx(6 / 8)


def test_six_streams_by_folder_name_and_out_file(tmp_path):
    ann = _ann(tmp_path)
    streams = dict(j=_stream_a(LABELS), b=_stream_b(LABELS), k=_stream_a(LABELS),
                   jm=_stream_b(LABELS), bm=_stream_a(LABELS), km=_stream_bad(LABELS))
    paths = _write_preds(tmp_path / 'work_dirs', streams)
    order = ['j', 'b', 'k', 'jm', 'bm', 'km']
    lines = []
    out_file = tmp_path / 'fused' / 'six.pkl'
    run_ensemble(str(ann), 'xsub_val', [paths[n] for n in order], weights=[2, 2, 2, 1, 1, 1],
                 out=str(out_file), echo=lines.append)
    rows = _rows(lines)
    assert [r for r in rows if r not in order] == ['2s', '4s', '6s', 'given']
    assert rows['4s'][:2] == ('j+b+jm+bm', '2,2,1,1')
    assert rows['6s'][:2] == ('j+b+k+jm+bm+km', '2,2,2,1,1,1')
    assert rows['given'][:2] == ('j+b+k+jm+bm+km', '2,2,2,1,1,1')
    assert rows['km'][2] == 0.0                            # the bad stream alone
    # independent check of the 4s / 6s numbers
    arr = {n: np.stack(s) for n, s in streams.items()}
    labels = np.asarray(LABELS)
    four = 2 * arr['j'] + 2 * arr['b'] + arr['jm'] + arr['bm']
    six = four + 2 * arr['k'] + arr['km']
    assert rows['4s'][2] == round(100 * float((four.argmax(1) == labels).mean()), 2)
    assert rows['6s'][2] == round(100 * float((six.argmax(1) == labels).mean()), 2)
    # --out: the given weights' fused scores, a list of float32 arrays (PYSKL format)
    fused = pickle.loads(out_file.read_bytes())
    assert isinstance(fused, list) and len(fused) == len(LABELS)
    assert all(f.dtype == np.float32 and f.shape == (C,) for f in fused)
    want = six.astype(np.float32)
    np.testing.assert_allclose(np.stack(fused), want, rtol=1e-6)
    assert f'written to {out_file}' in lines[-1]


def test_files_in_one_folder_are_named_by_their_stems(tmp_path, capsys):
    """``--preds out/j.pkl out/b.pkl``: one folder, so the streams are the file names, and
    the paper's 2s fusion is recognised."""
    ann = _ann(tmp_path)
    out = tmp_path / 'out'
    out.mkdir()
    for name, scores in (('j', _stream_a(LABELS)), ('b', _stream_b(LABELS))):
        (out / f'{name}.pkl').write_bytes(pickle.dumps([np.float32(s) for s in scores]))
    assert main(['--ann', str(ann), '--split', 'xsub_val', '--preds', str(out / 'j.pkl'),
                 str(out / 'b.pkl')]) == 0
    rows = _rows(capsys.readouterr().out.splitlines())
    assert rows['2s'][:2] == ('j+b', '1,1')
    assert stream_names(['w/j/best_pred.pkl', 'w/b/best_pred.pkl']) == ['j', 'b']
    assert stream_names(['w/j/best_pred.pkl', 'w/j/last_pred.pkl']) == ['best_pred', 'last_pred']
    with pytest.raises(FusionError, match="both stream 'x'"):   # neither tells them apart
        stream_names(['a/x.pkl', 'b/x.pkl', 'b/y.pkl'])


def test_sample_count_mismatch_names_the_file(tmp_path, capsys):
    ann = _ann(tmp_path)
    paths = _write_preds(tmp_path, dict(j=_stream_a(LABELS), b=_stream_b(LABELS)[:7]))
    with pytest.raises(FusionError, match=rf"{paths['b']} has 7 samples but split "
                                          r"'xsub_val' has 8"):
        run_ensemble(str(ann), 'xsub_val', [paths['j'], paths['b']], echo=lambda _: None)
    assert main(['--ann', str(ann), '--split', 'xsub_val', '--preds', paths['j'],
                 paths['b']]) == 2
    assert paths['b'] in capsys.readouterr().err
    with pytest.raises(FusionError, match='both stream'):
        run_ensemble(str(ann), 'xsub_val', [paths['j'], paths['j']], echo=lambda _: None)
    with pytest.raises(FusionError, match='2 --weights for 1'):
        run_ensemble(str(ann), 'xsub_val', [paths['j']], weights=[1, 2], echo=lambda _: None)


def test_search_finds_weights_on_a_val_split_and_refuses_the_test_split(tmp_path):
    ann = _ann(tmp_path)
    streams = dict(j=_stream_a(LABELS), b=_stream_b(LABELS), km=_stream_bad(LABELS))
    evals = _write_preds(tmp_path, streams, 'xsub_val')
    tune = _write_preds(tmp_path, streams, 'search_val')
    preds = [evals[n] for n in streams]

    for bad_split, why in (('xsub_test', 'test split'), ('xsub_val', 'evaluation split')):
        with pytest.raises(FusionError, match=rf"refusing .* {bad_split!r}: .*{why}"):
            run_ensemble(str(ann), 'xsub_val', preds, search=True, search_split=bad_split,
                         search_preds=[tune[n] for n in streams], echo=lambda _: None)
    with pytest.raises(FusionError, match='needs --search-split'):
        run_ensemble(str(ann), 'xsub_val', preds, search=True, echo=lambda _: None)

    lines = []
    out = run_ensemble(str(ann), 'xsub_val', preds, search=True, search_split='search_val',
                       search_preds=[tune[n] for n in streams], echo=lines.append)
    # km only hurts and (1, 1) is the smallest pair that gets every sample right
    assert out['weights'] == (1, 1, 0)
    assert any(line.startswith("search on split 'search_val'") and 'weights 1,1,0' in line
               for line in lines)
    assert _rows(lines)['searched'] == ('j+b+km', '1,1,0', 100.0, 100.0, 100.0)
    assert not any('WARNING' in line for line in lines)

    # explicitly allowed on the evaluation split: done, with a warning
    lines = []
    run_ensemble(str(ann), 'xsub_val', preds, search=True, search_split='xsub_val',
                 allow_same_split=True, echo=lines.append)
    assert any(line.startswith('WARNING') for line in lines)

    # the search itself, on arrays
    scores = [np.stack(streams[n]) for n in streams]
    assert search_weights(scores, LABELS) == ((1, 1, 0), 1.0)
    assert search_weights(scores[:1], LABELS, grid=[0, 1, 2]) == ((1,), 0.5)


def test_search_matches_brute_force_with_ties():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 5, 60)
    # coarse scores: many exact ties, which argmax breaks towards the first class
    scores = [np.round(rng.random((60, 5)), 1) for _ in range(3)]
    best = None
    for w in itertools.product(range(3), repeat=3):
        if any(w) and math.gcd(*w) == 1:
            fused = sum(wi * si for wi, si in zip(w, scores))
            acc = float((fused.argmax(1) == labels).mean())
            if best is None or (-acc, sum(w)) < best[0]:
                best = ((-acc, sum(w)), w)
    assert search_weights(scores, labels, grid=[0, 1, 2]) == (best[1], -best[0][0])


def test_load_scores_formats_and_errors(tmp_path):
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    (tmp_path / 'a.pkl').write_bytes(pickle.dumps(arr))
    (tmp_path / 'l.pkl').write_bytes(pickle.dumps(list(arr)))
    (tmp_path / 'bad.pkl').write_bytes(pickle.dumps({'x': 1}))
    np.testing.assert_array_equal(load_scores(tmp_path / 'a.pkl'), arr)
    np.testing.assert_array_equal(load_scores(tmp_path / 'l.pkl'), arr)
    with pytest.raises(FusionError, match='bad.pkl must hold a list'):
        load_scores(tmp_path / 'bad.pkl')
    with pytest.raises(FusionError, match='not found'):
        load_scores(tmp_path / 'missing.pkl')
    np.testing.assert_array_equal(fuse([arr, arr], [2, 1]), 3 * arr)


def test_tool_prints_the_paper_fusions(tmp_path):
    """The documented command line, end to end through tools/ensemble.py."""
    ann = _ann(tmp_path)
    streams = dict(j=_stream_a(LABELS), b=_stream_b(LABELS), k=_stream_a(LABELS),
                   jm=_stream_b(LABELS), bm=_stream_a(LABELS), km=_stream_b(LABELS))
    root = tmp_path / 'work_dirs' / 'ntu60_xsub'
    for name, scores in streams.items():
        (root / name).mkdir(parents=True)
        (root / name / 'best_pred.pkl').write_bytes(pickle.dumps([s.astype(np.float32)
                                                                  for s in scores]))
    preds = [str(root / n / 'best_pred.pkl') for n in ('j', 'b', 'k', 'jm', 'bm', 'km')]
    proc = subprocess.run(
        [sys.executable, str(ROOT / 'tools' / 'ensemble.py'), '--ann', str(ann), '--split',
         'xsub_val', '--preds', *preds, '--weights', '2', '2', '2', '1', '1', '1'],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = _rows(proc.stdout.splitlines())
    assert rows['2s'] == ('j+b', '1,1', 100.0, 100.0, 100.0)
    assert rows['4s'][:2] == ('j+b+jm+bm', '2,2,1,1')
    assert rows['6s'][:2] == ('j+b+k+jm+bm+km', '2,2,2,1,1,1')
    assert rows['given'][:2] == ('j+b+k+jm+bm+km', '2,2,2,1,1,1')
    header = [line.split() for line in proc.stdout.splitlines() if line.startswith('fusion')]
    assert header == [['fusion', 'streams', 'weights', 'top1', 'top5', 'mean_class']]
