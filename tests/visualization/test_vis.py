"""Skeleton drawings: every layout in 2D and 3D, PNG and GIF, critical joints, the tool."""
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skeletonagent.agent.selector import build_masks
from skeletonagent.skeleton import LAYOUTS, get_layout
from skeletonagent.visualization import (
    CRITICAL_COLOUR,
    canonical_pose,
    critical_joints_from_mask,
    draw_critical_joints,
    draw_skeleton_sequence,
    infer_layout,
    is_3d,
)
from skeletonagent.visualization import skeleton as vis

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / 'tools'))
RED = tuple(int(CRITICAL_COLOUR[i:i + 2], 16) for i in (1, 3, 5))


def _sequence(layout, dim, persons=2, frames=6, seed=0):
    """A moving M×T×V×C sequence around the layout's canonical pose: 2D pixels (y down)
    with scores, or 3D metres in camera space (y up, z away from the camera)."""
    rng = np.random.default_rng(seed)
    pose = canonical_pose(layout)
    pose = (pose - pose.mean(0)) / np.ptp(pose, axis=0).max()
    out = []
    for m in range(persons):
        sway = np.sin(np.linspace(0, np.pi, frames))[:, None, None] * 0.05
        xy = pose[None] + sway + rng.normal(0, 0.01, (frames,) + pose.shape) + [1.2 * m, 0]
        if dim == 2:
            out.append(np.stack([400 + 300 * xy[..., 0], 500 - 300 * xy[..., 1]], -1))
        else:
            z = 3.0 + 0.1 * m + rng.normal(0, 0.02, xy.shape[:2])
            out.append(np.stack([-xy[..., 0], xy[..., 1], z], -1))
    kp = np.stack(out).astype(np.float32)
    score = np.full(kp.shape[:3], 0.9, np.float32) if dim == 2 else None
    return kp, score


def _red_pixels(path):
    image = np.asarray(Image.open(path).convert('RGB')).astype(int)
    return int((np.abs(image - RED).sum(-1) < 40).sum())


@pytest.mark.parametrize('dim', [2, 3])
@pytest.mark.parametrize('name', sorted(LAYOUTS))
def test_every_layout_draws_png_and_gif(tmp_path, name, dim):
    layout = get_layout(name)
    kp, score = _sequence(name, dim)
    critical = [layout.center, layout.num_joints - 1]
    png = draw_skeleton_sequence(kp, tmp_path / 'seq.png', name, keypoint_score=score,
                                 critical=critical, num_panels=4, title=f'{name} {dim}D')
    with Image.open(png) as image:
        image.load()
        # 4 panels: 3 per row, 2 rows of 3 inches at 100 dpi, half an inch of title
        assert image.size == (900, 650)
    assert _red_pixels(png) > 0
    gif = draw_skeleton_sequence(kp[:, :3], tmp_path / 'seq.gif', name, dim=dim,
                                 keypoint_score=None if score is None else score[:, :3],
                                 critical=critical, size=(2.0, 2.0), dpi=60)
    with Image.open(gif) as image:
        assert image.format == 'GIF' and image.n_frames == 3 and image.size == (120, 120)


def test_layout_is_inferred_from_the_joint_count():
    assert infer_layout(25) == 'nturgb+d'
    assert infer_layout(17) == 'coco'
    assert infer_layout(18) == 'openpose'
    assert infer_layout(21) == 'handmp'
    assert infer_layout(20) == 'coco_new'
    for layout in LAYOUTS.values():     # every layout's V resolves to a layout of that V
        assert get_layout(infer_layout(layout.num_joints)).num_joints == layout.num_joints
    with pytest.raises(ValueError, match='no skeleton layout has 7 joints'):
        infer_layout(7)


def test_2d_or_3d_guess():
    kp3, _ = _sequence('nturgb+d', 3)
    assert is_3d(kp3, 'nturgb+d')
    kp2, score = _sequence('coco', 2)
    assert not is_3d(kp2)
    assert not is_3d(np.concatenate([kp2, score[..., None]], -1), 'coco')   # x, y, score
    assert is_3d(_sequence('handmp', 3)[0], 'handmp')


