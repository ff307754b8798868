"""Data preparation on small hand-written raw files, and check.py on good and broken pickles.

NTU: five tiny ``.skeleton`` files (one body; three bodies of which one is spread noise; two
short bodies; an NTU120 sample; a sample from the official missing-skeleton list) and a
truncated one. UAV-Human: three tiny ``.txt`` files. The expected pickles are written out by
hand from PYSKL's rules (see skeletonagent/datasets/prep/ntu.py).
"""
import importlib.util
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from skeletonagent.datasets.prep import (
    SkeletonFileError,
    check_annotation_file,
    ntu_splits,
    parse_skeleton_text,
    prepare_ntu,
    prepare_uav,
    read_missing_list,
    select_bodies,
)
from skeletonagent.datasets.prep.check import main as check_main
from skeletonagent.datasets.prep.ntu import default_missing_file, missing_list_file

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------------------- writers
def _num(v: float) -> str:
    return f'{v:.4f}'


def _as_written(arr: np.ndarray) -> np.ndarray:
    """The float32 values a file written with :func:`_num` holds."""
    return np.vectorize(lambda v: float(_num(v)))(arr).astype(np.float32)


def write_skeleton(path: Path, frames, extra_cols: int = 9) -> None:
    """frames: list (per frame) of lists of (body_id, joints (V, C)); NTU text layout."""
    out = [str(len(frames))]
    for bodies in frames:
        out.append(str(len(bodies)))
        for body_id, joints in bodies:
            out.append(f'{body_id} 0 1 1 1 1 0 0.1 0.2 2')
            out.append(str(len(joints)))
            for joint in joints:
                out.append(' '.join([_num(v) for v in joint] + ['0.5'] * extra_cols))
    path.write_text('\n'.join(out) + '\n')


BASE = np.stack([0.01 * np.arange(25), 0.04 * np.arange(25), np.full(25, 3.0)], axis=1)


def body_a(t):         # the most active real body: walks along x
    return BASE + [0.1 * t, 0.0, 0.0]


def body_b(t):         # a second, slower body, one metre to the right
    return BASE + [1.0 + 0.01 * t, 0.0, 0.0]


def body_noise(t):     # wider than high in every frame and very active: spread noise
    j = np.arange(25)
    return np.stack([0.5 * j + 0.3 * t, 0.01 * j, np.full(25, 3.0)], axis=1)


NAME_ONE = 'S001C001P001R001A001'      # subject 1 (xsub train), camera 1 (xview val)
NAME_TWO = 'S001C002P003R002A010'      # subject 3 (xsub val), camera 2 (xview train)
NAME_SHORT = 'S002C003P002R001A002'    # subject 2 (xsub train), camera 3 (xview train)
NAME_120 = 'S018C001P008R001A061'      # NTU120 only: subject 8 (train), setup 18 (xset train)
NAME_MISSING = 'S001C002P005R002A008'  # on the official missing-skeleton list
NAME_BROKEN = 'S003C001P007R001A003'


@pytest.fixture()
def ntu_raw(tmp_path):
    raw = tmp_path / 'raw'
    raw.mkdir()
    # One body, three frames.
    write_skeleton(raw / f'{NAME_ONE}.skeleton', [[('72057594037931101', body_a(t))]
                                                  for t in range(3)])
    # An empty first frame, then A (14 frames), B (frames 2..13), noise C (14 frames).
    frames = [[]]
    for t in range(14):
        bodies = [('111', body_a(t))]
        if t >= 2:
            bodies.append(('222', body_b(t)))
        bodies.append(('333', body_noise(t)))
        frames.append(bodies)
    write_skeleton(raw / f'{NAME_TWO}.skeleton', frames)
    # Two bodies of three frames: both are under the length threshold.
    write_skeleton(raw / f'{NAME_SHORT}.skeleton',
                   [[('1', body_b(t)), ('2', body_a(t))] for t in range(3)])
    write_skeleton(raw / f'{NAME_120}.skeleton', [[('9', body_b(t))] for t in range(2)])
    write_skeleton(raw / f'{NAME_MISSING}.skeleton', [[('5', body_a(t))] for t in range(2)])
    return raw


def _load(path):
    with open(path, 'rb') as f:
        return pickle.load(f)


