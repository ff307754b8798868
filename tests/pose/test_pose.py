"""Pose extraction: the estimator-to-layout maps, the tracker, the missing-extra message (these
run everywhere), and MediaPipe on a real photograph made into a video (with the video extra)."""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from skeletonagent.pose import FramePoses, PoseTracks, VideoExtraMissing, require
from skeletonagent.skeleton import get_layout
from skeletonagent.skeleton.estimators import BLAZEPOSE_NAMES, HAND_NAMES, landmark_order

ROOT = Path(__file__).resolve().parents[2]
HAS_VIDEO_EXTRA = all(importlib.util.find_spec(m) for m in ('mediapipe', 'cv2', 'skimage', 'onnx', 'onnxruntime'))
needs_video = pytest.mark.skipif(not HAS_VIDEO_EXTRA, reason='needs the video extra: pip install -e ".[video]"')


# ------------------------------------------------------------------ layout maps
def test_blazepose_map_keeps_names_and_sides():
    layout_name, order = landmark_order('blazepose')
    coco = get_layout(layout_name)
    assert layout_name == 'coco' and order.shape == (17,)
    for v, joint in enumerate(coco.joint_names):
        assert BLAZEPOSE_NAMES[order[v]] == joint.replace(' ', '_')
    # MediaPipe's documented indices: nose 0, left shoulder 11, right hip 24, left ankle 27
    assert order[coco.index('nose')] == 0
    assert order[coco.index('left shoulder')] == 11
    assert order[coco.index('right hip')] == 24
    assert order[coco.index('left ankle')] == 27


def test_hand_map_is_handmp_order():
    layout_name, order = landmark_order('mediapipe_hand')
    assert layout_name == 'handmp' and len(HAND_NAMES) == 21
    assert order.tolist() == list(range(21))     # handmp is MediaPipe's own order


@needs_video
def test_landmark_names_match_mediapipe():
    mp = require('mediapipe')
    assert [lm.name.lower() for lm in mp.solutions.pose.PoseLandmark] == list(BLAZEPOSE_NAMES)
    assert [lm.name.lower() for lm in mp.solutions.hands.HandLandmark] == list(HAND_NAMES)


def test_unknown_source_is_named():
    with pytest.raises(KeyError, match='unknown estimator output'):
        landmark_order('openpose25')


# ------------------------------------------------------------------ tracker
def _person(x: float, y: float, size: float = 100.0) -> np.ndarray:
    rest = np.stack([np.linspace(-0.2, 0.2, 17), np.linspace(-0.5, 0.5, 17)], 1)
    return (rest * size + [x, y]).astype(np.float32)


def test_tracker_follows_two_persons_that_pass_each_other():
    tracks = PoseTracks()
    ids = []
    for t in range(20):
        a, b = _person(100 + 10 * t, 200), _person(400 - 10 * t, 210)
        order = [a, b] if t % 2 else [b, a]          # the estimator's order changes every frame
        got = tracks.add(FramePoses(np.stack(order), np.full((2, 17), 0.9)))
        ids.append(got if t % 2 else got[::-1])      # ids of (a, b)
    assert len(tracks.tracks) == 2
    assert all(pair == ids[0] for pair in ids)


def test_tracker_keeps_the_best_tracks_and_pads_missing_frames():
    tracks = PoseTracks()
    for t in range(10):
        persons, scores = [_person(100, 200)], [np.full(17, 0.9)]
        if t < 4:                                    # a weak, short track
            persons.append(_person(400, 200))
            scores.append(np.full(17, 0.2))
        if 6 <= t:                                   # a strong one from frame 6 on
            persons.append(_person(250, 100))
            scores.append(np.full(17, 0.95))
        tracks.add(FramePoses(np.stack(persons), np.stack(scores)))
    out = tracks.arrays(max_persons=2)
    assert out['keypoint'].shape == (2, 10, 17, 2) and out['keypoint_score'].shape == (2, 10, 17)
    # first the one seen from frame 0, then the strong late one; the weak one is dropped
    assert np.allclose(out['keypoint'][0, 0], _person(100, 200))
    assert np.allclose(out['keypoint'][1, 6], _person(250, 100))
    assert (out['keypoint_score'][1, :6] == 0).all() and (out['keypoint_score'][1, 6:] > 0.9).all()
    window = tracks.arrays(max_persons=2, start=0, stop=4)
    assert window['keypoint'].shape[:2] == (2, 4)
    assert np.allclose(window['keypoint'][1, 0], _person(400, 200))   # the weak one is all there is


def test_no_person_gives_no_track():
    tracks = PoseTracks()
    for _ in range(3):
        tracks.add(FramePoses.empty(17))
    assert tracks.arrays()['keypoint'].shape == (0, 3, 17, 2)


# ------------------------------------------------------------------ without the extra
def test_missing_extra_names_the_install_command():
    with pytest.raises(VideoExtraMissing, match=r'pip install -e "\.\[video\]"'):
        require('a_module_that_is_not_there')


