"""Fault injection: a data loader worker whose transform raises.

A real ``tools/train.py`` run with ``workers_per_gpu=1`` over a file holding one sample with no
frames (it passes the file checks: ``total_frames=0`` is allowed, but the frame sampler has
nothing to sample). The worker's exception crosses the process boundary: the run must stop
with a non-zero exit, and the error must name the transform and the sample, not only
"DataLoader worker exited unexpectedly".
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(300)]


def test_transform_error_in_a_worker_names_sample_and_transform(tmp_path):
    from skeletonagent.datasets.synthetic import ensure_demo_data
    path = ensure_demo_data(tmp_path / 'demo.pkl', num_train_per_class=1, num_val_per_class=1,
                            num_test_per_class=1)
    with open(path, 'rb') as f:
        data = pickle.load(f)
    train = set(data['split']['train'])
    bad = [a for a in data['annotations'] if a['frame_dir'] in train][5]
    bad['keypoint'] = bad['keypoint'][:, :0]
    bad['total_frames'] = 0
    broken = tmp_path / 'zero_frames.pkl'
    with open(broken, 'wb') as f:
        pickle.dump(data, f)

    env = dict(os.environ, OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1',
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    cmd = [sys.executable, 'tools/train.py', 'configs/demo/j.py', '--cfg-options',
           f'work_dir={tmp_path / "work"}', 'data.train.type=PoseDataset',
           f'data.train.ann_file={broken}', 'data.workers_per_gpu=1', 'data.videos_per_gpu=12',
           'total_epochs=1', 'agent.llm.type=Offline']
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode != 0, proc.stdout[-2000:]
    err = proc.stderr
    assert 'in DataLoader worker process 0' in err, err[-3000:]    # it did cross the boundary
    last = err.strip().splitlines()[-1]
    assert last.startswith('skeletonagent.datasets.pipelines.compose.PipelineError:'), last
    assert f"UniformSampleDecode failed on sample {bad['frame_dir']!r}" in last, last
    assert 'has no frame' in last, last
    assert not list((tmp_path / 'work').glob('epoch_*.pth'))