def _assert_same(d1, d2):
    assert d1['split'] == d2['split']
    assert len(d1['annotations']) == len(d2['annotations'])
    for a1, a2 in zip(d1['annotations'], d2['annotations']):
        assert set(a1) == set(a2)
        for key in a1:
            if isinstance(a1[key], np.ndarray):
                assert a1[key].dtype == a2[key].dtype
                np.testing.assert_array_equal(a1[key], a2[key])
            else:
                assert a1[key] == a2[key]


def _expected_two() -> np.ndarray:
    kp = np.zeros((2, 14, 25, 3), np.float32)
    kp[0] = _as_written(np.stack([body_a(t) for t in range(14)]))
    kp[1, 2:] = _as_written(np.stack([body_b(t) for t in range(2, 14)]))
    return kp


# ---------------------------------------------------------------------------- NTU
def test_shipped_missing_lists():
    ntu120 = read_missing_list(default_missing_file())
    ntu60 = read_missing_list(missing_list_file('ntu60'))
    assert 'skeletonagent/data/ntu_missing' in str(default_missing_file()).replace('\\', '/')
    assert len(ntu120) == 535 and len(ntu60) == 302 and ntu60 <= ntu120
    assert NAME_MISSING in ntu60
    assert all(int(name[1:4]) <= 17 for name in ntu60)


def test_ntu_pickles_exact(ntu_raw, tmp_path):
    out = tmp_path / 'out'
    res = prepare_ntu(ntu_raw, out, progress=False, log=lambda s: None)
    assert set(res['outputs']) == {'ntu60', 'ntu120'}
    assert res['excluded_missing'] == 1

    with open(out / 'ntu60_3danno.pkl', 'rb') as f:
        ntu60 = pickle.load(f)
    assert ntu60['split'] == dict(
        xsub_train=[NAME_ONE, NAME_SHORT], xsub_val=[NAME_TWO],
        xview_train=[NAME_TWO, NAME_SHORT], xview_val=[NAME_ONE])
    anns = {a['frame_dir']: a for a in ntu60['annotations']}
    assert [a['frame_dir'] for a in ntu60['annotations']] == sorted(anns)
    assert set(anns) == {NAME_ONE, NAME_TWO, NAME_SHORT}

    one = anns[NAME_ONE]
    assert set(one) == {'frame_dir', 'label', 'keypoint', 'total_frames'}
    assert one['label'] == 0 and one['total_frames'] == 3
    assert one['keypoint'].dtype == np.float32 and one['keypoint'].shape == (1, 3, 25, 3)
    np.testing.assert_array_equal(
        one['keypoint'][0], _as_written(np.stack([body_a(t) for t in range(3)])))

    two = anns[NAME_TWO]
    assert two['label'] == 9 and two['total_frames'] == 14
    np.testing.assert_array_equal(two['keypoint'], _expected_two())

    # Both bodies are too short to be filtered: the most active one (A) is kept alone.
    short = anns[NAME_SHORT]
    assert short['label'] == 1 and short['keypoint'].shape == (1, 3, 25, 3)
    np.testing.assert_array_equal(
        short['keypoint'][0], _as_written(np.stack([body_a(t) for t in range(3)])))

    with open(out / 'ntu120_3danno.pkl', 'rb') as f:
        ntu120 = pickle.load(f)
    names120 = [NAME_ONE, NAME_TWO, NAME_SHORT, NAME_120]
    assert [a['frame_dir'] for a in ntu120['annotations']] == sorted(names120)
    assert ntu120['split'] == dict(
        xsub_train=[NAME_ONE, NAME_SHORT, NAME_120], xsub_val=[NAME_TWO],
        xset_train=[NAME_SHORT, NAME_120], xset_val=[NAME_ONE, NAME_TWO])
    a120 = {a['frame_dir']: a for a in ntu120['annotations']}[NAME_120]
    assert a120['label'] == 60 and a120['keypoint'].shape == (1, 2, 25, 3)

    # The written pickles pass the checker.
    assert check_annotation_file(out / 'ntu60_3danno.pkl', num_classes=60)['samples'] == 3


