"""Tests of the synthetic demo dataset: shapes, splits, determinism, and motion semantics."""
import os
import pickle
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

from skeletonagent.datasets import DataError, PoseDataset, synthetic, validate_annotation
from skeletonagent.datasets.synthetic import DEMO_CLASSES, ensure_demo_data, make_demo_annotations
from skeletonagent.skeleton import REST_POSES, get_layout

LAYOUT = get_layout(synthetic.DEMO_LAYOUT)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def small():
    """6 samples per class in train (seed 1), 1 in val and test."""
    return make_demo_annotations(num_train_per_class=6, num_val_per_class=1,
                                 num_test_per_class=1, seed=1)


def _by_class(data, split='train'):
    wanted = set(data['split'][split])
    out = {name: [] for name in DEMO_CLASSES}
    for ann in data['annotations']:
        if ann['frame_dir'] in wanted:
            out[DEMO_CLASSES[ann['label']]].append(ann['keypoint'][0])   # the actor
    return out


def _extent(clip, joint, relative_to=None, axis=None):
    """Size of the box a joint sweeps (metres), optionally relative to another joint."""
    points = clip[:, LAYOUT.index(joint)]
    if relative_to is not None:
        points = points - clip[:, LAYOUT.index(relative_to)]
    spread = points.max(0) - points.min(0)
    return float(spread[axis] if axis is not None else np.linalg.norm(spread))


def _mean_extent(clips, *args, **kwargs):
    return float(np.mean([_extent(clip, *args, **kwargs) for clip in clips]))


# ----------------------------------------------------------------------------- format
def test_classes_and_rest_pose_cover_the_layout():
    assert len(DEMO_CLASSES) == 12 == len(set(DEMO_CLASSES))
    assert {'raise left hand', 'raise right hand', 'kick left leg', 'kick right leg'} <= \
        set(DEMO_CLASSES)
    assert set(REST_POSES['nturgb+d']) == set(LAYOUT.joint_names)


def test_shapes_labels_and_splits(small):
    anns = small['annotations']
    assert list(small['split']) == ['train', 'val', 'test']
    assert [len(v) for v in small['split'].values()] == [72, 12, 12]
    assert len(anns) == 96 and len({a['frame_dir'] for a in anns}) == 96
    assert small['classes'] == list(DEMO_CLASSES)
    for names in small['split'].values():
        labels = [a['label'] for a in anns if a['frame_dir'] in set(names)]
        assert sorted(set(labels)) == list(range(12))
    num_people = []
    for i, ann in enumerate(anns):
        keypoint = ann['keypoint']
        assert keypoint.dtype == np.float32 and keypoint.shape[2:] == (25, 3)
        assert keypoint.shape[0] in (1, 2) and 30 <= keypoint.shape[1] <= 80
        assert ann['total_frames'] == keypoint.shape[1]
        assert isinstance(ann['label'], int)
        validate_annotation(ann, file='demo', index=i, num_classes=12)
        num_people.append(keypoint.shape[0])
    assert 0.1 < np.mean(np.array(num_people) == 2) < 0.6       # some samples have 2 people
    assert len({a['total_frames'] for a in anns}) > 20           # lengths vary


def test_coordinates_look_like_ntu(small):
    """Metres in camera space: a person 2-4 m in front of the camera, y up, ~1.5-2 m tall."""
    for clip in [a['keypoint'][0] for a in small['annotations'][:24]]:
        assert 2.0 < clip[:, :, 2].mean() < 4.0
        height = clip[0, LAYOUT.index('head'), 1] - clip[0, LAYOUT.index('left foot'), 1]
        assert 1.1 < height < 2.1


def test_deterministic_under_seed():
    first = make_demo_annotations(num_train_per_class=2, num_val_per_class=1,
                                  num_test_per_class=1, seed=5)
    again = make_demo_annotations(num_train_per_class=2, num_val_per_class=1,
                                  num_test_per_class=1, seed=5)
    other = make_demo_annotations(num_train_per_class=2, num_val_per_class=1,
                                  num_test_per_class=1, seed=6)
    assert first['split'] == again['split']
    for a, b, c in zip(first['annotations'], again['annotations'], other['annotations']):
        assert a['frame_dir'] == b['frame_dir'] == c['frame_dir']
        np.testing.assert_array_equal(a['keypoint'], b['keypoint'])
        assert a['keypoint'].shape != c['keypoint'].shape or \
            not np.allclose(a['keypoint'], c['keypoint'])