def test_mask_highlighting_changes_pixels(tmp_path):
    kp, _ = _sequence('nturgb+d', 3, persons=1)
    masks = build_masks([[3], [6, 7, 21, 22]], 'nturgb+d', 'j')
    np.save(tmp_path / 'masks.npy', masks)
    joints = critical_joints_from_mask(np.load(tmp_path / 'masks.npy'), 1)
    assert joints == [6, 7, 21, 22]
    plain = draw_skeleton_sequence(kp, tmp_path / 'plain.png', num_panels=2)
    marked = draw_skeleton_sequence(kp, tmp_path / 'marked.png', critical=joints, num_panels=2)
    a = np.asarray(Image.open(plain).convert('RGB'))
    b = np.asarray(Image.open(marked).convert('RGB'))
    assert a.shape == b.shape == (350, 600, 3)
    assert (a != b).any(-1).sum() > 50
    assert _red_pixels(plain) == 0 and _red_pixels(marked) > 50


def test_critical_joints_from_masks_of_every_shape():
    masks = build_masks([[0, 4], [2]], 'coco', 'j')          # Class×V×V
    assert critical_joints_from_mask(masks, 0) == [0, 4]
    assert critical_joints_from_mask(masks[1]) == [2]         # V×V
    flags = np.zeros((2, 17))
    flags[1, [3, 5]] = 1
    assert critical_joints_from_mask(flags, 1) == [3, 5]      # Class×V
    assert critical_joints_from_mask(flags[1]) == [3, 5]      # V
    # bone masks: the rows of the pairs that hold a critical joint
    bone = build_masks([[9]], 'coco', 'b')[0]
    rows = critical_joints_from_mask(bone)
    assert 9 in rows and all(9 in get_layout('coco').bone_pairs[r] for r in rows)
    with pytest.raises(ValueError, match='give the class'):
        critical_joints_from_mask(masks)
    with pytest.raises(ValueError, match='out of range'):
        critical_joints_from_mask(masks, 5)


@pytest.mark.parametrize('name', sorted(LAYOUTS))
def test_draw_critical_joints_on_every_layout(tmp_path, name):
    layout = get_layout(name)
    pose = canonical_pose(layout)
    assert pose.shape == (layout.num_joints, 2)
    assert len(np.unique(pose.round(4), axis=0)) == layout.num_joints     # no joint on another
    out = draw_critical_joints(name, [layout.center], tmp_path / 'sub' / 'c.png',
                               title='a class name')
    with Image.open(out) as image:
        image.load()
        assert image.size == (300, 400)
    assert _red_pixels(out) > 0
    empty = draw_critical_joints(layout, [], tmp_path / 'e.png')
    assert _red_pixels(empty) == 0


def test_bad_inputs(tmp_path):
    kp, _ = _sequence('coco', 2)
    with pytest.raises(ValueError, match="layout 'nturgb\\+d' has 25"):
        draw_skeleton_sequence(kp, tmp_path / 'x.png', 'nturgb+d')
    with pytest.raises(ValueError, match='outside 0..16'):
        draw_skeleton_sequence(kp, tmp_path / 'x.png', critical=[17])
    with pytest.raises(ValueError, match='.gif'):
        draw_skeleton_sequence(kp, tmp_path / 'x.avi')
    with pytest.raises(ValueError, match='M×T×V×C'):
        draw_skeleton_sequence(kp[..., :1], tmp_path / 'x.png')


def test_mp4_without_ffmpeg_suggests_gif(tmp_path, monkeypatch):
    kp, _ = _sequence('uav', 3, frames=3)
    monkeypatch.setattr(vis, 'find_ffmpeg', lambda: None)
    with pytest.raises(RuntimeError, match=r'ffmpeg.*\.gif'):
        draw_skeleton_sequence(kp, tmp_path / 'x.mp4', 'uav')
    assert not (tmp_path / 'x.mp4').exists()


@pytest.mark.skipif(vis.find_ffmpeg() is None, reason='no ffmpeg')
def test_mp4_with_ffmpeg(tmp_path):
    kp, _ = _sequence('uav', 3, frames=4)
    out = draw_skeleton_sequence(kp, tmp_path / 'x.mp4', 'uav', size=(2, 2), dpi=50)
    assert out.stat().st_size > 0