@pytest.mark.parametrize('tool,argv,missing', [
    ('demo/video.py', ['cfg.py', 'ckpt.pth', 'video.mp4'], 'mediapipe'),
    ('data/extract_poses.py', ['videos', '--out', 'x.pkl'], 'mediapipe'),
    ('deploy/export_onnx.py', ['cfg.py', 'ckpt.pth', '--out', 'm.onnx'], 'onnx'),
    ('deploy/export_onnx.py', ['cfg.py', 'ckpt.pth', '--out', 'm.onnx'], 'onnxruntime'),
], ids=['video-mediapipe', 'extract-mediapipe', 'export-onnx', 'export-onnxruntime'])
def test_video_tool_without_the_extra_stops_with_one_line(monkeypatch, tool, argv, missing):
    monkeypatch.setitem(sys.modules, missing, None)        # import <missing> -> ImportError
    spec = importlib.util.spec_from_file_location('video_tool', ROOT / 'tools' / tool)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from skeletonagent.engine.errors import run_tool
    with pytest.raises(SystemExit) as exc:
        run_tool(module.main, argv)
    message = str(exc.value)
    # with the extra installed, the module taken away is named; without it, the first missing
    named = missing if HAS_VIDEO_EXTRA else r'(mediapipe|onnx|onnxruntime)'
    assert re.match(rf'error: {named} is not installed', message) and '\n' not in message
    assert 'pip install -e ".[video]"' in message


