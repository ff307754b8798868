"""Tests of batching (collate, worker seeding, samplers, DataLoaders) and label maps."""
import pickle
import random
from collections import Counter

import numpy as np
import pytest
import torch
from mmengine.registry import DATA_SAMPLERS, FUNCTIONS, DefaultScope
from mmengine.runner import Runner

from skeletonagent.datasets import (
    DEMO_CLASSES,
    ClassSpecificSampler,
    PoseDataset,
    build_dataloader,
    load_label_map,
    pose_collate,
    worker_init_fn,
)
from skeletonagent.datasets.label_map import LABEL_MAP_DIR

PIPELINE = [
    dict(type='PreNormalize3D', align_spine=False),
    dict(type='GenSkeFeat', feats=['j']),
    dict(type='UniformSampleDecode', clip_len=10, num_clips=1),
    dict(type='FormatGCNInput'),
    dict(type='Collect', keys=['keypoint', 'label'], meta_keys=[]),
    dict(type='ToTensor', keys=['keypoint'])]


@pytest.fixture
def ann_file(tmp_path):
    rng = np.random.default_rng(0)
    anns = [dict(frame_dir=f's{i}', label=i % 3, total_frames=12 + i,
                 keypoint=rng.normal(size=(1 + i % 2, 12 + i, 25, 3)).astype(np.float32))
            for i in range(9)]
    path = tmp_path / 'ann.pkl'
    path.write_bytes(pickle.dumps(dict(split=dict(train=[a['frame_dir'] for a in anns]),
                                       annotations=anns)))
    return str(path)


# ----------------------------------------------------------------------------- collate
def test_pose_collate_stacks_keypoints_and_labels():
    batch = [dict(keypoint=torch.full((2, 2, 10, 25, 3), float(i)), label=i) for i in range(4)]
    out = pose_collate(batch)
    assert tuple(out['keypoint'].shape) == (4, 2, 2, 10, 25, 3)
    assert out['label'].dtype == torch.long and out['label'].tolist() == [0, 1, 2, 3]
    assert out['keypoint'][3].eq(3).all()
    assert FUNCTIONS.get('pose_collate') is pose_collate


def test_pose_collate_other_keys_and_errors():
    batch = [dict(keypoint=torch.zeros(1, 2, 4, 25, 3), label=np.int64(2), idx=i,
                  frame_dir=f'v{i}') for i in range(2)]
    out = pose_collate(batch)
    assert out['idx'].tolist() == [0, 1] and out['frame_dir'] == ['v0', 'v1']
    assert out['label'].tolist() == [2, 2]
    onehot = [dict(keypoint=torch.zeros(1, 1, 2, 3, 3), label=torch.tensor([0., 1.]))] * 3
    assert tuple(pose_collate(onehot)['label'].shape) == (3, 2)
    with pytest.raises(ValueError, match='sample 1 has'):
        pose_collate([dict(keypoint=torch.zeros(1, 2, 4, 25, 3), label=0),
                      dict(keypoint=torch.zeros(1, 2, 5, 25, 3), label=0)])
    with pytest.raises(ValueError, match='empty'):
        pose_collate([])


# ----------------------------------------------------------------------------- workers
def test_worker_init_fn_seeds_numpy_and_random_per_worker():
    worker_init_fn(1, num_workers=4, rank=2, seed=10)            # seed 4*2 + 1 + 10 = 19
    drawn = (np.random.rand(), random.random())
    np.random.seed(19)
    random.seed(19)
    assert drawn == (np.random.rand(), random.random())
    worker_init_fn(0, num_workers=4, rank=2, seed=10)
    assert np.random.rand() != drawn[0]
    assert FUNCTIONS.get('pose_worker_init_fn') is worker_init_fn


# ----------------------------------------------------------------------------- samplers
class _Labels:
    def __init__(self, labels, class_prob=None):
        self.labels = np.asarray(labels)
        self.class_prob = class_prob

    def __len__(self):
        return len(self.labels)


def test_class_specific_sampler_multiplies_classes():
    labels = [0] * 10 + [1] * 10 + [2] * 10
    sampler = ClassSpecificSampler(_Labels(labels, {0: 2.0, 1: 0.5}), seed=3)
    indices = list(sampler)
    assert len(indices) == len(sampler) == 20 + 5 + 10
    counts = Counter(labels[i] for i in indices)
    assert counts == {0: 20, 1: 5, 2: 10}
    assert Counter(i for i in indices if labels[i] == 0) == dict.fromkeys(range(10), 2)
    assert list(sampler) == indices                               # same epoch, same order
    sampler.set_epoch(1)
    assert list(sampler) != indices and len(list(sampler)) == 35
    assert DATA_SAMPLERS.get('ClassSpecificSampler') is ClassSpecificSampler


