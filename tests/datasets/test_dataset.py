"""Tests of PoseDataset: loading PYSKL pickles, checking every sample, handing out samples."""
import pickle

import numpy as np
import pytest
import torch

from skeletonagent.datasets import DataError, PoseDataset, validate_annotation
from skeletonagent.registry import DATASETS


def _ann(frame_dir, label=0, num_person=1, num_frames=6, num_joints=25, channels=3, **extra):
    rng = np.random.default_rng(list(frame_dir.encode()))      # same data on every run
    keypoint = rng.normal(size=(num_person, num_frames, num_joints, channels)).astype(np.float32)
    return dict(frame_dir=frame_dir, label=label, total_frames=num_frames, keypoint=keypoint,
                **extra)


def _data():
    anns = [_ann('a0', 0), _ann('a1', 1, num_person=2), _ann('a2', 2, num_frames=9),
            _ann('b0', 1), _ann('b1', 0, num_frames=4)]
    return dict(split=dict(train=['a0', 'a1', 'a2'], val=['b0', 'b1']), annotations=anns)


def _write(tmp_path, data, name='ann.pkl'):
    path = tmp_path / name
    path.write_bytes(pickle.dumps(data))
    return str(path)


def _identity(results):
    return results


# ----------------------------------------------------------------------------- loading
def test_loads_each_split_in_annotation_order(tmp_path):
    path = _write(tmp_path, _data())
    train = PoseDataset(path, [_identity], split='train')
    val = PoseDataset(path, [_identity], split='val')
    everything = PoseDataset(path, [_identity])
    assert len(train) == 3 and len(val) == 2 and len(everything) == 5
    assert train.frame_dirs == ['a0', 'a1', 'a2']
    assert val.frame_dirs == ['b0', 'b1']
    assert train.labels.dtype == np.int64
    np.testing.assert_array_equal(train.labels, [0, 1, 2])
    np.testing.assert_array_equal(val.labels, [1, 0])
    assert train.num_classes == 3 and val.num_classes == 2      # max label + 1
    assert train.metainfo == dict(classes=None, num_classes=3)


def test_bare_list_file_without_split(tmp_path):
    path = _write(tmp_path, [_ann('x', 4), _ann('y', 1)])
    dataset = PoseDataset(path, [], num_classes=10)
    assert dataset.frame_dirs == ['x', 'y'] and dataset.num_classes == 10


def test_relative_ann_file_resolves_against_cwd(tmp_path, monkeypatch):
    _write(tmp_path, _data(), 'rel.pkl')
    monkeypatch.chdir(tmp_path)
    dataset = PoseDataset('rel.pkl', [], split='val')
    assert dataset.ann_file == str(tmp_path / 'rel.pkl')
    assert len(dataset) == 2


def test_classes_from_label_map_and_registry_build(tmp_path):
    anns = [_ann(f's{i}', i) for i in range(12)]
    path = _write(tmp_path, dict(split=dict(all=[f's{i}' for i in range(12)]), annotations=anns))
    dataset = DATASETS.build(dict(type='PoseDataset', ann_file=path, pipeline=[], split='all',
                                  classes='demo'))
    assert isinstance(dataset, PoseDataset)
    assert dataset.num_classes == 12
    assert dataset.metainfo['classes'][0] == 'raise left hand'
    with pytest.raises(ValueError, match='12'):
        PoseDataset(path, [], classes='demo', num_classes=60)


def test_file_level_classes_are_used(tmp_path):
    data = _data()
    data['classes'] = ['sit', 'stand', 'walk']
    dataset = PoseDataset(_write(tmp_path, data), [], split='train')
    assert dataset.metainfo == dict(classes=('sit', 'stand', 'walk'), num_classes=3)


def test_data_prefix_is_joined(tmp_path):
    dataset = PoseDataset(_write(tmp_path, _data()), [], split='val', data_prefix='/videos')
    assert dataset.frame_dirs == ['/videos/b0', '/videos/b1']