def test_infer_onnxruntime_without_the_extra_stops_with_one_line(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)
    spec = importlib.util.spec_from_file_location('infer_tool', ROOT / 'tools' / 'infer.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sample = tmp_path / 'sample.npy'
    np.save(sample, np.zeros((1, 8, 17, 2), np.float32))
    with pytest.raises(SystemExit) as exc:
        module.main([str(ROOT / 'configs' / 'custom' / 'j.py'), 'model.onnx', str(sample),
                     '--backend', 'onnxruntime'])
    message = str(exc.value)
    assert message.startswith('error: onnxruntime is not installed') and '\n' not in message
    assert 'pip install -e ".[video]"' in message


# ------------------------------------------------------------------ a real photograph
@needs_video
@pytest.mark.parametrize('mirror', [False, True], ids=['photo', 'mirror'])
def test_mediapipe_finds_the_person_of_a_photo_moving_sideways(mirror):
    """scikit-image's astronaut (a photo of a person facing the camera) slides to the right
    over 12 frames: one person in every frame, the nose above the shoulders, the left
    shoulder on the image's right (photo and mirror image alike), and the joints move with
    the photo."""
    from skeletonagent.pose import build_estimator
    from skeletonagent.pose.sample_videos import moving_photo_frames
    frames, lefts = moving_photo_frames(12, size=(240, 400), start=0.0, stop=1.0, mirror=mirror)
    assert lefts[-1] - lefts[0] == 160
    coco = get_layout('coco')
    nose, ls, rs = coco.index('nose'), coco.index('left shoulder'), coco.index('right shoulder')
    tracks = PoseTracks()
    with build_estimator('mediapipe') as estimator:
        assert estimator.layout == 'coco'
        for frame in frames:
            poses = estimator(frame)
            assert poses.num_persons == 1
            kp, score = poses.keypoints[0], poses.scores[0]
            assert score[[nose, ls, rs]].min() > 0.5
            assert kp[nose, 1] < min(kp[ls, 1], kp[rs, 1]) - 20          # y grows downwards
            assert kp[ls, 0] > kp[rs, 0] + 40                            # left shoulder on the right
            tracks.add(poses)
    assert len(tracks.tracks) == 1
    kp = tracks.arrays()['keypoint'][0]                                  # T × V × 2
    # the upper body moves with the photo: position relative to the photo's left edge is steady
    for joint in (nose, ls, rs):
        relative = kp[:, joint, 0] - lefts
        assert relative.std() < 4.0, (joint, relative)
        assert abs(np.diff(kp[:, joint, 0]).mean() - np.diff(lefts).mean()) < 1.5
    assert np.abs(np.diff(kp[:, nose, 1])).max() < 4.0                   # no vertical jump


@needs_video
def test_mediapipe_3d_keeps_the_sides():
    """World landmarks: the left shoulder at larger x than the right (MediaPipe's world frame
    is the image's x), about a shoulder width apart (0.25-0.5 m)."""
    from skeletonagent.pose import build_estimator
    from skeletonagent.pose.sample_videos import person_photo
    coco = get_layout('coco')
    with build_estimator('mediapipe', video=False) as estimator:
        poses = estimator(person_photo())
    kp3d = poses.keypoints_3d[0]
    width = kp3d[coco.index('left shoulder')] - kp3d[coco.index('right shoulder')]
    assert width[0] > 0 and 0.25 < np.linalg.norm(width) < 0.5


@needs_video
def test_sample_videos_tool_writes_class_folders_and_refuses_a_tall_size(tmp_path):
    from skeletonagent.engine.errors import run_tool
    from skeletonagent.pose.sample_videos import SAMPLE_CLASSES
    from skeletonagent.pose.video import video_info
    spec = importlib.util.spec_from_file_location('sample_videos_tool', ROOT / 'tools' / 'data' / 'sample_videos.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    argv = [str(tmp_path / 'v'), '--per-class', '2', '--frames', '6', '--size', '96x160', '--scale', '1']
    assert run_tool(tool.main, argv) == 0
    for name in SAMPLE_CLASSES:
        files = sorted((tmp_path / 'v' / name).glob('*.mp4'))
        assert len(files) == 2
        info = video_info(files[0])
        assert (info.frame_count, info.height, info.width) == (6, 96, 160)
    with pytest.raises(SystemExit, match='the width must exceed the height'):
        run_tool(tool.main, [str(tmp_path / 'w'), '--size', '160x96'])
    assert not (tmp_path / 'w').exists()


# ------------------------------------------------------------------ rtmlib, offline (a stand-in module)
def _fake_rtmlib(monkeypatch, tmp_path, download=None):
    """A stand-in ``rtmlib`` package: its preset names zip URLs, its Body returns two persons."""
    import types
    presets = {'lightweight': dict(det='https://example.invalid/models/rtmdet_nano_8xb32.zip',
                                   pose='https://example.invalid/models/rtmpose-t_simcc.zip',
                                   det_input_size=(416, 416), pose_input_size=(192, 256))}
    calls = []

    class Body:
        MODE = presets

        def __init__(self, **kwargs):
            calls.append(kwargs)

        def __call__(self, bgr):
            kp = np.stack([np.tile(np.arange(17, dtype=np.float32)[:, None], (1, 2)) + 100 * p for p in range(2)])
            return kp, np.full((2, 17), 0.9, np.float32)

    file_mod = types.ModuleType('rtmlib.tools.file')
    file_mod.download_checkpoint = download or (lambda url: (_ for _ in ()).throw(OSError('no network')))
    rtmlib = types.ModuleType('rtmlib')
    rtmlib.Body = Body
    monkeypatch.setitem(sys.modules, 'rtmlib', rtmlib)
    monkeypatch.setitem(sys.modules, 'rtmlib.tools', types.ModuleType('rtmlib.tools'))
    monkeypatch.setitem(sys.modules, 'rtmlib.tools.file', file_mod)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    return calls


def test_rtmlib_offline_names_the_file_to_fetch_and_where(monkeypatch, tmp_path):
    from skeletonagent.pose import PoseBackendUnavailable, build_estimator
    _fake_rtmlib(monkeypatch, tmp_path)
    where = tmp_path / 'torch_home' / 'hub' / 'checkpoints' / 'rtmdet_nano_8xb32.onnx'
    for allow in (False, True):          # refused, or the download fails (no network)
        with pytest.raises(PoseBackendUnavailable) as exc:
            build_estimator('rtmlib', allow_download=allow)
        message = str(exc.value)
        assert '\n' not in message and str(where) in message
        assert 'fetch https://example.invalid/models/rtmdet_nano_8xb32.zip' in message


def test_rtmlib_with_local_models_gives_coco_persons(monkeypatch, tmp_path):
    from skeletonagent.pose import build_estimator
    calls = _fake_rtmlib(monkeypatch, tmp_path)
    folder = tmp_path / 'torch_home' / 'hub' / 'checkpoints'
    folder.mkdir(parents=True)
    for name in ('rtmdet_nano_8xb32', 'rtmpose-t_simcc'):
        (folder / f'{name}.onnx').write_bytes(b'onnx')
    with build_estimator('rtmlib', allow_download=False) as estimator:
        poses = estimator(np.zeros((48, 64, 3), np.uint8))
    assert calls[0]['det'] == str(folder / 'rtmdet_nano_8xb32.onnx') and calls[0]['backend'] == 'onnxruntime'
    assert estimator.layout == 'coco' and poses.num_persons == 2
    assert poses.keypoints.shape == (2, 17, 2) and np.allclose(poses.scores, 0.9)
    names = get_layout('coco').joint_names
    assert poses.keypoints[1, names.index('left wrist'), 0] == 100 + names.index('left wrist')


@needs_video
def test_a_smaller_photo_stands_on_the_bottom_and_slides_further():
    from skeletonagent.pose.sample_videos import moving_photo_frames
    background = 200
    frames, lefts = moving_photo_frames(3, size=(100, 200), start=0.0, stop=1.0, scale=0.5,
                                        background=background)
    assert lefts.tolist() == [0, 75, 150]                  # travel: 200 - 50
    middle = frames[1]
    assert np.all(middle[:50] == background)                # above the photo: background
    assert np.any(middle[50:, 75:125] != background)        # the photo, 50 x 50 at the bottom
    assert np.all(middle[50:, :75] == background) and np.all(middle[50:, 125:] == background)