def test_class_specific_sampler_list_probs_and_no_shuffle():
    sampler = ClassSpecificSampler(_Labels([0, 1, 1]), class_prob=[1.0, 2.0], shuffle=False,
                                   seed=0)
    assert sorted(sampler) == [0, 1, 1, 2, 2]


# ----------------------------------------------------------------------------- loaders
def test_build_dataloader_batches(ann_file):
    dataset = PoseDataset(ann_file, PIPELINE, split='train')
    loader = build_dataloader(dataset, videos_per_gpu=4, workers_per_gpu=0, shuffle=False,
                              seed=0)
    batches = list(loader)
    assert [len(b['label']) for b in batches] == [4, 4, 1]
    assert tuple(batches[0]['keypoint'].shape) == (4, 1, 2, 10, 25, 3)
    assert batches[0]['label'].tolist() == [0, 1, 2, 0]


def test_build_dataloader_uses_class_prob(ann_file):
    dataset = PoseDataset(ann_file, PIPELINE, split='train', class_prob=[2, 1, 1])
    loader = build_dataloader(dataset, videos_per_gpu=3, workers_per_gpu=0, seed=1)
    assert isinstance(loader.sampler, ClassSpecificSampler)
    labels = torch.cat([b['label'] for b in loader]).tolist()
    assert Counter(labels) == {0: 6, 1: 3, 2: 3}


def test_mmengine_runner_builds_the_dataloader(ann_file):
    with DefaultScope.overwrite_default_scope('skeletonagent'):
        loader = Runner.build_dataloader(dict(
            batch_size=2, num_workers=0,
            dataset=dict(type='PoseDataset', ann_file=ann_file, pipeline=PIPELINE, split='train'),
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='pose_collate')), seed=0)
    batch = next(iter(loader))
    assert tuple(batch['keypoint'].shape) == (2, 1, 2, 10, 25, 3)
    assert batch['label'].dtype == torch.long
    assert loader.dataset.metainfo['num_classes'] == 3


# ----------------------------------------------------------------------------- label maps
@pytest.mark.parametrize('name, count, first, last', [
    ('ntu60', 60, 'drink water', 'walking apart from each other'),
    ('ntu120', 120, 'drink water', 'finger-guessing game (playing rock-paper-scissors)'),
    ('demo', 12, 'raise left hand', 'bow'),
])
def test_label_map_counts(name, count, first, last):
    names = load_label_map(name)
    assert len(names) == count == len(set(names))
    assert names[0] == first and names[-1] == last
    assert load_label_map(name, num_classes=count) == names


def test_ntu_label_maps_agree_with_official_order():
    ntu60, ntu120 = load_label_map('ntu60'), load_label_map('ntu120')
    assert ntu120[:60] == ntu60
    assert ntu60[22] == 'hand waving' and ntu60[34] == 'nod head/bow'      # A23, A35
    assert ntu60[58] == 'walking towards each other'                        # A59
    assert ntu120[79] == 'squat down' and ntu120[60] == 'put on headphone'  # A80, A61
    assert load_label_map('nturgbd_120') == ntu120                          # official name


def test_demo_label_map_matches_demo_classes():
    assert tuple(load_label_map('demo')) == DEMO_CLASSES
    text = (LABEL_MAP_DIR / 'demo.txt').read_text(encoding='utf-8')
    assert text == '\n'.join(DEMO_CLASSES) + '\n'


def test_label_map_errors_and_paths(tmp_path):
    with pytest.raises(ValueError) as info:
        load_label_map('ntu60', num_classes=120)
    assert 'ntu60.txt' in str(info.value) and '60' in str(info.value) and '120' in str(info.value)
    with pytest.raises(FileNotFoundError, match='ntu120'):
        load_label_map('no_such_map')
    path = tmp_path / 'mine.txt'
    path.write_text('a\n\n  b  \nc\n')
    assert load_label_map(path) == ['a', 'b', 'c']
    assert load_label_map(str(path), num_classes=3) == ['a', 'b', 'c']