def test_lazy_init_and_idempotent_full_init(tmp_path):
    path = _write(tmp_path, _data())
    dataset = PoseDataset(path, [], split='train', lazy_init=True)
    assert dataset.video_infos == [] and 'not loaded' in repr(dataset)
    dataset.full_init()
    buffer = dataset.data_bytes
    dataset.full_init()
    assert dataset.data_bytes is buffer and len(dataset) == 3
    unserialized = PoseDataset(path, [], split='train', lazy_init=True, serialize_data=False)
    unserialized.full_init()
    infos = unserialized.video_infos
    unserialized.full_init()
    assert unserialized.video_infos is infos and len(unserialized) == 3


def test_unsupported_arguments(tmp_path):
    path = _write(tmp_path, _data())
    # memcached=True (Kinetics kpfiles, tests/engine/test_memcached.py) connects only on first use
    lazy = PoseDataset(path, [], memcached=True, mc_cfg=('localhost', 22077))
    assert lazy.video_infos[0]['key'] == 'a0' and lazy.mc_cfg == ('localhost', 22077)
    with pytest.raises(TypeError, match='bogus'):
        PoseDataset(path, [], bogus=1)
    with pytest.raises(ValueError, match='box_thr'):
        PoseDataset(path, [], box_thr=0.55)


def test_valid_ratio_filters_and_sets_anno_inds(tmp_path):
    anns = [_ann('k0', 0, num_frames=10, valid={0.5: 9, 0.7: 2}, box_score=np.linspace(0, 1, 5)),
            _ann('k1', 1, num_frames=10, valid={0.5: 3, 0.7: 1}, box_score=np.ones(5))]
    path = _write(tmp_path, anns)
    dataset = PoseDataset(path, [], valid_ratio=0.5, box_thr=0.5)
    assert dataset.frame_dirs == ['k0']
    np.testing.assert_array_equal(dataset.video_infos[0]['anno_inds'],
                                  [False, False, True, True, True])
    assert 'valid' not in dataset.video_infos[0] and 'box_score' not in dataset.video_infos[0]


@pytest.mark.parametrize('valid_ratio', [0.0, None])
def test_zero_valid_ratio_keeps_every_sample_and_every_box(tmp_path, valid_ratio):
    """Every official Kinetics config: valid_ratio=0.0 with box_thr=0.5 keeps low-score
    person boxes (PYSKL and the official code), in training as in testing."""
    # 4 person boxes, two with scores under the threshold; k1 has no valid frame at all
    scores = np.array([0.9, 0.2, 0.95, 0.1], dtype=np.float16)
    ann = _ann('k0', 0, num_person=4, num_frames=2, num_joints=17, channels=2,
               valid={0.5: 1}, box_score=scores)
    path = _write(tmp_path, [ann, _ann('k1', 1, num_frames=2, num_joints=17, channels=2,
                                       valid={0.5: 0}, box_score=np.zeros(1))])
    pipeline = [dict(type='PoseDecode')]
    for test_mode in (False, True):
        dataset = PoseDataset(path, pipeline, valid_ratio=valid_ratio, box_thr=0.5,
                              test_mode=test_mode)
        assert dataset.frame_dirs == ['k0', 'k1']
        info = dataset.video_infos[0]
        assert 'anno_inds' not in info and 'box_score' not in info and 'valid' not in info
        assert dataset[0]['keypoint'].shape == (4, 2, 17, 2)       # every box reaches the model
    # a positive valid_ratio filters samples and boxes
    dataset = PoseDataset(path, pipeline, valid_ratio=0.4, box_thr=0.5)
    assert dataset.frame_dirs == ['k0']
    np.testing.assert_array_equal(dataset.video_infos[0]['anno_inds'], scores >= 0.5)


