"""The vectorised transforms against slow, loop-based references of PYSKL / official code.

Each reference below follows the published algorithm step by step (per frame, per pair,
per clip, drawing random numbers in the same order), so equal outputs under one seed
show the same numbers and the same RNG use.
"""
import random

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from skeletonagent.datasets.pipelines import (
    DecompressPose,
    Flip,
    GenSkeFeat,
    JointToBone,
    JointToKB,
    Kinetics_Transform,
    Part_Drop,
    PreNormalize3D,
    RandomRot,
    Spatial_Flip,
    ToMotion,
    UniformSampleDecode,
    UniformSampleFrames,
)
from skeletonagent.skeleton import LAYOUTS, get_layout


def ntu_like(T, M=2, seed=0, missing_tail=0, missing_person=False):
    rng = np.random.default_rng(seed)
    kp = rng.normal(size=(M, T, 25, 3)).astype(np.float32)
    if missing_tail:
        kp[0, T - missing_tail:] = 0
    if missing_person and M == 2:
        kp[1, : T // 2] = 0
    return kp


# ----------------------------------------------------------------------------- references

def ref_rotation(axis, angle):
    """Counter-clockwise rotation about ``axis`` (identity for degenerate input)."""
    axis = np.asarray(axis, dtype=np.float64)
    if np.abs(axis).sum() < 1e-6 or abs(angle) < 1e-6:
        return np.eye(3)
    return Rotation.from_rotvec(axis / np.linalg.norm(axis) * angle).as_matrix()


def ref_angle(v1, v2):
    v1, v2 = np.asarray(v1, np.float64), np.asarray(v2, np.float64)
    if np.abs(v1).sum() < 1e-6 or np.abs(v2).sum() < 1e-6:
        return 0.0
    cos = np.dot(v1, v2) / np.linalg.norm(v1) / np.linalg.norm(v2)
    return np.arccos(np.clip(cos, -1, 1))


def ref_prenormalize3d(kp, align_spine=True, align_center=True):
    M, T, V, C = kp.shape
    if kp.sum() == 0:
        return kp
    index0 = [t for t in range(T) if not np.all(np.isclose(kp[0, t], 0))]
    if M == 2:
        index1 = [t for t in range(T) if not np.all(np.isclose(kp[1, t], 0))]
        if len(index0) < len(index1):
            sk = kp[:, np.array(index1)][[1, 0]]
        else:
            sk = kp[:, np.array(index0)]
    else:
        sk = kp[:, np.array(index0)]
    if align_center:
        center = sk[0, 0, 1].copy() if V == 25 else sk[0, 0, -1].copy()
        mask = ((sk != 0).sum(-1) > 0)[..., None]
        sk = (sk - center) * mask
    if align_spine:
        spine = sk[0, 0, 1] - sk[0, 0, 0]
        rz = ref_rotation(np.cross(spine, [0, 0, 1]), ref_angle(spine, [0, 0, 1]))
        sk = np.einsum('abcd,kd->abck', sk, rz)
        shoulders = sk[0, 0, 8] - sk[0, 0, 4]
        rx = ref_rotation(np.cross(shoulders, [1, 0, 0]), ref_angle(shoulders, [1, 0, 0]))
        sk = np.einsum('abcd,kd->abck', sk, rx)
    return sk


def ref_random_rot(kp, theta):
    if np.all(np.isclose(kp, 0)):
        return kp
    t = np.random.uniform(-theta, theta, size=3)
    c, s = np.cos(t), np.sin(t)
    rx = np.array([[1, 0, 0], [0, c[0], s[0]], [0, -s[0], c[0]]])
    ry = np.array([[c[1], 0, -s[1]], [0, 1, 0], [s[1], 0, c[1]]])
    rz = np.array([[c[2], s[2], 0], [-s[2], c[2], 0], [0, 0, 1]])
    rot = rz @ ry @ rx
    out = np.zeros(kp.shape)
    for m in range(kp.shape[0]):
        for t_ in range(kp.shape[1]):
            out[m, t_] = kp[m, t_] @ rot.T
    return out


def ref_clip_inds(num_frames, clip_len, p_interval, i, num_clips, test_mode, decode):
    """One clip, as PYSKL's samplers write it (with their list comprehension)."""
    ratio = np.random.rand() * (p_interval[1] - p_interval[0]) + p_interval[0]
    n = int(ratio * num_frames)
    off = np.random.randint(num_frames - n + 1)
    if n < clip_len:
        if test_mode and not decode:
            start = i if n < num_clips else i * n // num_clips
        else:
            start = np.random.randint(0, n)
        inds = np.arange(start, start + clip_len)
        if decode:
            inds = inds % n
    elif clip_len <= n < 2 * clip_len:
        basic = np.arange(clip_len)
        chosen = np.random.choice(clip_len + 1, n - clip_len, replace=False)
        offset = np.zeros(clip_len + 1, dtype=np.int64)
        offset[chosen] = 1
        inds = basic + np.cumsum(offset)[:-1]
    else:
        bids = np.array([k * n // clip_len for k in range(clip_len + 1)])
        inds = bids[:clip_len] + np.random.randint(np.diff(bids))
    return inds + off


def ref_uniform_sample_decode(kp, clip_len, num_clips, p_interval, seed, test_mode):
    if test_mode:
        np.random.seed(seed)
    kp = kp.astype(np.float32)
    clips = [kp[:, ref_clip_inds(kp.shape[1], clip_len, p_interval, i, num_clips, test_mode,
                                 True)].copy() for i in range(num_clips)]
    return np.concatenate(clips, 1)


def ref_uniform_sample_frames(kp, clip_len, num_clips, p_interval, seed, test_mode, start_index):
    num_frames = kp.shape[1]
    if test_mode:
        np.random.seed(seed)
    inds = np.concatenate([ref_clip_inds(num_frames, clip_len, p_interval, i, num_clips,
                                         test_mode, False) for i in range(num_clips)])
    inds = np.mod(inds, num_frames) + start_index
    # PYSKL's transitional-frame blend, written out.
    num_person = kp.shape[0]
    num_persons = [num_person] * num_frames
    for t in range(num_frames):
        j = num_person - 1
        while j >= 0 and np.all(np.abs(kp[j, t]) < 1e-5):
            j -= 1
        num_persons[t] = j + 1
    transitional = [False] * num_frames
    for t in range(1, num_frames - 1):
        if num_persons[t] != num_persons[t - 1]:
            transitional[t] = transitional[t - 1] = True
        if num_persons[t] != num_persons[t + 1]:
            transitional[t] = transitional[t + 1] = True
    inds_int = inds.astype(np.int64)
    coeff = np.array([transitional[t] for t in inds_int])
    return (coeff * inds_int + (1 - coeff) * inds).astype(np.float32).astype(np.int64)


def ref_pairs(kp, pairs, average_score):
    M, T, V, C = kp.shape
    out = np.zeros((M, T, V, C), dtype=np.float32)
    for v1, v2 in pairs:
        out[..., v1, :] = kp[..., v1, :] - kp[..., v2, :]
        if C == 3 and average_score:
            out[..., v1, 2] = (kp[..., v1, 2] + kp[..., v2, 2]) / 2
    return out


def ref_motion(data, average_score):
    T = data.shape[1]
    out = np.zeros_like(data)
    for t in range(T - 1):
        out[:, t] = data[:, t + 1] - data[:, t]
        if data.shape[-1] == 3 and average_score:
            out[:, t, :, 2] = (data[:, t, :, 2] + data[:, t + 1, :, 2]) / 2
    return out


def ref_decompress(frame_inds, keypoint, max_person):
    uni = np.unique(frame_inds)
    mapping = {x: i for i, x in enumerate(uni)}
    frame_inds = np.array([mapping[x] for x in frame_inds])
    total = frame_inds.max() + 1
    num_person = np.bincount(frame_inds).max()
    V = keypoint.shape[1]
    new_kp = np.zeros([num_person, total, V, 2], dtype=np.float16)
    new_score = np.zeros([num_person, total, V], dtype=np.float16)
    count = np.zeros([total], dtype=np.int16)
    for f, k in zip(frame_inds, keypoint):
        p = count[f]
        new_kp[p, f] = k[:, :2]
        new_score[p, f] = k[:, 2]
        count[f] += 1
    if num_person > max_person:
        for t in range(total):
            n = count[t]
            ssum = new_score[:n, t].sum(-1)
            order = sorted(range(n), key=lambda x: -ssum[x])
            new_score[:n, t] = new_score[order, t]
            new_kp[:n, t] = new_kp[order, t]
        num_person = max_person
    return new_kp[:num_person], new_score[:num_person], total


# ----------------------------------------------------------------------------- comparisons

@pytest.mark.parametrize('T,M,tail,missing', [(40, 2, 0, False), (33, 2, 5, True),
                                              (20, 1, 3, False), (25, 2, 0, True)])
@pytest.mark.parametrize('spine', [False, True])
def test_prenormalize3d_matches_reference(T, M, tail, missing, spine):
    kp = ntu_like(T, M, seed=T, missing_tail=tail, missing_person=missing)
    out = PreNormalize3D(align_spine=spine)(dict(keypoint=kp.copy(), total_frames=T))
    ref = ref_prenormalize3d(kp, align_spine=spine)
    assert out['keypoint'].shape == ref.shape and out['total_frames'] == ref.shape[1]
    np.testing.assert_allclose(out['keypoint'], ref, rtol=1e-4, atol=2e-5)


def test_prenormalize3d_swaps_persons_like_reference():
    kp = ntu_like(30, 2, seed=1)
    kp[0, 10:] = 0
    out = PreNormalize3D()(dict(keypoint=kp.copy()))
    np.testing.assert_allclose(out['keypoint'], ref_prenormalize3d(kp), rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_random_rot_matches_reference(seed):
    kp = ntu_like(17, 2, seed=seed)
    np.random.seed(seed)
    out = RandomRot(theta=0.2)(dict(keypoint=kp))['keypoint']
    after = np.random.rand()
    np.random.seed(seed)
    ref = ref_random_rot(kp, 0.2)
    assert np.random.rand() == after  # the same number of draws
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('T', [7, 60, 100, 150, 199, 200, 301])
@pytest.mark.parametrize('num_clips,test_mode,p_interval', [
    (1, False, (1.0, 1.0)), (3, False, (0.5, 1.0)), (10, True, (1.0, 1.0)), (2, True, (0.5, 1))])
def test_uniform_sample_decode_matches_reference(T, num_clips, test_mode, p_interval):
    kp = ntu_like(T, 2, seed=T)
    t = UniformSampleDecode(clip_len=100, num_clips=num_clips, p_interval=p_interval)
    np.random.seed(T)
    out = t(dict(keypoint=kp, test_mode=test_mode))['keypoint']
    after = np.random.rand()
    np.random.seed(T)
    ref = ref_uniform_sample_decode(kp, 100, num_clips, p_interval, 255, test_mode)
    if not test_mode:
        assert np.random.rand() == after
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize('T', [5, 60, 150, 250])
@pytest.mark.parametrize('num_clips,test_mode,p_interval', [
    (1, False, (1.0, 1.0)), (4, False, (0.5, 1.0)), (10, True, (1.0, 1.0)), (3, True, (0.5, 1))])
def test_uniform_sample_frames_matches_reference(T, num_clips, test_mode, p_interval):
    kp = ntu_like(T, 2, seed=T, missing_person=True)
    t = UniformSampleFrames(clip_len=50, num_clips=num_clips, p_interval=p_interval)
    np.random.seed(T)
    # start_index 0, as PYSKL's pose datasets use (its transitional lookup overflows else).
    out = t(dict(keypoint=kp, total_frames=T, start_index=0, test_mode=test_mode))
    np.random.seed(T)
    ref = ref_uniform_sample_frames(kp, 50, num_clips, p_interval, 255, test_mode, 0)
    np.testing.assert_array_equal(out['frame_inds'], ref)


@pytest.mark.parametrize('name', sorted(LAYOUTS))
@pytest.mark.parametrize('C', [2, 3])
def test_bones_kbones_motion_match_reference(name, C):
    layout = get_layout(name)
    kp = np.random.default_rng(C).normal(size=(2, 9, layout.num_joints, C)).astype(np.float32)
    avg = name in ('openpose', 'coco')  # the official rule for score channels
    bone = JointToBone(dataset=name)(dict(keypoint=kp))['keypoint']
    kbone = JointToKB(dataset=name)(dict(keypoint=kp))['keypoint']
    np.testing.assert_array_equal(bone, ref_pairs(kp, layout.bone_pairs, avg))
    np.testing.assert_array_equal(kbone, ref_pairs(kp, layout.kbone_pairs, avg))
    motion = ToMotion(dataset=name)(dict(keypoint=bone))['motion']
    np.testing.assert_array_equal(motion, ref_motion(bone, avg))
    all_feats = GenSkeFeat(dataset=name, feats=['j', 'b', 'k', 'jm', 'bm', 'km'])(
        dict(keypoint=kp))['keypoint']
    expected = np.concatenate([kp, bone, kbone, ref_motion(kp, avg), ref_motion(bone, avg),
                               ref_motion(kbone, avg)], -1)
    np.testing.assert_array_equal(all_feats, expected)


def test_spatial_flip_and_part_drop_match_official_draws():
    kp = ntu_like(4, 2, seed=9)
    order = [0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 16, 17, 18, 19, 12, 13, 14, 15, 20, 23, 24,
             21, 22]  # the official NTU transform_order
    official_parts = [[4, 5, 6, 7, 22, 21], [12, 13, 14, 15], [8, 9, 10, 11, 24, 23],
                      [16, 17, 18, 19]]
    for seed in range(8):
        random.seed(seed)
        flipped = Spatial_Flip(p=0.5)(dict(keypoint=kp))['keypoint']
        dropped = Part_Drop(p=0.5)(dict(keypoint=kp))['keypoint']
        random.seed(seed)
        ref_flip = kp[:, :, order] if random.random() < 0.5 else kp
        ref_drop = kp.copy()
        if random.random() < 0.5:
            ref_drop[:, :, official_parts[random.randint(0, 3)]] = 0
        np.testing.assert_array_equal(flipped, ref_flip)
        np.testing.assert_array_equal(dropped, ref_drop)


def test_flip_matches_reference():
    rng = np.random.default_rng(0)
    kp = rng.uniform(0, 200, size=(2, 5, 17, 2)).astype(np.float32)
    kp[0, 1, 3] = 0
    left, right = [1, 3, 5, 7, 9, 11, 13, 15], [2, 4, 6, 8, 10, 12, 14, 16]
    for seed in range(4):
        np.random.seed(seed)
        out = Flip(flip_ratio=0.5, left_kp=left, right_kp=right)(
            dict(keypoint=kp, img_shape=(100, 200), modality='Pose'))
        np.random.seed(seed)
        ref = kp.copy()
        if np.random.rand() < 0.5:
            x = ref[..., 0]
            x[x != 0] = 200 - x[x != 0]
            order = list(range(17))
            for a, b in zip(left, right):
                order[a], order[b] = b, a
            ref = ref[:, :, order]
        np.testing.assert_array_equal(out['keypoint'], ref)


def test_kinetics_transform_matches_reference():
    rng = np.random.default_rng(0)
    kp = rng.normal(size=(2, 6, 17, 2)).astype(np.float32)
    score = rng.uniform(size=(2, 6, 17)).astype(np.float32)
    out = Kinetics_Transform()(dict(keypoint=kp, keypoint_score=score))['keypoint']
    sk = np.concatenate([kp, score[..., None]], -1).transpose(2, 0, 1, 3)
    add = np.zeros((3,) + sk.shape[1:])
    add[0] = (sk[11] + sk[12]) / 2
    add[2] = (sk[5] + sk[6]) / 2
    add[1] = (add[0] + add[2]) / 2
    ref = np.concatenate([sk, add], 0).transpose(1, 2, 0, 3).astype(np.float32)
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize('max_person', [10, 2])
def test_decompress_pose_matches_reference(max_person):
    rng = np.random.default_rng(max_person)
    frame_inds = np.sort(rng.integers(0, 40, size=120))
    keypoint = rng.uniform(size=(120, 17, 3)).astype(np.float32)
    out = DecompressPose(max_person=max_person)(
        dict(frame_inds=frame_inds, keypoint=keypoint, total_frames=40))
    ref_kp, ref_score, total = ref_decompress(frame_inds, keypoint, max_person)
    assert out['total_frames'] == total
    np.testing.assert_array_equal(out['keypoint'], ref_kp)
    np.testing.assert_array_equal(out['keypoint_score'], ref_score)