def test_a_sample_does_not_depend_on_the_other_splits_sizes():
    few = make_demo_annotations(num_train_per_class=1, num_val_per_class=1,
                                num_test_per_class=2, seed=0)
    more = make_demo_annotations(num_train_per_class=3, num_val_per_class=0,
                                 num_test_per_class=2, seed=0)
    tests_few = {a['frame_dir']: a for a in few['annotations'] if '_test_' in a['frame_dir']}
    tests_more = {a['frame_dir']: a for a in more['annotations'] if '_test_' in a['frame_dir']}
    assert tests_few.keys() == tests_more.keys()
    for name, ann in tests_few.items():
        np.testing.assert_array_equal(ann['keypoint'], tests_more[name]['keypoint'])


# ----------------------------------------------------------------------------- the rig
def test_rotations_compose_right_to_left():
    """``a * b`` turns by ``b`` first: z by +90° takes x to y, then x by -90° takes y to -z."""
    turn = synthetic._rot('x', -np.pi / 2) * synthetic._rot('z', np.pi / 2)
    np.testing.assert_allclose(turn.apply([1.0, 0.0, 0.0]), [0.0, 0.0, -1.0], atol=1e-12)
    assert len(synthetic._rot('x', np.zeros(7))) == 7              # one rotation per frame


def test_rig_turns_a_sub_tree_about_its_joint():
    """An elbow turned by -90° about x swings the hanging forearm forward (hand-computed from
    the rest pose: wrist - elbow = (0.02, -0.24, 0.03) becomes (0.02, 0.03, 0.24))."""
    rig = synthetic._Rig('nturgb+d')
    points = rig.pose(rig.rest, {'left elbow': synthetic._rot('x', np.array([-np.pi / 2]))})[0]
    np.testing.assert_allclose(points[LAYOUT.index('left wrist')], [0.24, 1.15, 0.20],
                               atol=1e-12)
    moved = np.flatnonzero(np.abs(points - rig.rest).max(1) > 1e-12)
    assert {LAYOUT.joint_names[j] for j in moved} == {
        'left wrist', 'left hand', 'tip of the left hand', 'left thumb'}


# ----------------------------------------------------------------------------- semantics
@pytest.mark.parametrize('side, other', [('left', 'right'), ('right', 'left')])
def test_hand_actions_move_the_named_hand(small, side, other):
    clips = _by_class(small)
    for action in (f'raise {side} hand', f'wave {side} hand'):
        moved = [_extent(c, f'{side} wrist', 'spine') for c in clips[action]]
        still = [_extent(c, f'{other} wrist', 'spine') for c in clips[action]]
        assert min(moved) > 0.5 and min(m / s for m, s in zip(moved, still)) > 3, action


@pytest.mark.parametrize('side, other', [('left', 'right'), ('right', 'left')])
def test_kicks_move_the_named_leg(small, side, other):
    for clip in _by_class(small)[f'kick {side} leg']:
        moved = _extent(clip, f'{side} ankle', 'base of the spine')
        still = _extent(clip, f'{other} ankle', 'base of the spine')
        assert moved > 0.5 and moved > 3 * still


def test_head_actions_move_the_head_on_the_neck(small):
    clips = _by_class(small)
    calm = _mean_extent(clips['clap hands'], 'head', 'neck')
    assert _mean_extent(clips['nod head'], 'head', 'neck') > 1.5 * calm
    assert _mean_extent(clips['shake head'], 'head', 'neck') > 1.5 * calm
    # a bow moves the head far more relative to the pelvis than a nod does
    assert _mean_extent(clips['bow'], 'head', 'base of the spine') > \
        2 * _mean_extent(clips['nod head'], 'head', 'base of the spine')


def test_whole_body_actions(small):
    clips = _by_class(small)
    for clip in clips['squat down']:                 # pelvis goes down, feet stay put
        assert _extent(clip, 'base of the spine', axis=1) > 0.3
        assert _extent(clip, 'left ankle', axis=1) < 0.1
    for clip in clips['jump up']:                    # feet leave the floor
        assert _extent(clip, 'left ankle', axis=1) > 0.12
        assert _extent(clip, 'right ankle', axis=1) > 0.12
    for action in ('raise left hand', 'nod head', 'clap hands'):
        for clip in clips[action]:
            assert _extent(clip, 'left ankle', axis=1) < 0.1, action


def test_clapping_brings_the_hands_together(small):
    def closest(clip):
        gap = clip[:, LAYOUT.index('left hand')] - clip[:, LAYOUT.index('right hand')]
        return np.linalg.norm(gap, axis=-1).min()

    clips = _by_class(small)
    assert max(closest(c) for c in clips['clap hands']) < 0.25
    assert min(closest(c) for c in clips['raise left hand'] + clips['kick left leg']) > 0.3