# ----------------------------------------------------------------------------- samples
def test_serialized_annotations_are_one_buffer_and_each_access_a_fresh_copy(tmp_path):
    """serialize_data (the default): the annotations live in one numpy byte buffer, not in
    per-sample dicts; a transform that writes into the array it was handed cannot change
    what the next access (or another worker) gets."""
    data = _data()
    dataset = PoseDataset(_write(tmp_path, data), [], split='train')
    assert dataset.data_list == [] and dataset.data_bytes.dtype == np.uint8
    assert len(dataset.data_address) == 3 == len(dataset)
    first = dataset.get_data_info(1)
    np.testing.assert_array_equal(first['keypoint'], data['annotations'][1]['keypoint'])
    first['keypoint'][:] = 0                                    # an in-place transform
    again = dataset.get_data_info(-2)                          # the same sample
    assert again['keypoint'] is not first['keypoint']
    np.testing.assert_array_equal(again['keypoint'], data['annotations'][1]['keypoint'])
    assert set(dataset.video_infos[1]) == {'frame_dir', 'label', 'total_frames', 'keypoint'}
    assert [info['frame_dir'] for info in dataset.video_infos] == ['a0', 'a1', 'a2']
    with pytest.raises(IndexError):
        dataset.get_data_info(3)
    with pytest.raises(NotImplementedError, match='split='):
        dataset.get_subset([0])


def test_getitem_passes_a_shallow_copy(tmp_path):
    dataset = PoseDataset(_write(tmp_path, _data()), [], split='train', test_mode=True,
                          start_index=0, serialize_data=False)
    stored = dataset.video_infos[1]
    stored_keypoint = stored['keypoint']
    before = stored_keypoint.copy()
    seen = {}

    def spy(results):
        seen['results'] = results
        results['keypoint'] = results['keypoint'] * 2        # a transform building a new array
        return dict(keypoint=torch.from_numpy(results['keypoint'][None]), label=results['label'])

    dataset.pipeline.transforms.append(spy)
    out = dataset[1]
    handed = seen['results']
    assert handed is not stored
    assert handed['test_mode'] is True and handed['modality'] == 'Pose'
    assert handed['start_index'] == 0
    assert stored['keypoint'] is stored_keypoint                # entry not replaced
    np.testing.assert_array_equal(stored_keypoint, before)      # array not changed
    assert set(stored) == {'frame_dir', 'label', 'total_frames', 'keypoint'}
    assert out['label'] == 1 and out['keypoint'].shape == (1, 2, 6, 25, 3)


def test_the_array_handed_over_is_the_stored_one(tmp_path):
    dataset = PoseDataset(_write(tmp_path, _data()), [], split='val', serialize_data=False)
    seen = {}
    dataset.pipeline.transforms.append(lambda results: seen.setdefault('kp', results['keypoint']))
    dataset[0]
    assert seen['kp'] is dataset.video_infos[0]['keypoint']


def test_official_pipeline_output(tmp_path):
    pipeline = [
        dict(type='PreNormalize3D', align_spine=False),
        dict(type='GenSkeFeat', feats=['j']),
        dict(type='UniformSampleDecode', clip_len=8, num_clips=2),
        dict(type='FormatGCNInput'),
        dict(type='Collect', keys=['keypoint', 'label'], meta_keys=[]),
        dict(type='ToTensor', keys=['keypoint'])]
    dataset = PoseDataset(_write(tmp_path, _data()), pipeline, split='train', test_mode=True)
    sample = dataset[0]
    assert sample['keypoint'].dtype == torch.float32
    assert tuple(sample['keypoint'].shape) == (2, 2, 8, 25, 3)  # nc, M, T, V, C
    assert int(sample['label']) == 0


def test_multi_class_labels_become_one_hot(tmp_path):
    path = _write(tmp_path, [_ann('m0', [0, 2]), _ann('m1', [1])])
    dataset = PoseDataset(path, [], multi_class=True, num_classes=4)
    assert dataset.get_data_info(0)['label'].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert list(dataset.labels[0]) == [0, 2]
    with pytest.raises(DataError, match="field 'label'"):
        PoseDataset(_write(tmp_path, [_ann('m2', [0, 4])], 'bad.pkl'), [], multi_class=True,
                    num_classes=4)


# ----------------------------------------------------------------------------- bad files
def _set(path, value):
    """A mutation setting data[path...] = value (or deleting it when value is _DELETE)."""
    def mutate(data):
        target = data
        for key in path[:-1]:
            target = target[key]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value(target[path[-1]]) if callable(value) else value
    return mutate


_DELETE = object()


def _nan(kp):
    kp = kp.copy()
    kp[0, 2, 7, 1] = np.nan
    return kp


def _inf(kp):
    kp = kp.copy()
    kp[0, 0, 0, 0] = np.inf
    return kp


