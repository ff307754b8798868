"""Behaviour tests of the pipeline transforms (shapes, values, seeds, errors)."""
import random

import numpy as np
import pytest
import torch

from skeletonagent.datasets.pipelines import (
    Collect,
    Compose,
    DecompressPose,
    Flip,
    FormatGCNInput,
    GenSkeFeat,
    JointToBone,
    JointToKB,
    Kinetics_Transform,
    MergeSkeFeat,
    Part_Drop,
    PipelineError,
    PoseDecode,
    PreNormalize2D,
    PreNormalize3D,
    RandomRot,
    Rename,
    Spatial_Flip,
    ToMotion,
    ToTensor,
    UniformSample,
    UniformSampleDecode,
    UniformSampleFrames,
)
from skeletonagent.registry import TRANSFORMS
from skeletonagent.skeleton import get_layout

NTU = get_layout('nturgb+d')

NTU_TRAIN = [
    dict(type='PreNormalize3D', align_spine=False),
    dict(type='RandomRot', theta=0.2),
    dict(type='GenSkeFeat', feats=['j']),
    dict(type='UniformSampleDecode', clip_len=100),
    dict(type='FormatGCNInput'),
    dict(type='Collect', keys=['keypoint', 'label'], meta_keys=[]),
    dict(type='ToTensor', keys=['keypoint']),
]


def ntu_sample(T=40, M=2, seed=0, frame_dir='S001C001P001R001A001'):
    rng = np.random.default_rng(seed)
    keypoint = rng.normal(size=(M, T, 25, 3)).astype(np.float32)
    return dict(keypoint=keypoint, total_frames=T, label=5, frame_dir=frame_dir, start_index=0)


def frozen(array):
    """A read-only copy: any in-place write by a transform raises."""
    array = array.copy()
    array.setflags(write=False)
    return array


# ----------------------------------------------------------------------------- registry

@pytest.mark.parametrize('name', [
    'PreNormalize3D', 'PreNormalize2D', 'RandomRot', 'Spatial_Flip', 'Part_Drop', 'Flip',
    'Kinetics_Transform', 'JointToBone', 'JointToKB', 'ToMotion', 'MergeSkeFeat', 'GenSkeFeat',
    'UniformSampleFrames', 'UniformSampleDecode', 'PoseDecode', 'DecompressPose',
    'FormatGCNInput', 'Collect', 'ToTensor', 'Rename', 'UniformSample', 'Compose'])
def test_registered(name):
    assert TRANSFORMS.get(name) is not None


# ----------------------------------------------------------------------------- full chain

def test_ntu_train_chain_output():
    np.random.seed(0)
    out = Compose(NTU_TRAIN)(ntu_sample(T=73))
    assert set(out) == {'keypoint', 'label'}
    assert out['label'] == 5
    assert isinstance(out['keypoint'], torch.Tensor)
    assert out['keypoint'].dtype == torch.float32
    assert out['keypoint'].shape == (1, 2, 100, 25, 3)
    assert out['keypoint'].is_contiguous()


def test_ntu_test_chain_is_deterministic_and_has_10_clips():
    cfg = [c for c in NTU_TRAIN if c['type'] != 'RandomRot']
    cfg = [dict(c, num_clips=10) if c['type'] == 'UniformSampleDecode' else c for c in cfg]
    pipeline = Compose(cfg)
    sample = ntu_sample(T=157)
    outs = []
    for seed in (1, 2):
        np.random.seed(seed)
        outs.append(pipeline(dict(sample, test_mode=True))['keypoint'])
    assert outs[0].shape == (10, 2, 100, 25, 3)
    assert torch.equal(outs[0], outs[1])


def test_chain_never_writes_input_arrays():
    sample = ntu_sample(T=50)
    sample['keypoint'] = frozen(sample['keypoint'])
    cfg = [dict(type='PreNormalize3D'), dict(type='RandomRot', theta=0.2),
           dict(type='Spatial_Flip', p=1.0), dict(type='Part_Drop', p=1.0),
           dict(type='GenSkeFeat', feats=['j', 'b', 'k', 'jm', 'bm', 'km']),
           dict(type='UniformSampleDecode', clip_len=20), dict(type='FormatGCNInput')]
    out = Compose(cfg)(dict(sample))
    assert out['keypoint'].shape == (1, 2, 20, 25, 18)


# ----------------------------------------------------------------------------- Compose

