"""Own videos, end to end and offline: generated videos of a real photograph → pickle →
check.py → a tiny training → tools/demo/video.py (MP4 + timeline) → ONNX export with parity
→ tools/infer.py --backend onnxruntime. Needs the video extra."""
from __future__ import annotations

import importlib.util
import json
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import tool_env

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ('mediapipe', 'cv2', 'skimage', 'onnxruntime', 'onnx')),
    reason='needs the video extra: pip install -e ".[video]"')]


def _run(args: list[str], cwd: Path, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=tool_env(), capture_output=True,
                          text=True, timeout=600)
    if ok:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_videos_to_onnx(tmp_path):
    from skeletonagent.pose.sample_videos import SAMPLE_CLASSES, make_sample_videos
    from skeletonagent.pose.video import video_info, write_video
    videos = tmp_path / 'videos'
    make_sample_videos(videos, per_class=3, num_frames=16, size=(240, 320), fps=8.0)
    # one video without anybody, one that is no video at all: both skipped and named
    write_video(videos / SAMPLE_CLASSES[0] / 'empty_room.mp4', [np.full((240, 320, 3), 90, np.uint8)] * 8, 8.0)
    (videos / SAMPLE_CLASSES[1] / 'broken.mp4').write_bytes(b'not a video')

    # 1. videos -> pickle (two workers, progress bar off), label map, report
    out = tmp_path / 'data' / 'custom' / 'custom_2d.pkl'
    cmd = [str(ROOT / 'tools/data/extract_poses.py'), str(videos), '--out', str(out), '--workers', '2',
           '--val-ratio', '0.34', '--no-progress']
    proc = _run(cmd, tmp_path, ok=False)
    assert proc.returncode == 2, proc.stderr[-2000:]            # a video was unreadable
    assert '6 samples (train 4, val 2)' in proc.stdout
    report = (out.parent / 'custom_2d_skipped.txt').read_text().splitlines()
    assert sorted(line.split('\t')[0] for line in report) == [f'{SAMPLE_CLASSES[0]}/empty_room',
                                                             f'{SAMPLE_CLASSES[1]}/broken']
    assert (out.parent / 'label_map.txt').read_text().splitlines() == list(SAMPLE_CLASSES)
    data = pickle.loads(out.read_bytes())
    assert data['classes'] == list(SAMPLE_CLASSES) and data['layout'] == 'coco'
    ann = data['annotations'][0]
    assert ann['keypoint'].shape == (1, 16, 17, 2) and ann['keypoint_score'].shape == (1, 16, 17)
    assert ann['keypoint_3d'].shape == (1, 16, 17, 3) and ann['img_shape'] == (240, 320)
    # a rerun takes every video read before from the cache (the one without a person too)
    # and tries the unreadable one again
    proc = _run(cmd, tmp_path, ok=False)
    assert proc.returncode == 2
    assert '0 videos processed, 7 from the cache' in proc.stdout
    assert '1 unreadable (tried again by every run)' in proc.stdout
    assert pickle.loads(out.read_bytes())['split'] == data['split']

    # 2. check.py passes on it, with the layout's joint count
    proc = _run([str(ROOT / 'tools/data/check.py'), str(out), '--layout', 'coco'], tmp_path)
    assert 'OK' in proc.stdout

    # 3. a tiny training of configs/custom/j.py (relative data paths: run in tmp_path)
    work = tmp_path / 'work'
    _run([str(ROOT / 'tools/train.py'), str(ROOT / 'configs/custom/j.py'), '--threads', '1',
          '--cfg-options', f'work_dir={work}', 'total_epochs=2', 'data.workers_per_gpu=0',
          'data.videos_per_gpu=4'], tmp_path)
    ckpt = work / 'latest.pth'
    assert ckpt.exists()
    transcripts = sorted(p.name for p in (work / 'agent' / 'transcripts').iterdir())
    assert transcripts == ['001_slide_to_the_left.txt', '002_slide_to_the_right.txt']

    # 4. the video demo: an MP4 as long as the video, a timeline with the classes
    video = sorted((videos / SAMPLE_CLASSES[1]).glob('*_00.mp4'))[0]
    mp4 = tmp_path / 'demo' / 'out.mp4'
    proc = _run([str(ROOT / 'tools/demo/video.py'), str(ROOT / 'configs/custom/j.py'), str(ckpt), str(video),
                 '--out', str(mp4), '--window', '8', '--stride', '4', '--threads', '1'], tmp_path)
    assert video_info(mp4).frame_count == 16 and video_info(mp4).width == 320
    timeline = json.loads((tmp_path / 'demo' / 'out.timeline.json').read_text())
    assert [(w['start'], w['end']) for w in timeline['windows']] == [(0, 8), (4, 12), (8, 16)]
    assert timeline['segments'][0]['start'] == 0.0 and timeline['segments'][-1]['end'] == 2.0
    assert {s['label'] for s in timeline['segments']} <= set(SAMPLE_CLASSES)
    csv_lines = (tmp_path / 'demo' / 'out.timeline.csv').read_text().splitlines()
    assert csv_lines[0] == 'start,end,label,score,start_frame,end_frame'
    assert len(csv_lines) == 1 + len(timeline['segments'])
    # a video without a person: a clear message, no file
    proc = _run([str(ROOT / 'tools/demo/video.py'), str(ROOT / 'configs/custom/j.py'), str(ckpt),
                 str(videos / SAMPLE_CLASSES[0] / 'empty_room.mp4'), '--out', str(tmp_path / 'none.mp4')],
                tmp_path, ok=False)
    assert proc.returncode == 1 and 'no person found in its 8 frames' in proc.stderr
    assert not (tmp_path / 'none.mp4').exists() and not (tmp_path / 'none.timeline.json').exists()

    # 5. ONNX export, checked against torch; onnxruntime gives torch's ranking
    onnx_file = tmp_path / 'model.onnx'
    proc = _run([str(ROOT / 'tools/deploy/export_onnx.py'), str(ROOT / 'configs/custom/j.py'), str(ckpt),
                 '--out', str(onnx_file)], tmp_path)
    diffs = [float(x) for x in re.findall(r'([0-9.e+-]+) \((?:un)?fused\)', proc.stdout)]
    assert len(diffs) == 2 and max(diffs) <= 1e-4, proc.stdout
    ranked = {}
    for backend, model in (('torch', ckpt), ('onnxruntime', onnx_file)):
        proc = _run([str(ROOT / 'tools/infer.py'), str(ROOT / 'configs/custom/j.py'), str(model), str(out),
                     '--index', '0', '--backend', backend], tmp_path)
        ranked[backend] = [(m.group(1), float(m.group(2))) for m in
                           re.finditer(r'^\d\. (.+?)\s+([0-9.]+)\s+\(class', proc.stdout, re.M)]
    assert [n for n, _ in ranked['torch']] == [n for n, _ in ranked['onnxruntime']]
    assert np.allclose([s for _, s in ranked['torch']], [s for _, s in ranked['onnxruntime']], atol=1e-4)