def _motion_features(keypoint):
    """Per joint, relative to the pelvis: horizontal and vertical spread, mean speed.

    Invariant to where the person stands and which way they face.
    """
    pelvis = LAYOUT.index('base of the spine')
    x = keypoint[0].astype(np.float64)
    x = x - x[:, pelvis:pelvis + 1]
    x = x - x.mean(0)
    horizontal = np.hypot(x[..., 0].std(0), x[..., 2].std(0))
    speed = np.linalg.norm(np.diff(x, axis=0), axis=-1).mean(0)
    return np.concatenate([horizontal, x[..., 1].std(0), speed])


def test_classes_are_learnable_but_not_trivial():
    """A linear classifier on joint-motion features separates all 12 classes; a nearest-
    centroid one on the same features does not (the subtle pairs get confused)."""
    data = make_demo_annotations(num_train_per_class=20, num_val_per_class=0,
                                 num_test_per_class=10, seed=0)
    train = set(data['split']['train'])
    feats = {True: [], False: []}
    labels = {True: [], False: []}
    for ann in data['annotations']:
        is_train = ann['frame_dir'] in train
        feats[is_train].append(_motion_features(ann['keypoint']))
        labels[is_train].append(ann['label'])
    x_train, x_test = np.array(feats[True]), np.array(feats[False])
    y_train, y_test = np.array(labels[True]), np.array(labels[False])
    mean, std = x_train.mean(0), x_train.std(0) + 1e-9
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std

    design = np.c_[x_train, np.ones(len(x_train))]             # ridge one-vs-all
    weights = np.linalg.solve(design.T @ design + np.eye(design.shape[1]),
                              design.T @ np.eye(12)[y_train])
    linear = (np.c_[x_test, np.ones(len(x_test))] @ weights).argmax(1)
    assert (linear == y_test).mean() >= 0.95

    centroids = np.stack([x_train[y_train == c].mean(0) for c in range(12)])
    nearest = ((x_test[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    assert (nearest == y_test).mean() < 0.95


# ----------------------------------------------------------------------------- files
def test_ensure_demo_data_writes_once(tmp_path, monkeypatch):
    sizes = dict(num_train_per_class=2, num_val_per_class=1, num_test_per_class=1)
    path = ensure_demo_data(tmp_path / 'sub' / 'demo.pkl', **sizes)
    assert path == tmp_path / 'sub' / 'demo.pkl' and path.is_file()
    assert os.listdir(path.parent) == ['demo.pkl']               # no temp file left behind
    content = path.read_bytes()

    def boom(**kwargs):
        raise AssertionError('regenerated an existing file')

    monkeypatch.setattr(synthetic, 'make_demo_annotations', boom)
    assert ensure_demo_data(path, **sizes) == path
    assert path.read_bytes() == content
    with pytest.raises(AssertionError, match='regenerated'):
        ensure_demo_data(path, overwrite=True)
    assert path.read_bytes() == content                          # failed write left it alone
    assert os.listdir(path.parent) == ['demo.pkl']


def test_ensure_demo_data_replaces_stale_demo_files_only(tmp_path, monkeypatch):
    small = dict(num_train_per_class=1, num_val_per_class=1, num_test_per_class=1)
    path = ensure_demo_data(tmp_path / 'demo.pkl', **small)
    meta = pickle.loads(path.read_bytes())['meta']
    assert meta['version'] == synthetic.DEMO_DATA_VERSION and meta['seed'] == 0

    ensure_demo_data(path, seed=4, **small)                       # other arguments: rewritten
    assert pickle.loads(path.read_bytes())['meta']['seed'] == 4

    monkeypatch.setattr(synthetic, 'DEMO_DATA_VERSION', synthetic.DEMO_DATA_VERSION + 1)
    ensure_demo_data(path, seed=4, **small)                       # newer generator: rewritten
    assert pickle.loads(path.read_bytes())['meta']['version'] == synthetic.DEMO_DATA_VERSION

    old = pickle.loads(path.read_bytes())                         # a file from before 'meta'
    del old['meta']
    path.write_bytes(pickle.dumps(old))
    ensure_demo_data(path, seed=4, **small)
    assert 'meta' in pickle.loads(path.read_bytes())

    foreign = tmp_path / 'ntu60_3danno.pkl'
    foreign.write_bytes(pickle.dumps(dict(split={}, annotations=[])))
    with pytest.raises(DataError, match='not a demo data file'):
        ensure_demo_data(foreign)
    assert pickle.loads(foreign.read_bytes()) == dict(split={}, annotations=[])
    garbage = tmp_path / 'garbage.pkl'
    garbage.write_bytes(b'not a pickle')
    with pytest.raises(DataError, match='cannot be read'):
        ensure_demo_data(garbage)
    assert ensure_demo_data(garbage, overwrite=True, **small) == garbage


def test_demo_file_loads_in_pose_dataset(tmp_path):
    path = ensure_demo_data(tmp_path / 'demo.pkl', num_train_per_class=2, num_val_per_class=1,
                            num_test_per_class=1, seed=3)
    for split, size in (('train', 24), ('val', 12), ('test', 12)):
        dataset = PoseDataset(str(path), [], split=split)
        assert len(dataset) == size
        assert dataset.metainfo == dict(classes=DEMO_CLASSES, num_classes=12)
        np.testing.assert_array_equal(np.bincount(dataset.labels), [size // 12] * 12)
    with pytest.raises(DataError, match="available: 'train', 'val', 'test'"):
        PoseDataset(str(path), [], split='xsub_train')


def test_full_default_sizes():
    data = make_demo_annotations()
    assert [len(v) for v in data['split'].values()] == [480, 120, 120]


def test_cli_writes_data_and_label_map(tmp_path, monkeypatch, capsys):
    out, label_map = tmp_path / 'd' / 'demo.pkl', tmp_path / 'demo.txt'
    monkeypatch.setattr(sys, 'argv', [
        'make_demo_data.py', '--out', str(out), '--num-train-per-class', '1',
        '--num-val-per-class', '1', '--num-test-per-class', '1', '--label-map', str(label_map)])
    runpy.run_path(str(REPO / 'tools' / 'data' / 'make_demo_data.py'), run_name='__main__')
    assert str(out) in capsys.readouterr().out
    data = pickle.loads(out.read_bytes())
    assert len(data['annotations']) == 36
    assert label_map.read_text().splitlines() == list(DEMO_CLASSES)


def test_demo_dataset_keeps_a_smaller_current_demo_file(tmp_path, monkeypatch):
    """A config pointing DemoPoseDataset at a small demo file trains on it (not regenerated
    at the default sizes); a file from an older generator is still replaced."""
    from skeletonagent.datasets.demo import DemoPoseDataset
    small = dict(num_train_per_class=2, num_val_per_class=1, num_test_per_class=1)
    path = ensure_demo_data(tmp_path / 'demo.pkl', **small)
    content = path.read_bytes()
    dataset = DemoPoseDataset(str(path), pipeline=[], split='train')
    assert len(dataset) == 2 * 12 and path.read_bytes() == content
    monkeypatch.setattr(synthetic, 'DEMO_DATA_VERSION', synthetic.DEMO_DATA_VERSION + 1)
    DemoPoseDataset(str(path), pipeline=[], split='train')
    assert pickle.loads(path.read_bytes())['meta']['version'] == synthetic.DEMO_DATA_VERSION


def test_demo_dataset_generates_only_at_the_demo_path(tmp_path, monkeypatch):
    """A mistyped ann_file in the demo config is an error naming it and data/README.md;
    nothing is written there. The demo's own path (data/demo/demo_3danno.pkl under the
    working directory) is generated on first use."""
    from skeletonagent.datasets.demo import DemoPoseDataset, is_demo_path
    from skeletonagent.registry import DATASETS
    monkeypatch.chdir(tmp_path)
    small = dict(num_train_per_class=1, num_val_per_class=1, num_test_per_class=1)
    for typo in ('data/demo/demo_3danno.pk', 'data/dmeo/demo_3danno.pkl', 'demo_3danno.pkl'):
        with pytest.raises(DataError) as info:
            DATASETS.build(dict(type='DemoPoseDataset', ann_file=typo, pipeline=[],
                                split='train', demo_cfg=small))
        message = str(info.value)
        assert message.startswith(f'file {tmp_path / typo}: annotation file not found')
        assert synthetic.DEMO_ANN_FILE in message and 'data/README.md' in message
    assert list(tmp_path.iterdir()) == []                 # no folder, no file written
    assert not is_demo_path('data/demo/demo_3danno.pk') and is_demo_path(
        tmp_path / 'x' / 'data' / 'demo' / 'demo_3danno.pkl')

    dataset = DemoPoseDataset(synthetic.DEMO_ANN_FILE, [], split='train', demo_cfg=small)
    assert len(dataset) == 12 and (tmp_path / synthetic.DEMO_ANN_FILE).is_file()
    assert sorted(p.name for p in (tmp_path / 'data' / 'demo').iterdir()) == ['demo_3danno.pkl']