class Boom:
    def __call__(self, results):
        raise ZeroDivisionError('deliberate')


def test_compose_error_names_transform_and_sample():
    pipeline = Compose([dict(type='PreNormalize3D', align_spine=False), Boom()])
    expected = r"Boom failed on sample 'S001C001P001R001A001'"
    with pytest.raises(PipelineError, match=expected) as info:
        pipeline(ntu_sample())
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert isinstance(info.value, ValueError)


def test_compose_error_for_bad_field():
    sample = ntu_sample()
    sample['keypoint'] = sample['keypoint'][0]  # 3-D
    with pytest.raises(PipelineError, match=r"RandomRot failed on sample .*'keypoint'"):
        Compose([dict(type='RandomRot')])(sample)


def test_compose_missing_field_named():
    with pytest.raises(PipelineError, match="missing field 'keypoint'"):
        Compose([dict(type='GenSkeFeat')])(dict(frame_dir='x'))


def test_compose_none_stops_and_callables():
    calls = []
    pipeline = Compose([lambda r: None, lambda r: calls.append(r)])
    assert pipeline({'frame_dir': 'x'}) is None
    assert calls == []
    assert len(pipeline) == 2
    assert Compose([lambda r: dict(r, seen=True)])({})['seen']


def test_compose_rejects_bad_items():
    with pytest.raises(TypeError, match='callable or a dict'):
        Compose([3])
    with pytest.raises(TypeError, match='no "type"'):
        Compose([dict(clip_len=3)])
    with pytest.raises(KeyError):
        Compose([dict(type='NoSuchTransform')])


# ----------------------------------------------------------------------------- PreNormalize3D

def test_prenormalize3d_centres_and_drops_empty_frames():
    s = ntu_sample(T=6, M=2, seed=3)
    kp = s['keypoint']
    kp[0, 4:] = 0          # main person missing in the last 2 frames
    kp[1, :] = 0           # second person absent
    kp[0, 1, 7] = 0        # one missing joint stays 0
    s['keypoint'] = frozen(kp)
    out = PreNormalize3D(align_spine=False)(dict(s))
    res = out['keypoint']
    assert res.shape == (2, 4, 25, 3) and out['total_frames'] == 4
    assert res.dtype == np.float32
    center = kp[0, 0, NTU.index('middle of the spine')]
    np.testing.assert_array_equal(out['body_center'], center)
    np.testing.assert_allclose(res[0, 0, 1], 0, atol=1e-7)
    expected = kp[0, :4] - center
    expected[1, 7] = 0
    np.testing.assert_allclose(res[0], expected, rtol=1e-6)
    assert np.all(res[1] == 0)  # absent person stays 0


def test_prenormalize3d_picks_the_more_present_person():
    s = ntu_sample(T=5, seed=4)
    kp = s['keypoint']
    kp[0, 2:] = 0  # person 0 in 2 frames, person 1 in 5
    out = PreNormalize3D(align_spine=False, align_center=False)(dict(s, keypoint=kp))
    np.testing.assert_array_equal(out['keypoint'][0], kp[1])
    np.testing.assert_array_equal(out['keypoint'][1], kp[0])


def test_prenormalize3d_aligns_spine_and_shoulders():
    s = ntu_sample(T=8, seed=5)
    kp = s['keypoint']
    out = PreNormalize3D()(dict(s))['keypoint']
    first = out[0, 0]
    shoulders = first[NTU.index('right shoulder')] - first[NTU.index('left shoulder')]
    np.testing.assert_allclose(shoulders / np.linalg.norm(shoulders), [1, 0, 0], atol=1e-5)
    # A rotation: pairwise distances within a frame are kept.
    centred = kp - kp[0, 0, 1]
    d_in = np.linalg.norm(centred[0, 3, :, None] - centred[0, 3, None], axis=-1)
    d_out = np.linalg.norm(out[0, 3, :, None] - out[0, 3, None], axis=-1)
    np.testing.assert_allclose(d_out, d_in, rtol=1e-4, atol=1e-5)


def test_prenormalize3d_zero_input_unchanged():
    s = ntu_sample()
    s['keypoint'][:] = 0
    out = PreNormalize3D()(dict(s))
    assert out['keypoint'] is s['keypoint']
    assert 'body_center' not in out