def test_select_bodies_swaps_and_trims():
    # A is the most active body, so it goes on track 0; it has no spine joint in the first
    # frame while B has, so the persons are swapped. A sample with no body gives None.
    a = [body_a(t) for t in range(12)]
    a[0] = a[0].copy()
    a[0][1] = 0.0
    frames = [[('a', a[t]), ('b', body_b(t))] for t in range(12)]
    kp = select_bodies(frames)
    assert kp.shape == (2, 12, 25, 3)
    np.testing.assert_allclose(kp[0], np.stack([body_b(t) for t in range(12)]))
    np.testing.assert_allclose(kp[1], np.stack(a))
    assert select_bodies([[], []]) is None


def test_ntu_splits_official_rules():
    names = ['S001C001P001R001A001', 'S001C002P040R001A001', 'S002C003P038R001A001',
             'S019C002P103R001A070', 'S020C003P104R001A070']
    s60 = ntu_splits(names[:3], 'ntu60')
    assert s60['xsub_train'] == ['S001C001P001R001A001', 'S002C003P038R001A001']
    assert s60['xview_train'] == ['S001C002P040R001A001', 'S002C003P038R001A001']
    s120 = ntu_splits(names, 'ntu120')
    assert 'S019C002P103R001A070' in s120['xsub_train']
    assert 'S020C003P104R001A070' in s120['xsub_val']
    assert s120['xset_train'] == ['S002C003P038R001A001', 'S020C003P104R001A070']


def test_ntu_resume_reuses_cache(ntu_raw, tmp_path):
    out = tmp_path / 'out'
    quiet = dict(progress=False, log=lambda s: None)
    first = prepare_ntu(ntu_raw, out, **quiet)['result']
    assert first.processed == 4 and first.cached == 0
    cache = out / '.ntu_work' / 'samples'
    stamps = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert len(stamps) == 4
    before = _load(out / 'ntu60_3danno.pkl')

    second = prepare_ntu(ntu_raw, out, **quiet)['result']
    assert second.processed == 0 and second.cached == 4
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == stamps
    _assert_same(_load(out / 'ntu60_3danno.pkl'), before)

    # A changed raw file is redone, and only it.
    write_skeleton(ntu_raw / f'{NAME_ONE}.skeleton', [[('1', body_b(t))] for t in range(4)])
    third = prepare_ntu(ntu_raw, out, **quiet)['result']
    assert third.processed == 1 and third.cached == 3
    assert third.annotations[NAME_ONE]['total_frames'] == 4

    # Two worker processes give the same pickle as one.
    prepare_ntu(ntu_raw, tmp_path / 'out2', workers=2, **quiet)
    _assert_same(_load(out / 'ntu120_3danno.pkl'), _load(tmp_path / 'out2' / 'ntu120_3danno.pkl'))