# (mutation, split asked for, num_classes, field, frame_dir named, words in the message)
BAD_SAMPLES = {
    'keypoint not array': (_set(('annotations', 1, 'keypoint'), lambda kp: kp.tolist()),
                           'keypoint', 'a1', 'numpy array'),
    'keypoint 3-d': (_set(('annotations', 0, 'keypoint'), lambda kp: kp[0]),
                     'keypoint', 'a0', '4-d'),
    'keypoint C=4': (_set(('annotations', 2, 'keypoint'), lambda kp: np.zeros((1, 9, 25, 4))),
                     'keypoint', 'a2', 'C must be 2 or 3'),
    'total_frames mismatch': (_set(('annotations', 2, 'total_frames'), 8),
                              'total_frames', 'a2', 'T=9'),
    'nan': (_set(('annotations', 0, 'keypoint'), _nan), 'keypoint', 'a0', 'non-finite'),
    'inf': (_set(('annotations', 1, 'keypoint'), _inf), 'keypoint', 'a1', 'non-finite'),
    'score shape': (_set(('annotations', 0, 'keypoint_score'), np.ones((1, 6, 24))),
                    'keypoint_score', 'a0', 'does not match'),
    'label str': (_set(('annotations', 1, 'label'), '1'), 'label', 'a1', 'must be an int'),
    'label float': (_set(('annotations', 1, 'label'), 1.0), 'label', 'a1', 'must be an int'),
    'label negative': (_set(('annotations', 2, 'label'), -1), 'label', 'a2', '>= 0'),
    'label too large': (_set(('annotations', 2, 'label'), 3), 'label', 'a2', 'num_classes=3'),
    'label missing': (_set(('annotations', 0, 'label'), _DELETE), 'label', 'a0', 'missing'),
    'keypoint missing': (_set(('annotations', 1, 'keypoint'), _DELETE), 'keypoint', 'a1',
                         'missing'),
    'total_frames missing': (_set(('annotations', 1, 'total_frames'), _DELETE), 'total_frames',
                             'a1', 'missing'),
    'img_shape bad': (_set(('annotations', 0, 'img_shape'), (1080,)), 'img_shape', 'a0',
                      'height, width'),
}


@pytest.mark.parametrize('case', sorted(BAD_SAMPLES))
def test_bad_sample_names_file_sample_and_field(tmp_path, case):
    mutate, field, frame_dir, words = BAD_SAMPLES[case]
    data = _data()
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(DataError) as info:
        PoseDataset(path, [], split='train', num_classes=3)
    message = str(info.value)
    assert path in message and repr(frame_dir) in message and f"field '{field}'" in message
    assert words in message
    assert info.value.field == field and info.value.frame_dir == frame_dir
    assert isinstance(info.value, ValueError)


def test_sample_without_frame_dir_is_named_by_position(tmp_path):
    data = [_ann('ok', 0), _ann('x', 0)]
    del data[1]['frame_dir']
    with pytest.raises(DataError, match=r"sample '#1', field 'frame_dir'"):
        PoseDataset(_write(tmp_path, data), [])


def test_nan_location_is_reported(tmp_path):
    data = _data()
    _set(('annotations', 0, 'keypoint'), _nan)(data)
    with pytest.raises(DataError, match='person 0, frame 2, joint 7, channel 1'):
        PoseDataset(_write(tmp_path, data), [], split='train')


def test_samples_outside_the_split_are_not_checked(tmp_path):
    data = _data()
    _set(('annotations', 3, 'keypoint'), _nan)(data)             # b0, in 'val' only
    assert len(PoseDataset(_write(tmp_path, data), [], split='train')) == 3