def test_prenormalize3d_errors():
    s = ntu_sample(M=3)
    with pytest.raises(ValueError, match='1 or 2 persons'):
        PreNormalize3D()(s)
    s = ntu_sample()
    with pytest.raises(ValueError, match='total_frames'):
        PreNormalize3D()(dict(s, total_frames=3))
    coco = dict(keypoint=np.ones((1, 4, 17, 3), np.float32))
    with pytest.raises(ValueError, match='zaxis'):
        PreNormalize3D(dataset='coco')(coco)
    out = PreNormalize3D(align_spine=False)(dict(coco))  # last joint is the centre
    np.testing.assert_array_equal(out['keypoint'], 0)


# ----------------------------------------------------------------------------- PreNormalize2D

def test_prenormalize2d_values_and_threshold():
    kp = np.array([[[[960, 540, 0.9], [0, 1080, 0.0], [1920, 0, 0.5]]]], np.float32)
    out = PreNormalize2D()(dict(keypoint=frozen(kp)))['keypoint']
    np.testing.assert_allclose(out[0, 0, 0], [0, 0, 0.9], atol=1e-7)
    np.testing.assert_allclose(out[0, 0, 1], [0, 0, 0.0])  # low score: x = y = 0
    np.testing.assert_allclose(out[0, 0, 2], [1, -1, 0.5])
    out = PreNormalize2D()(dict(keypoint=kp[..., :2].copy(), img_shape=(100, 200)))['keypoint']
    np.testing.assert_allclose(out[0, 0, 0], [8.6, 9.8], rtol=1e-6)


# ----------------------------------------------------------------------------- RandomRot

def test_random_rot_seed_orthogonal_and_shape():
    s = ntu_sample(T=5)
    s['keypoint'] = frozen(s['keypoint'])
    np.random.seed(11)
    a = RandomRot(theta=0.3)(dict(s))['keypoint']
    np.random.seed(11)
    b = RandomRot(theta=0.3)(dict(s))['keypoint']
    np.testing.assert_array_equal(a, b)
    assert a.shape == s['keypoint'].shape and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=-1), np.linalg.norm(s['keypoint'], axis=-1),
                               rtol=1e-5)
    # The rotation angles are the seed's draws; PYSKL's matrix Rz(-c) Ry(-b) Rx(-a) is the
    # extrinsic x-y-z rotation by the negated angles.
    from scipy.spatial.transform import Rotation
    np.random.seed(11)
    theta = np.random.uniform(-0.3, 0.3, size=3)
    rot = Rotation.from_euler('xyz', -theta).as_matrix()
    np.testing.assert_allclose(a, np.einsum('ab,mtvb->mtva', rot, s['keypoint']), rtol=1e-5,
                               atol=1e-6)


def test_random_rot_2d_and_zero():
    kp = np.array([[[[1.0, 0.0]]]], np.float32)
    np.random.seed(3)
    out = RandomRot(theta=0.5)(dict(keypoint=kp))['keypoint']
    np.random.seed(3)
    angle = np.random.uniform(-0.5)  # PYSKL's draw: U(-theta, 1)
    np.testing.assert_allclose(out[0, 0, 0], [np.cos(angle), np.sin(angle)], rtol=1e-6)
    zeros = np.zeros((1, 2, 3, 3), np.float32)
    state = np.random.get_state()[1].copy()
    assert RandomRot()(dict(keypoint=zeros))['keypoint'] is zeros
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # no draw


# ----------------------------------------------------------------------------- flips, drops

def test_spatial_flip_swaps_left_right():
    s = ntu_sample(T=3)
    random.seed(0)
    out = Spatial_Flip(p=1.0)(dict(s))['keypoint']
    for left, right in zip(NTU.left, NTU.right):
        np.testing.assert_array_equal(out[:, :, left], s['keypoint'][:, :, right])
        np.testing.assert_array_equal(out[:, :, right], s['keypoint'][:, :, left])
    np.testing.assert_array_equal(out[:, :, 0], s['keypoint'][:, :, 0])
    assert Spatial_Flip(p=0.0)(dict(s))['keypoint'] is s['keypoint']


def test_part_drop_zeroes_one_limb():
    s = ntu_sample(T=3)
    s['keypoint'] = frozen(s['keypoint'])
    random.seed(5)
    out = Part_Drop(p=1.0)(dict(s))['keypoint']
    random.seed(5)
    random.random()
    part = Part_Drop.PARTS[random.randint(0, 3)]
    dropped = NTU.body_parts[part]
    assert np.all(out[:, :, dropped] == 0)
    kept = [v for v in range(25) if v not in dropped]
    np.testing.assert_array_equal(out[:, :, kept], s['keypoint'][:, :, kept])
    with pytest.raises(ValueError, match='body parts'):
        Part_Drop(dataset='handmp')