def test_ntu_broken_file_skipped_or_strict(ntu_raw, tmp_path):
    good = ntu_raw / f'{NAME_ONE}.skeleton'
    lines = good.read_text().splitlines()
    (ntu_raw / f'{NAME_BROKEN}.skeleton').write_text('\n'.join(lines[:40]) + '\n')
    with pytest.warns(UserWarning, match=NAME_BROKEN):
        res = prepare_ntu(ntu_raw, tmp_path / 'out', progress=False, log=lambda s: None)
    result = res['result']
    assert [n for n, _ in result.failed] == [NAME_BROKEN]
    assert 'line 41' in result.failed[0][1] and 'ends early' in result.failed[0][1]
    assert NAME_BROKEN in (tmp_path / 'out' / '.ntu_work' / 'failed.txt').read_text()
    assert NAME_BROKEN not in result.annotations

    with pytest.raises(SkeletonFileError, match=rf'{NAME_BROKEN}\.skeleton, line 41'):
        prepare_ntu(ntu_raw, tmp_path / 'strict', strict=True, progress=False,
                    log=lambda s: None)

    bad_number = ntu_raw / 'S004C001P001R001A001.skeleton'
    lines[5] = 'x 1 2'
    bad_number.write_text('\n'.join(lines) + '\n')
    with pytest.raises(SkeletonFileError, match='line 6.*non-number'):
        parse_skeleton_text(bad_number, num_joints=25)


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(f'_tool_{name}',
                                                  ROOT / 'tools' / 'data' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_preproc_tools(ntu_raw, tmp_path, capsys):
    out = tmp_path / 'out'
    assert _tool('ntu_preproc').main(['--root', str(ntu_raw), '--out-dir', str(out),
                                      '--dataset', 'ntu60', '--no-progress',
                                      '--dtype', 'float16']) == 0
    data = _load(out / 'ntu60_3danno.pkl')
    assert data['annotations'][0]['keypoint'].dtype == np.float16
    assert not (out / 'ntu120_3danno.pkl').exists()
    assert '1 excluded by the missing-skeleton list' in capsys.readouterr().out
    # Without the missing list the listed sample is kept; a bad file gives exit status 2.
    (ntu_raw / f'{NAME_BROKEN}.skeleton').write_text('2\n1\n')
    with pytest.warns(UserWarning):
        assert _tool('ntu_preproc').main(['--root', str(ntu_raw), '--out-dir', str(out),
                                          '--missing', 'none', '--no-progress']) == 2
    names = [a['frame_dir'] for a in _load(out / 'ntu60_3danno.pkl')['annotations']]
    assert NAME_MISSING in names and NAME_BROKEN not in names

    raw = tmp_path / 'uavraw'
    raw.mkdir()
    write_skeleton(raw / f'{UAV_0}.txt', [[('0', _uav_joints(0))]], extra_cols=0)
    assert _tool('uav_preproc').main(['--root', str(raw), '--out', str(tmp_path / 'u.pkl'),
                                      '--no-progress', '--workers', '2']) == 0
    assert _load(tmp_path / 'u.pkl')['split']['csv1_train'] == [UAV_0]


# ---------------------------------------------------------------------------- UAV
UAV_0 = 'P000S00G10B10H10UC022000LC021000A000R0_08241716'   # csv1 train, csv2 train
UAV_1 = 'P001S01G10B10H10UC022000LC021000A005R0_08241717'   # csv1 val, csv2 val
UAV_3 = 'P003S00G20B00H00UC102000LC092000A154R1_09131758'   # csv1 val, csv2 train


def _uav_joints(offset: float) -> np.ndarray:
    return np.stack([np.arange(17) + offset, 2.0 * np.arange(17), np.zeros(17)], axis=1)


def test_uav_pickle_exact_and_resume(tmp_path):
    raw = tmp_path / 'Skeleton'
    raw.mkdir()
    write_skeleton(raw / f'{UAV_0}.txt', [[('0', _uav_joints(t))] for t in range(2)],
                   extra_cols=2)
    write_skeleton(raw / f'{UAV_1}.txt', [[('0', _uav_joints(0)), ('1', _uav_joints(50))],
                                          [('0', _uav_joints(1))], []], extra_cols=2)
    write_skeleton(raw / f'{UAV_3}.txt', [[('0', _uav_joints(7))]], extra_cols=2)
    out = tmp_path / 'uav' / 'uav_human.pkl'
    res = prepare_uav(raw, out, progress=False, log=lambda s: None)
    assert res['result'].processed == 3
    with open(out, 'rb') as f:
        data = pickle.load(f)
    assert data['split'] == dict(csv1_train=[UAV_0], csv1_val=[UAV_1, UAV_3],
                                 csv2_train=[UAV_0, UAV_3], csv2_val=[UAV_1])
    anns = {a['frame_dir']: a for a in data['annotations']}
    assert [anns[n]['label'] for n in (UAV_0, UAV_1, UAV_3)] == [0, 5, 154]

    a0 = anns[UAV_0]
    assert a0['keypoint'].shape == (1, 2, 17, 2) and a0['total_frames'] == 2
    np.testing.assert_array_equal(a0['keypoint'][0, 1], _uav_joints(1)[:, :2])
    np.testing.assert_array_equal(a0['keypoint_score'], np.ones((1, 2, 17), np.float32))

    a1 = anns[UAV_1]
    assert a1['keypoint'].shape == (2, 3, 17, 2) and a1['total_frames'] == 3
    np.testing.assert_array_equal(a1['keypoint'][1, 0], _uav_joints(50)[:, :2])
    np.testing.assert_array_equal(a1['keypoint'][0, 1], _uav_joints(1)[:, :2])
    assert not a1['keypoint'][1, 1:].any() and not a1['keypoint'][:, 2].any()
    np.testing.assert_array_equal(a1['keypoint_score'][:, :, 0], [[1, 1, 0], [1, 0, 0]])
    summary = check_annotation_file(out, split='csv1_val', num_classes=155)
    assert summary['samples'] == 2 and summary['keypoint_score']['samples'] == 2

    again = prepare_uav(raw, out, progress=False, log=lambda s: None)['result']
    assert again.processed == 0 and again.cached == 3

    write_skeleton(raw / 'P002S00G10B10H10UC022000LC021000A001R0_08241718.txt',
                   [[('0', _uav_joints(0)[:16])]], extra_cols=2)
    with pytest.raises(SkeletonFileError, match='expected 17 joints, got 16'):
        prepare_uav(raw, out, strict=True, progress=False, log=lambda s: None)


# ---------------------------------------------------------------------------- check.py
def _good_data():
    rng = np.random.default_rng(0)
    anns = []
    for i in range(4):
        t = 5 + i
        anns.append(dict(frame_dir=f'v{i}', label=i % 3, total_frames=t,
                         keypoint=rng.normal(size=(2, t, 17, 2)).astype(np.float32),
                         keypoint_score=np.ones((2, t, 17), np.float32)))
    return dict(split=dict(train=['v0', 'v1', 'v2'], val=['v3']), annotations=anns)


def _dump(path: Path, data) -> Path:
    with open(path, 'wb') as f:
        pickle.dump(data, f)
    return path


def _env():
    env = dict(os.environ)
    env['PYTHONPATH'] = str(ROOT) + os.pathsep + env.get('PYTHONPATH', '')
    return env


def test_check_tool_good_subprocess(tmp_path):
    good = _dump(tmp_path / 'good.pkl', _good_data())
    proc = subprocess.run([sys.executable, str(ROOT / 'tools' / 'data' / 'check.py'),
                           str(good)], capture_output=True, text=True, env=_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    for text in ('OK', 'samples: 4', 'train 3, val 1', 'frames: min 5.0', 'persons:',
                 'channel 0:', 'channel 1:', 'keypoint_score: present in 4 samples'):
        assert text in proc.stdout



def test_check_summary_split(tmp_path, capsys):
    good = _dump(tmp_path / 'good.pkl', _good_data())
    assert check_main([str(good), '--split', 'val']) == 0
    out = capsys.readouterr().out
    assert "split 'val'" in out and 'samples: 1 of 4' in out and 'frames: min 8.0' in out


def _ndim(data):
    data['annotations'][2]['keypoint'] = data['annotations'][2]['keypoint'][0]
    return 'v2', 'keypoint', 'must be 4-d'


def _nan(data):
    data['annotations'][1]['keypoint'][0, 2, 3, 1] = np.nan
    return 'v1', 'keypoint', 'non-finite'


def _label(data):
    data['annotations'][3]['label'] = 7
    return 'v3', 'label', 'num_classes=3'


def _negative_label(data):
    data['annotations'][0]['label'] = -1
    return 'v0', 'label', '>= 0'


def _missing_field(data):
    del data['annotations'][2]['total_frames']
    return 'v2', 'total_frames', 'required field missing'


def _unknown_in_split(data):
    data['split']['val'].append('nope')
    return 'nope', 'split', 'absent from the annotations'


def _duplicate(data):
    data['annotations'][3]['frame_dir'] = 'v0'
    return 'v0', 'frame_dir', 'share this name'


def _score_shape(data):
    data['annotations'][0]['keypoint_score'] = np.ones((2, 3, 17), np.float32)
    return 'v0', 'keypoint_score', 'does not match'


@pytest.mark.parametrize('breaker', [_ndim, _nan, _label, _negative_label, _missing_field,
                                     _unknown_in_split, _duplicate, _score_shape])
def test_check_broken_pickles(tmp_path, capsys, breaker):
    data = _good_data()
    sample, field, words = breaker(data)
    path = _dump(tmp_path / 'broken.pkl', data)
    assert check_main([str(path), '--num-classes', '3']) == 1
    err = capsys.readouterr().err
    assert str(path) in err and f'sample {sample!r}' in err and f'field {field!r}' in err
    assert words in err


def test_check_joint_count_against_a_layout_or_a_config(tmp_path, capsys):
    """The 17-joint (COCO) file passes for coco and for the Kinetics config (its pipeline
    starts from COCO's 17 joints) and fails for the NTU layout and the demo config (25)."""
    path = _dump(tmp_path / 'coco17.pkl', _good_data())
    assert check_main([str(path), '--layout', 'nturgb+d']) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"ERROR: file {path}, sample 'v0', field 'keypoint': has 17 joints")
    assert "layout 'nturgb+d' needs 25" in err
    demo = ROOT / 'configs' / 'demo' / 'j.py'
    assert check_main([str(path), '--config', str(demo)]) == 1
    assert (f"GenSkeFeat(dataset='nturgb+d') in the pipeline of {demo} needs 25"
            in capsys.readouterr().err)

    assert check_main([str(path), '--layout', 'coco']) == 0
    assert "17 in 4 samples (checked: layout 'coco' needs 17)" in capsys.readouterr().out
    assert check_main([str(path), '--config', str(ROOT / 'configs' / 'k400' / 'j.py')]) == 0
    assert 'checked: ' in capsys.readouterr().out
    assert check_main([str(path), '--layout', 'kinect']) == 1
    assert "unknown skeleton layout 'kinect'" in capsys.readouterr().err
    assert check_main([str(path), '--config', str(tmp_path / 'none.py')]) == 1
    assert 'cannot read config' in capsys.readouterr().err


def test_check_top_level_errors(tmp_path, capsys):
    assert check_main([str(tmp_path / 'absent.pkl')]) == 1
    assert 'not found' in capsys.readouterr().err
    path = _dump(tmp_path / 'nosplit.pkl', _good_data())
    assert check_main([str(path), '--split', 'test']) == 1
    err = capsys.readouterr().err
    assert "unknown split 'test'" in err and "field 'split'" in err


def _read_number(path: str, scale: int = 1) -> dict:
    """run_samples' worker for the runner test: the file's number, times ``scale``."""
    text = Path(path).read_text().strip()
    if not text.isdigit():
        raise ValueError(f'{path}: not a number: {text!r}')
    return dict(value=int(text) * scale)


def test_runner_caches_collects_failures_and_strict_raises_a_sample_error(tmp_path):
    """prep/runner.py on its own: results cached per sample (a rerun computes only a changed
    file, and every sample again when the settings key changes), unreadable files collected
    in failed.txt, and a strict run stopping with a SampleError (a user error)."""
    from skeletonagent.datasets.prep.runner import SampleError, find_files, run_samples
    from skeletonagent.errors import SkeletonAgentError
    raw = tmp_path / 'raw'
    raw.mkdir()
    for name, text in (('a', '1'), ('b', '2'), ('c', 'x')):
        (raw / f'{name}.txt').write_text(text)
    items = find_files([raw], '.txt')
    assert [name for name, _ in items] == ['a', 'b', 'c']
    work = tmp_path / 'work'
    with pytest.warns(UserWarning, match='skipped c'):
        first = run_samples(items, _read_number, work, key=1, progress=False)
    assert {n: a['value'] for n, a in first.annotations.items()} == {'a': 1, 'b': 2}
    assert (first.processed, first.cached, [n for n, _ in first.failed]) == (2, 0, ['c'])
    assert (work / 'failed.txt').read_text().startswith('c\t')
    (raw / 'c.txt').write_text('3')
    second = run_samples(items, _read_number, work, key=1, progress=False)
    assert (second.processed, second.cached, second.failed) == (1, 2, [])
    assert not (work / 'failed.txt').exists()
    third = run_samples(items, _read_number, work, key=2, progress=False, fn_kwargs=dict(scale=10))
    assert third.processed == 3 and third.annotations['c']['value'] == 30
    (raw / 'b.txt').write_text('y')
    with pytest.raises(SampleError, match='not a number') as info:
        run_samples(items, _read_number, tmp_path / 'strict', key=1, strict=True, progress=False)
    assert isinstance(info.value, SkeletonAgentError) and isinstance(info.value, ValueError)