def _truncated(tmp_path):
    blob = pickle.dumps(_data())
    path = tmp_path / 'ann.pkl'
    path.write_bytes(blob[:len(blob) // 2])
    return str(path)


def _text(tmp_path):
    path = tmp_path / 'ann.pkl'
    path.write_text('frame_dir,label\nS001,0\n')
    return str(path)


BAD_FILES = {
    'missing file': (lambda tmp: str(tmp / 'nope.pkl'), 'train', None, 'not found'),
    'not a pickle': (_text, 'train', None, 'cannot be unpickled'),
    'truncated': (_truncated, 'train', None, 'cannot be unpickled'),
    'top level int': (lambda tmp: _write(tmp, 42), 'train', None, 'top level must be'),
    'list with split': (lambda tmp: _write(tmp, [_ann('a', 0)]), 'train', 'split', 'bare list'),
    'no split key': (lambda tmp: _write(tmp, dict(annotations=_data()['annotations'])), 'train',
                     'split', 'no split dict'),
    'no annotations key': (lambda tmp: _write(tmp, dict(split=_data()['split'])), 'train',
                           'annotations', 'no annotations'),
    'unknown split': (lambda tmp: _write(tmp, _data()), 'xsub_train', 'split',
                      "available: 'train', 'val'"),
    'empty split': (lambda tmp: _write(tmp, dict(split=dict(train=[]), annotations=[])), 'train',
                    'split', 'is empty'),
    'empty file': (lambda tmp: _write(tmp, []), None, 'annotations', 'no annotations'),
}


@pytest.mark.parametrize('case', sorted(BAD_FILES))
def test_bad_file_names_file_and_field(tmp_path, case):
    make, split, field, words = BAD_FILES[case]
    path = make(tmp_path)
    with pytest.raises(DataError) as info:
        PoseDataset(path, [], split=split)
    message = str(info.value)
    assert path in message and words in message
    assert info.value.field == field
    if field is not None:
        assert f"field '{field}'" in message


def test_split_naming_an_absent_sample(tmp_path):
    data = _data()
    data['split']['val'].append('ghost')
    path = _write(tmp_path, data)
    with pytest.raises(DataError) as info:
        PoseDataset(path, [], split='val')
    message = str(info.value)
    assert path in message and "'ghost'" in message and "field 'split'" in message
    assert info.value.frame_dir == 'ghost'


def test_data_error_survives_pickling_and_one_argument_construction():
    error = DataError('bad', file='f.pkl', frame_dir='S1', field='label')
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error) and again.field == 'label'
    assert str(DataError('just a message')) == 'just a message'


def test_validation_finds_the_one_bad_sample_and_sums_that_overflow_pass():
    """The finiteness check sums each sample in float64 and looks closer only when the sum
    is not finite: a NaN among many good samples is named with its position; finite values
    whose sum overflows pass. (Its speed on 20k samples: bench/validation.py.)"""
    keypoint = np.random.default_rng(0).normal(size=(2, 100, 25, 3)).astype(np.float32)
    anns = [dict(frame_dir=f'S{i:06d}', label=i % 60, total_frames=100, keypoint=keypoint)
            for i in range(2000)]
    bad = keypoint.copy()
    bad[1, 40, 7, 2] = np.nan
    anns[1234] = dict(anns[1234], keypoint=bad)
    for i, ann in enumerate(anns[:1234]):
        validate_annotation(ann, file='big.pkl', index=i, num_classes=60)
    with pytest.raises(DataError, match='1 non-finite coordinate.*person 1, frame 40, joint 7, '
                                        'channel 2') as info:
        validate_annotation(anns[1234], file='big.pkl', index=1234, num_classes=60)
    assert info.value.frame_dir == 'S001234'
    huge = np.full((1, 2, 25, 3), np.finfo(np.float64).max / 2)
    with np.errstate(over='ignore'):
        assert not np.isfinite(huge.sum())
        validate_annotation(dict(frame_dir='huge', label=0, total_frames=2, keypoint=huge),
                            file='big.pkl', index=0, num_classes=60)


# ----------------------------------------------------------------------------- joints
_NTU_PIPELINE = [dict(type='PreNormalize3D', align_spine=False),
                 dict(type='GenSkeFeat', feats=['j']),             # layout nturgb+d (default)
                 dict(type='UniformSampleDecode', clip_len=4)]


def test_joint_count_is_checked_at_load_against_the_pipeline(tmp_path):
    """A 17-joint file under an NTU (25-joint) pipeline fails when the dataset is built,
    naming file, sample and field, not later inside a DataLoader worker."""
    anns = [_ann('n0', 0), _ann('c0', 1, num_joints=17), _ann('n1', 0)]
    path = _write(tmp_path, dict(split=dict(train=['n0', 'c0', 'n1']), annotations=anns))
    with pytest.raises(DataError) as info:
        PoseDataset(path, _NTU_PIPELINE, split='train')
    message = str(info.value)
    assert message.startswith(f"file {path}, sample 'c0', field 'keypoint': has 17 joints")
    assert "GenSkeFeat(dataset='nturgb+d') in the pipeline needs 25" in message
    # built through the registry as the engine does, the same error
    with pytest.raises(DataError, match="sample 'c0'.*needs 25"):
        DATASETS.build(dict(type='PoseDataset', ann_file=path, pipeline=_NTU_PIPELINE))
    # a pipeline that fixes no layout leaves V alone; an explicit layout checks it
    assert len(PoseDataset(path, [dict(type='UniformSampleDecode', clip_len=4)])) == 3
    with pytest.raises(DataError, match="sample 'n0'.*has 25 joints.*layout 'coco' needs 17"):
        PoseDataset(path, [], layout='coco')


def test_layout_argument_must_agree_with_the_pipeline(tmp_path):
    path = _write(tmp_path, [_ann('c0', 0, num_joints=17), _ann('c1', 1, num_joints=17)])
    assert PoseDataset(path, [], layout='coco').joints == (17, "layout 'coco'")
    with pytest.raises(ValueError, match="layout 'coco' has 17 joints but "
                                         r"GenSkeFeat\(dataset='nturgb\+d'\) in the pipeline"):
        PoseDataset(path, _NTU_PIPELINE, layout='coco')
    with pytest.raises(KeyError, match='kinect'):
        PoseDataset(path, [], layout='kinect')


def test_kinetics_pipeline_expects_the_17_coco_joints_it_derives_from(tmp_path):
    """Kinetics_Transform turns COCO's 17 joints into coco_new's 20: the file holds 17."""
    pipeline = [dict(type='PoseDecode'), dict(type='Kinetics_Transform'),
                dict(type='GenSkeFeat', dataset='coco_new', feats=['j'])]
    kinetics = [_ann('k0', 0, num_joints=17, channels=2), _ann('k1', 1, num_joints=17,
                                                               channels=2)]
    dataset = PoseDataset(_write(tmp_path, kinetics, 'k.pkl'), pipeline)
    assert dataset.joints == (17, "Kinetics_Transform(dataset='coco_new') in the pipeline")
    assert dataset[0]['keypoint'].shape[2] == 20
    with pytest.raises(DataError, match="has 20 joints.*Kinetics_Transform"):
        PoseDataset(_write(tmp_path, [_ann('k0', 0, num_joints=20, channels=2)], 'k20.pkl'),
                    pipeline)


def test_annotation_file_errors_are_data_errors_and_user_errors(tmp_path):
    """The readers every module shares (datasets/annotations.py): a missing, a directory, a
    truncated file each raise one DataError naming the file (one line from the tools)."""
    from skeletonagent.datasets.annotations import load_annotation_file
    from skeletonagent.errors import SkeletonAgentError
    path = _write(tmp_path, [_ann('s0', 0)], 'good.pkl')
    assert load_annotation_file(path)[0]['frame_dir'] == 's0'
    (tmp_path / 'cut.pkl').write_bytes(open(path, 'rb').read()[:20])
    for bad, words in ((tmp_path / 'none.pkl', 'not found'), (tmp_path, 'is a directory'),
                       (tmp_path / 'cut.pkl', 'cannot be unpickled')):
        with pytest.raises(DataError, match=words) as info:
            load_annotation_file(bad)
        assert info.value.file == str(bad)
        assert isinstance(info.value, SkeletonAgentError) and isinstance(info.value, ValueError)


def test_release_freed_heap_keeps_the_serialized_samples(tmp_path):
    """malloc_trim after serializing (utils/malloc.py) hands pages back, never data."""
    from skeletonagent.utils.malloc import release_freed_heap
    dataset = PoseDataset(_write(tmp_path, [_ann(f's{i}', i % 3) for i in range(50)]), [])
    release_freed_heap()
    assert [info['frame_dir'] for info in dataset.video_infos] == [f's{i}' for i in range(50)]