def test_flip_mirrors_x_and_swaps_sides():
    kp = np.zeros((1, 2, 17, 2), np.float32)
    kp[0, :, 5] = [10, 20]   # left shoulder
    kp[0, :, 6] = [30, 40]   # right shoulder
    score = np.arange(34, dtype=np.float32).reshape(1, 2, 17)
    results = dict(keypoint=frozen(kp), keypoint_score=frozen(score), img_shape=(100, 200),
                   modality='Pose')
    out = Flip(flip_ratio=1.0, dataset='coco')(results)
    assert out['flip'] and out['flip_direction'] == 'horizontal'
    np.testing.assert_array_equal(out['keypoint'][0, :, 6], [[190, 20]] * 2)  # left → right slot
    np.testing.assert_array_equal(out['keypoint'][0, :, 5], [[170, 40]] * 2)
    assert np.all(out['keypoint'][0, :, 0] == 0)  # zero x stays 0
    np.testing.assert_array_equal(out['keypoint_score'][0, :, 5], score[0, :, 6])
    # Explicit left_kp/right_kp as in the official Kinetics configs.
    out2 = Flip(flip_ratio=1.0, left_kp=[1, 3, 5, 7, 9, 11, 13, 15],
                right_kp=[2, 4, 6, 8, 10, 12, 14, 16])(dict(keypoint=kp, img_shape=(100, 200)))
    np.testing.assert_array_equal(out2['keypoint'], out['keypoint'])


def test_flip_ratio_zero_and_label_map():
    kp = np.ones((1, 1, 17, 2), np.float32)
    out = Flip(flip_ratio=0.0)(dict(keypoint=kp, img_shape=(10, 10), label=1))
    assert not out['flip'] and out['keypoint'] is kp
    out = Flip(flip_ratio=1.0, flip_label_map={1: 2})(dict(keypoint=kp, img_shape=(10, 10),
                                                            label=1))
    assert out['label'] == 2
    with pytest.raises(KeyError, match='img_shape'):
        Flip()(dict(keypoint=kp))


# ----------------------------------------------------------------------------- Kinetics

def test_kinetics_transform_adds_centre_joints():
    rng = np.random.default_rng(0)
    kp = rng.normal(size=(2, 3, 17, 2)).astype(np.float32)
    score = rng.uniform(size=(2, 3, 17)).astype(np.float32)
    out = Kinetics_Transform()(dict(keypoint=frozen(kp), keypoint_score=frozen(score)))
    res = out['keypoint']
    assert 'keypoint_score' not in out
    assert res.shape == (2, 3, 20, 3) and res.dtype == np.float32
    full = np.concatenate([kp, score[..., None]], -1)
    np.testing.assert_array_equal(res[:, :, :17], full)
    hip = (full[:, :, 11] + full[:, :, 12]) / 2
    neck = (full[:, :, 5] + full[:, :, 6]) / 2
    np.testing.assert_allclose(res[:, :, 17], hip, rtol=1e-6)
    np.testing.assert_allclose(res[:, :, 19], neck, rtol=1e-6)
    np.testing.assert_allclose(res[:, :, 18], (hip + neck) / 2, rtol=1e-6)
    with pytest.raises(ValueError, match='20'):
        Kinetics_Transform()(dict(keypoint=np.zeros((1, 2, 20, 3), np.float32)))


# ----------------------------------------------------------------------------- features

def test_joint_to_bone_known_pair():
    s = ntu_sample(T=4)
    out = JointToBone()(dict(s))['keypoint']
    kp = s['keypoint']
    assert out.shape == kp.shape and out.dtype == np.float32
    np.testing.assert_allclose(out[..., 3, :], kp[..., 3, :] - kp[..., 2, :])   # head - neck
    np.testing.assert_allclose(out[..., 21, :], kp[..., 21, :] - kp[..., 22, :])
    assert np.all(out[..., 20, :] == 0)  # the spine is its own root
    for v1, v2 in NTU.bone_pairs:
        np.testing.assert_allclose(out[..., v1, :], kp[..., v1, :] - kp[..., v2, :])