def test_vis_tool_with_mask_and_class(tmp_path, capsys):
    import vis_skeleton
    kp, score = _sequence('uav', 2, frames=5)
    anns = [dict(frame_dir=f's{i}', label=i, total_frames=5, keypoint=kp + i,
                 keypoint_score=score) for i in range(2)]
    ann_file = tmp_path / 'ann.pkl'
    ann_file.write_bytes(pickle.dumps(dict(split={'test': ['s0', 's1']}, annotations=anns)))
    np.save(tmp_path / 'masks.npy', build_masks([[1], [3, 6]], 'uav', 'j'))
    vis_skeleton.main([str(ann_file), '--frame-dir', 's1', '--layout', 'uav', '--mask',
                       str(tmp_path / 'masks.npy'), '--class', '1',
                       '--out', str(tmp_path / 'o.png')])
    assert 'wrote' in capsys.readouterr().out
    assert _red_pixels(tmp_path / 'o.png') > 0
    vis_skeleton.main([str(ann_file), '--index', '0', '--out', str(tmp_path / 'o.gif'),
                       '--fps', '10'])
    with Image.open(tmp_path / 'o.gif') as image:
        assert image.n_frames == 5
    with pytest.raises(SystemExit, match='--index'):
        vis_skeleton.main([str(ann_file), '--out', str(tmp_path / 'p.png')])
    with pytest.raises(SystemExit, match='--class'):
        vis_skeleton.main([str(ann_file), '--index', '0', '--mask',
                           str(tmp_path / 'masks.npy'), '--out', str(tmp_path / 'p.png')])


def test_sample_title_names_the_class():
    from skeletonagent.visualization import sample_title
    names = ['drink water', 'eat meal', 'brush teeth']
    sample = dict(frame_dir='S001C001P001R001A002', label=1)
    assert sample_title(sample, names) == 'S001C001P001R001A002: eat meal (label 1)'
    assert sample_title(sample) == 'S001C001P001R001A002 (label 1)'
    assert sample_title(dict(sample, label=7), names) == 'S001C001P001R001A002 (label 7)'
    assert sample_title(dict(frame_dir='x', label=-1), names) == 'x'
    assert sample_title(sample, names, critical_class=2) == \
        'S001C001P001R001A002: eat meal (label 1) — critical joints of brush teeth (class 2)'
    assert sample_title(sample, None, critical_class=2).endswith('critical joints of class 2')


def test_class_names_come_from_the_label_map_the_file_or_the_config(tmp_path):
    from skeletonagent.datasets.config_view import class_names_for
    from skeletonagent.datasets.label_map import load_label_map
    (tmp_path / 'mine.txt').write_text('a\nb\n')
    assert class_names_for(tmp_path / 'mine.txt', ['x'], ROOT / 'configs/demo/j.py')[0] == \
        ['a', 'b']
    assert class_names_for('ntu60')[0] == load_label_map('ntu60')
    assert class_names_for(None, ['x', 'y'], ROOT / 'configs/demo/j.py') == \
        (['x', 'y'], "the file's classes")
    names, source = class_names_for(None, None, ROOT / 'configs/demo/j.py')
    assert names == load_label_map('demo') and source.startswith('config ')
    assert class_names_for() == (None, 'none')
    with pytest.raises(FileNotFoundError, match='no-such-map'):
        class_names_for('no-such-map')


def test_vis_tool_titles_show_the_class_name(tmp_path, capsys, monkeypatch):
    import vis_skeleton

    from skeletonagent.datasets.label_map import load_label_map
    kp, _ = _sequence('nturgb+d', 3, persons=1, frames=4)
    anns = [dict(frame_dir=f's{i}', label=i, total_frames=4, keypoint=kp) for i in range(3)]
    with_classes = tmp_path / 'named.pkl'
    with_classes.write_bytes(pickle.dumps(dict(annotations=anns, classes=['sit', 'stand', 'wave'])))
    bare = tmp_path / 'bare.pkl'
    bare.write_bytes(pickle.dumps(dict(annotations=anns)))
    titles = []
    real = vis_skeleton.draw_skeleton_sequence
    monkeypatch.setattr(vis_skeleton, 'draw_skeleton_sequence',
                        lambda *a, **kw: titles.append(kw['title']) or real(*a, **kw))
    out = str(tmp_path / 'o.png')
    vis_skeleton.main([str(with_classes), '--index', '2', '--out', out])           # the pickle's
    vis_skeleton.main([str(bare), '--index', '2', '--label-map', 'ntu60', '--out', out])
    vis_skeleton.main([str(bare), '--index', '1', '--config', str(ROOT / 'configs/demo/j.py'),
                       '--out', out])
    vis_skeleton.main([str(bare), '--index', '1', '--out', out])                   # no names
    ntu, demo = load_label_map('ntu60'), load_label_map('demo')
    assert titles == ['s2: wave (label 2)', f's2: {ntu[2]} (label 2)',
                      f's1: {demo[1]} (label 1)', 's1 (label 1)']
    assert f'wrote {out} (s1 (label 1))' in capsys.readouterr().out
