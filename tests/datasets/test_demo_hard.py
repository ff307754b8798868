"""The hard variant of the demo data (``configs/demo/hard_j.py``): its classes differ in a
side or in a few joints, it is generated at its own path, and the standard variant is left
as it was."""
from __future__ import annotations

import pickle
import runpy
import sys

import numpy as np
import pytest
from conftest import ROOT

from skeletonagent.datasets import DataError
from skeletonagent.datasets.label_map import load_label_map
from skeletonagent.datasets.synthetic import (
    DEMO_CLASSES,
    DEMO_HARD_ANN_FILE,
    DEMO_HARD_CLASSES,
    demo_classes,
    ensure_demo_data,
    make_demo_annotations,
)
from skeletonagent.skeleton import get_layout

LAYOUT = get_layout('nturgb+d')


@pytest.fixture(scope='module')
def hard():
    return make_demo_annotations(num_train_per_class=12, num_val_per_class=1,
                                 num_test_per_class=1, seed=0, variant='hard')


def _actor(data, name, split='train'):
    label = DEMO_HARD_CLASSES.index(name)
    wanted = set(data['split'][split])
    return [a['keypoint'][0] for a in data['annotations']
            if a['label'] == label and a['frame_dir'] in wanted]


def _peak(clip, joint, relative_to, axis):
    """The joint's largest offset from ``relative_to`` along ``axis`` (metres)."""
    offset = clip[:, LAYOUT.index(joint), axis] - clip[:, LAYOUT.index(relative_to), axis]
    return float(np.abs(offset - offset[0]).max())


def test_classes_pairs_and_names(hard):
    assert demo_classes('hard') == DEMO_HARD_CLASSES and demo_classes() == DEMO_CLASSES
    assert len(DEMO_HARD_CLASSES) == 12 == len(set(DEMO_HARD_CLASSES))
    assert load_label_map('demo_hard') == list(DEMO_HARD_CLASSES)   # the package's label map
    assert hard['classes'] == list(DEMO_HARD_CLASSES) and hard['meta']['variant'] == 'hard'
    assert hard['annotations'][0]['frame_dir'] == 'demo_hard_train_A001_000'
    with pytest.raises(ValueError, match="unknown demo variant 'easy'; choose from standard, hard"):
        make_demo_annotations(variant='easy')


def test_sides_and_few_joints(hard):
    """A left-hand action moves the left wrist, not the right one; a head tilt moves the head
    sideways and leaves the wrists alone; a knee lift holds the knee up where a kick does not
    (the same leg)."""
    for name, moving, still in (('point with left hand', 'left wrist', 'right wrist'),
                                ('touch head with right hand', 'right wrist', 'left wrist')):
        clips = _actor(hard, name)
        assert np.mean([_peak(c, moving, 'spine', 1) for c in clips]) > 0.4
        assert np.mean([_peak(c, still, 'spine', 1) for c in clips]) < 0.1
    left = np.mean([_peak(c, 'head', 'neck', 0) for c in _actor(hard, 'tilt head left')])
    assert left > 0.03
    assert np.mean([_peak(c, 'left wrist', 'spine', 1) for c in _actor(hard, 'tilt head left')]) < 0.05
    knee = LAYOUT.index('left knee')
    hold = [np.mean(c[:, knee, 1] - c[0, knee, 1] > 0.15) for c in _actor(hard, 'lift left knee')]
    kick = [np.mean(c[:, knee, 1] - c[0, knee, 1] > 0.15) for c in _actor(hard, 'kick left leg')]
    assert np.mean(hold) > np.mean(kick) + 0.2


def test_raise_and_point_overlap(hard):
    """The arm's height ranges of 'raise' and 'point' overlap: some samples are ambiguous."""
    def heights(name):
        return [max(c[:, LAYOUT.index('left wrist'), 1] - c[:, LAYOUT.index('left shoulder'), 1])
                for c in _actor(hard, name)]
    raise_, point = heights('raise left hand'), heights('point with left hand')
    assert np.median(raise_) > np.median(point)
    assert min(raise_) < max(point)


def test_standard_variant_unchanged():
    """The standard data keeps its seeds, names and meta (no 'variant' key): files written
    before the variant existed stay current."""
    data = make_demo_annotations(num_train_per_class=1, num_val_per_class=0,
                                 num_test_per_class=0, seed=0)
    assert 'variant' not in data['meta'] and data['classes'] == list(DEMO_CLASSES)
    assert data['annotations'][0]['frame_dir'] == 'demo_train_A001_000'
    hard = make_demo_annotations(num_train_per_class=1, num_val_per_class=0,
                                 num_test_per_class=0, seed=0, variant='hard')
    # the same class name in both variants draws from another seed
    assert not np.array_equal(data['annotations'][0]['keypoint'], hard['annotations'][0]['keypoint'])


def test_files_of_the_two_variants(tmp_path, monkeypatch):
    small = dict(num_train_per_class=1, num_val_per_class=1, num_test_per_class=1)
    path = ensure_demo_data(tmp_path / 'd.pkl', variant='hard', **small)
    content = path.read_bytes()
    assert ensure_demo_data(path, variant='hard', any_size=True).read_bytes() == content
    ensure_demo_data(path, any_size=True)                      # the standard one asked: replaced
    assert pickle.loads(path.read_bytes())['classes'] == list(DEMO_CLASSES)
    with pytest.raises(ValueError, match='unknown demo variant'):
        ensure_demo_data(path, variant='nope')

    from skeletonagent.datasets.demo import DemoPoseDataset, demo_path_variant
    monkeypatch.chdir(tmp_path)
    assert demo_path_variant(DEMO_HARD_ANN_FILE) == 'hard'
    dataset = DemoPoseDataset(DEMO_HARD_ANN_FILE, [], split='val', demo_cfg=small)
    assert dataset.metainfo['classes'] == DEMO_HARD_CLASSES and len(dataset) == 12
    with pytest.raises(DataError, match='demo_hard_3danno.pkl'):
        DemoPoseDataset('data/demo/demo_hrad_3danno.pkl', [], split='val')


def test_cli_variant(tmp_path, monkeypatch, capsys):
    out, label_map = tmp_path / 'h.pkl', tmp_path / 'h.txt'
    monkeypatch.setattr(sys, 'argv', ['make_demo_data.py', '--variant', 'hard', '--out', str(out),
                                      '--num-train-per-class', '1', '--num-val-per-class', '0',
                                      '--num-test-per-class', '0', '--label-map', str(label_map)])
    runpy.run_path(str(ROOT / 'tools' / 'data' / 'make_demo_data.py'), run_name='__main__')
    assert pickle.loads(out.read_bytes())['meta']['variant'] == 'hard'
    assert label_map.read_text().splitlines() == list(DEMO_HARD_CLASSES)