def test_joint_to_kb_and_target():
    s = ntu_sample(T=4)
    out = JointToKB(target='k')(dict(s))
    kp = s['keypoint']
    assert out['keypoint'] is s['keypoint']
    # a k-bone spans two edges: head - spine (via the neck), left wrist - left shoulder
    np.testing.assert_allclose(out['k'][..., 3, :], kp[..., 3, :] - kp[..., 20, :])
    np.testing.assert_allclose(out['k'][..., 6, :], kp[..., 6, :] - kp[..., 4, :])
    assert np.all(out['k'][..., 1, :] == 0)    # the middle of the spine is its own k-root
    for v1, v2 in NTU.kbone_pairs:
        np.testing.assert_allclose(out['k'][..., v1, :], kp[..., v1, :] - kp[..., v2, :])


def test_bone_score_channel_average_for_coco():
    rng = np.random.default_rng(1)
    kp = rng.normal(size=(1, 3, 17, 3)).astype(np.float32)
    out = JointToBone(dataset='coco')(dict(keypoint=kp))['keypoint']
    # left elbow (7) -> left shoulder (5)
    np.testing.assert_allclose(out[..., 7, :2], kp[..., 7, :2] - kp[..., 5, :2])
    np.testing.assert_allclose(out[..., 7, 2], (kp[..., 7, 2] + kp[..., 5, 2]) / 2)
    # coco_new differences the third channel, as the official code does
    kp20 = rng.normal(size=(1, 3, 20, 3)).astype(np.float32)
    out20 = JointToBone(dataset='coco_new')(dict(keypoint=kp20))['keypoint']
    np.testing.assert_allclose(out20[..., 7, 2], kp20[..., 7, 2] - kp20[..., 5, 2])


def test_bone_wrong_joint_count():
    with pytest.raises(ValueError, match="25 joints but layout 'coco'"):
        JointToBone(dataset='coco')(ntu_sample())


def test_to_motion_diff_with_zero_last_frame():
    s = ntu_sample(T=5)
    out = ToMotion()(dict(s))
    kp = s['keypoint']
    assert out['motion'].shape == kp.shape
    np.testing.assert_allclose(out['motion'][:, :4], kp[:, 1:] - kp[:, :4])
    assert np.all(out['motion'][:, 4] == 0)
    kp3 = np.random.default_rng(2).normal(size=(1, 4, 17, 3)).astype(np.float32)
    mo = ToMotion(dataset='coco', target='m')(dict(keypoint=kp3))['m']
    np.testing.assert_allclose(mo[:, :3, :, 2], (kp3[:, :3, :, 2] + kp3[:, 1:, :, 2]) / 2)


def test_merge_ske_feat():
    a = np.zeros((1, 2, 3, 3), np.float32)
    b = np.ones((1, 2, 3, 3), np.float32)
    out = MergeSkeFeat(feat_list=['a', 'b'])(dict(a=a, b=b))
    assert set(out) == {'keypoint'} and out['keypoint'].shape == (1, 2, 3, 6)
    np.testing.assert_array_equal(out['keypoint'][..., 3:], 1)
    assert MergeSkeFeat(feat_list=['a'], target='x')(dict(a=a))['x'] is a


@pytest.mark.parametrize('feats', [['j'], ['b'], ['k'], ['jm'], ['bm'], ['km'],
                                   ['j', 'b', 'k', 'jm', 'bm', 'km'], ['bm', 'j']])
def test_gen_ske_feat_matches_separate_transforms(feats):
    s = ntu_sample(T=6)
    kp = s['keypoint']
    out = GenSkeFeat(feats=feats)(dict(s))['keypoint']
    parts = {'j': kp, 'b': JointToBone()(dict(keypoint=kp))['keypoint'],
             'k': JointToKB()(dict(keypoint=kp))['keypoint']}
    for base in 'jbk':
        parts[base + 'm'] = ToMotion(source='x', target='m')(dict(x=parts[base]))['m']
    np.testing.assert_allclose(out, np.concatenate([parts[f] for f in feats], -1))


def test_gen_ske_feat_merges_score_and_validates():
    kp = np.ones((1, 3, 17, 2), np.float32)
    score = np.full((1, 3, 17), 0.5, np.float32)
    out = GenSkeFeat(dataset='coco', feats=['j'])(dict(keypoint=kp, keypoint_score=score))
    assert out['keypoint'].shape == (1, 3, 17, 3) and 'keypoint_score' not in out
    with pytest.raises(ValueError, match='feats'):
        GenSkeFeat(feats=['x'])
    with pytest.raises(ValueError, match='keypoint_score'):
        GenSkeFeat()(dict(keypoint=np.ones((1, 3, 25, 2)), keypoint_score=np.ones((1, 3, 25))))


# ----------------------------------------------------------------------------- sampling

def test_uniform_sample_frames_train_seed_and_range():
    res = dict(total_frames=250, start_index=0)
    np.random.seed(0)
    a = UniformSampleFrames(clip_len=100, num_clips=2)(dict(res))
    np.random.seed(0)
    b = UniformSampleFrames(clip_len=100, num_clips=2)(dict(res))
    np.testing.assert_array_equal(a['frame_inds'], b['frame_inds'])
    inds = a['frame_inds']
    assert inds.shape == (200,) and inds.dtype == np.int64
    assert inds.min() >= 0 and inds.max() < 250
    assert np.all(np.diff(inds[:100]) > 0)  # one frame per segment, increasing
    assert a['num_clips'] == 2 and a['clip_len'] == 100 and a['frame_interval'] is None


def test_uniform_sample_frames_test_mode_deterministic_without_touching_global_rng():
    t = UniformSampleFrames(clip_len=50, num_clips=3, seed=255)
    np.random.seed(1)
    a = t(dict(total_frames=30, start_index=1, test_mode=True))['frame_inds']
    after = np.random.rand()
    np.random.seed(2)
    b = t(dict(total_frames=30, start_index=1, test_mode=True))['frame_inds']
    np.testing.assert_array_equal(a, b)
    np.random.seed(1)
    assert np.random.rand() == after  # the global RNG was not reseeded
    # Short video in test mode: clip i starts at i * 30 // 3, wrapped, plus start_index.
    np.testing.assert_array_equal(a[:50], np.arange(50) % 30 + 1)
    np.testing.assert_array_equal(a[50:100], (np.arange(10, 60) % 30) + 1)
    assert UniformSample is not UniformSampleFrames and issubclass(UniformSample,
                                                                  UniformSampleFrames)


def test_pose_decode_gathers_frames():
    kp = frozen(np.arange(2 * 5 * 2 * 2, dtype=np.float16).reshape(2, 5, 2, 2))
    score = frozen(np.arange(2 * 5 * 2, dtype=np.float64).reshape(2, 5, 2))
    out = PoseDecode()(dict(keypoint=kp, keypoint_score=score, frame_inds=np.array([[4, 0, 0]])))
    assert out['keypoint'].dtype == np.float32 and out['keypoint_score'].dtype == np.float32
    np.testing.assert_array_equal(out['keypoint'], kp[:, [4, 0, 0]].astype(np.float32))
    np.testing.assert_array_equal(out['keypoint_score'], score[:, [4, 0, 0]])
    out = PoseDecode()(dict(keypoint=kp, total_frames=5))
    np.testing.assert_array_equal(out['frame_inds'], np.arange(5))
    with pytest.raises(IndexError, match='out of range'):
        PoseDecode()(dict(keypoint=kp, frame_inds=np.array([5])))


def test_uniform_sample_decode_shapes_seed_and_values():
    s = ntu_sample(T=37)
    s['keypoint'] = frozen(s['keypoint'])
    t = UniformSampleDecode(clip_len=20, num_clips=3)
    np.random.seed(4)
    a = t(dict(s))
    np.random.seed(4)
    b = t(dict(s))
    np.testing.assert_array_equal(a['keypoint'], b['keypoint'])
    assert a['keypoint'].shape == (2, 60, 25, 3) and a['keypoint'].dtype == np.float32
    assert a['num_clips'] == 3 and a['clip_len'] == 20
    # Every sampled frame is one of the input frames.
    flat_in = s['keypoint'].transpose(1, 0, 2, 3).reshape(37, -1)
    flat_out = a['keypoint'].transpose(1, 0, 2, 3).reshape(60, -1)
    assert all(any(np.array_equal(f, g) for g in flat_in) for f in flat_out)


def test_uniform_sample_decode_test_mode_and_score():
    kp = np.random.default_rng(0).normal(size=(1, 10, 17, 2)).astype(np.float32)
    score = np.ones((1, 10, 17), np.float32)
    t = UniformSampleDecode(clip_len=4, num_clips=2)
    a = t(dict(keypoint=kp, keypoint_score=score, test_mode=True))
    b = t(dict(keypoint=kp, keypoint_score=score, test_mode=True))
    assert a['keypoint'].shape == (1, 8, 17, 3) and 'keypoint_score' not in a
    np.testing.assert_array_equal(a['keypoint'], b['keypoint'])


def test_uniform_sample_decode_list_input():
    samples = [ntu_sample(T=30, seed=i) for i in range(3)]
    np.random.seed(0)
    out = UniformSampleDecode(clip_len=10, num_clips=3)([dict(s) for s in samples])
    assert out['keypoint'].shape == (2, 30, 25, 3) and out['num_clips'] == 3
    assert out['frame_dir'] == samples[0]['frame_dir']


# ----------------------------------------------------------------------------- DecompressPose

def test_decompress_pose_stacks_persons():
    # 3 frames (10, 10, 12, 15, 15, 15): squeeze → 3 frames; 3 persons at most.
    frame_inds = np.array([10, 10, 12, 15, 15, 15])
    kp = np.arange(6 * 2 * 3, dtype=np.float32).reshape(6, 2, 3)
    out = DecompressPose()(dict(frame_inds=frame_inds, keypoint=kp, total_frames=20))
    assert out['total_frames'] == 3 and 'frame_inds' not in out
    assert out['keypoint'].shape == (3, 3, 2, 2) and out['keypoint'].dtype == np.float16
    assert out['keypoint_score'].shape == (3, 3, 2)
    np.testing.assert_array_equal(out['keypoint'][1, 0], kp[1, :, :2])
    np.testing.assert_array_equal(out['keypoint'][2, 2], kp[5, :, :2])
    np.testing.assert_array_equal(out['keypoint_score'][0, 1], kp[2, :, 2])
    assert np.all(out['keypoint'][1, 1] == 0)
    out = DecompressPose(squeeze=False)(dict(frame_inds=frame_inds, keypoint=kp, total_frames=20))
    assert out['keypoint'].shape == (3, 20, 2, 2)


def test_decompress_pose_keeps_best_persons():
    frame_inds = np.array([0, 0, 0, 1])
    kp = np.zeros((4, 2, 3), np.float32)
    kp[:, :, 2] = np.array([0.1, 0.9, 0.5, 0.3])[:, None]
    kp[:, :, 0] = np.arange(4)[:, None]
    out = DecompressPose(max_person=2)(dict(frame_inds=frame_inds, keypoint=kp, total_frames=2))
    assert out['keypoint'].shape == (2, 2, 2, 2) and out['num_person'] == 2
    np.testing.assert_array_equal(out['keypoint'][:, 0, 0, 0], [1, 2])  # scores 0.9, 0.5
    np.testing.assert_array_equal(out['keypoint'][:, 1, 0, 0], [3, 0])


def test_decompress_pose_errors():
    with pytest.raises(ValueError, match='monotonically'):
        DecompressPose()(dict(frame_inds=np.array([2, 1]), keypoint=np.zeros((2, 2, 3)),
                              total_frames=3))
    with pytest.raises(KeyError, match='frame_inds'):
        DecompressPose()(dict(keypoint=np.zeros((2, 2, 3)), total_frames=3))


# ----------------------------------------------------------------------------- formatting

def test_format_gcn_input_pads_and_splits_clips():
    kp = np.arange(1 * 6 * 2 * 3, dtype=np.float32).reshape(1, 6, 2, 3)
    out = FormatGCNInput(num_person=2)(dict(keypoint=frozen(kp), num_clips=3))['keypoint']
    assert out.shape == (3, 2, 2, 2, 3) and out.flags.c_contiguous
    np.testing.assert_array_equal(out[1, 0], kp[0, 2:4])
    assert np.all(out[:, 1] == 0)
    loop = FormatGCNInput(num_person=3, mode='loop')(dict(keypoint=kp))['keypoint']
    np.testing.assert_array_equal(loop[0, 2], kp[0])
    many = np.ones((4, 2, 2, 3), np.float32)
    assert FormatGCNInput(num_person=2)(dict(keypoint=many))['keypoint'].shape == (1, 2, 2, 2, 3)
    with pytest.raises(ValueError, match='multiple of num_clips=4'):
        FormatGCNInput()(dict(keypoint=kp, num_clips=4))
    with pytest.raises(ValueError, match="'zero' or 'loop'"):
        FormatGCNInput(mode='wrap')


def test_format_gcn_input_appends_score():
    kp = np.ones((1, 2, 3, 2), np.float32)
    out = FormatGCNInput()(dict(keypoint=kp, keypoint_score=np.zeros((1, 2, 3), np.float32)))
    assert out['keypoint'].shape == (1, 2, 2, 3, 3)


def test_collect_totensor_rename():
    kp = np.ones((1, 2), np.float32)
    data = Collect(keys=['keypoint', 'label'], meta_keys=['frame_dir'])(
        dict(keypoint=kp, label=3, frame_dir='a', extra=1))
    assert data == {'keypoint': kp, 'label': 3, 'img_metas': {'frame_dir': 'a'}}
    assert Collect(keys=['label'], meta_keys=[], nested=True)(dict(label=3)) == {'label': [3]}
    with pytest.raises(KeyError, match="'label'"):
        Collect(keys=['label'], meta_keys=[])(dict(keypoint=kp))
    t = ToTensor(keys=['keypoint', 'label', 'f', 'seq'])(dict(keypoint=kp, label=3, f=0.5,
                                                             seq=[1, 2]))
    assert t['keypoint'].data_ptr() == torch.from_numpy(kp).data_ptr()  # no copy
    assert t['label'].tolist() == [3] and t['f'].tolist() == [0.5] and t['seq'].tolist() == [1, 2]
    with pytest.raises(TypeError):
        ToTensor(keys=['x'])(dict(x='text'))
    r = Rename({'keypoint': 'j', 'absent': 'y'})(dict(keypoint=kp))
    assert set(r) == {'j'}
    with pytest.raises(KeyError, match='exists'):
        Rename({'a': 'b'})(dict(a=1, b=2))


# ----------------------------------------------------------------------------- other chains

def test_pipeline_pickles_for_dataloader_workers():
    import copy
    import pickle
    pipeline = Compose(NTU_TRAIN + [])
    clone = pickle.loads(pickle.dumps(pipeline))
    copy.deepcopy(pipeline)
    np.random.seed(1)
    a = pipeline(ntu_sample())['keypoint']
    np.random.seed(1)
    b = clone(ntu_sample())['keypoint']
    assert torch.equal(a, b)


def test_kinetics_chain_from_compressed_poses():
    rng = np.random.default_rng(0)
    frame_inds = np.sort(rng.integers(0, 150, size=200))
    keypoint = rng.uniform(0, 300, size=(200, 17, 3)).astype(np.float16)
    left_kp, right_kp = [1, 3, 5, 7, 9, 11, 13, 15], [2, 4, 6, 8, 10, 12, 14, 16]
    pipeline = Compose([
        dict(type='DecompressPose', squeeze=True),
        dict(type='UniformSampleFrames', clip_len=100),
        dict(type='PoseDecode'),
        dict(type='Flip', flip_ratio=0.5, left_kp=left_kp, right_kp=right_kp),
        dict(type='Kinetics_Transform'),
        dict(type='GenSkeFeat', dataset='coco_new', feats=['k']),
        dict(type='FormatGCNInput', num_person=2),
        dict(type='Collect', keys=['keypoint', 'label'], meta_keys=[]),
        dict(type='ToTensor', keys=['keypoint'])])
    sample = dict(frame_dir='kinetics_0', label=7, frame_inds=frame_inds, keypoint=keypoint,
                  total_frames=150, img_shape=(340, 256), start_index=0, modality='Pose')
    out = pipeline(sample)
    assert out['keypoint'].shape == (1, 2, 100, 20, 3) and out['keypoint'].dtype == torch.float32
    assert out['label'] == 7


def test_uav_chain_with_frame_indices():
    kp = np.random.default_rng(0).normal(size=(2, 80, 17, 3)).astype(np.float32)
    pipeline = Compose([
        dict(type='UniformSampleFrames', clip_len=100, num_clips=10),
        dict(type='PoseDecode'),
        dict(type='GenSkeFeat', dataset='uav', feats=['bm']),
        dict(type='FormatGCNInput', num_person=2),
        dict(type='Collect', keys=['keypoint', 'label'], meta_keys=[]),
        dict(type='ToTensor', keys=['keypoint'])])
    out = pipeline(dict(keypoint=kp, total_frames=80, label=1, start_index=0, test_mode=True))
    assert out['keypoint'].shape == (10, 2, 100, 17, 3)
