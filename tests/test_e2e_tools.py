"""End to end through the command-line tools, on the embedded demo (short runs).

These run the real scripts in subprocesses, as a user would: train → checkpoints, logs, dumped
config, agent transcripts; test → predictions; resume; a 2-process gloo run.
"""
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from skeletonagent.engine.checkpoint import load_checkpoint_file

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / 'configs' / 'demo' / 'j.py'

pytestmark = pytest.mark.slow


def _env():
    env = dict(os.environ)
    env['PYTHONPATH'] = str(ROOT) + os.pathsep + env.get('PYTHONPATH', '')
    env.setdefault('OMP_NUM_THREADS', '1')
    env['HF_HUB_OFFLINE'] = '1'
    return env


def _short(work_dir: Path, data: Path, epochs: int) -> list[str]:
    """cfg-options that make the demo a seconds-long run on a tiny copy of the data."""
    return ['--cfg-options', f'work_dir={work_dir}', f'total_epochs={epochs}',
            f'data.train.ann_file={data}', f'data.val.ann_file={data}',
            f'data.test.ann_file={data}', 'data.workers_per_gpu=0', 'log_config.interval=5']


@pytest.fixture(scope='module')
def small_demo(tmp_path_factory):
    from skeletonagent.datasets.synthetic import ensure_demo_data
    path = tmp_path_factory.mktemp('demo') / 'demo_small.pkl'
    return ensure_demo_data(path, num_train_per_class=4, num_val_per_class=2,
                            num_test_per_class=2)


def _run(args, timeout=300):
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


@pytest.fixture(scope='module')
def trained(tmp_path_factory, small_demo):
    work_dir = tmp_path_factory.mktemp('run')
    proc = _run(['tools/train.py', str(CONFIG), '--validate', '--test-last', '--test-best',
                 '--seed', '0', *_short(work_dir, small_demo, 2)])
    return work_dir, proc


def test_train_writes_checkpoints_logs_and_predictions(trained, small_demo):
    work_dir, proc = trained
    names = {p.name for p in work_dir.iterdir()}
    assert {'epoch_1.pth', 'epoch_2.pth', 'latest.pth', 'last_pred.pkl', 'best_pred.pkl'} <= names
    assert os.readlink(work_dir / 'latest.pth') == 'epoch_2.pth'
    assert any(n.startswith('best_acc_top1_epoch_') for n in names)
    assert (work_dir / 'j.py').is_file()                            # dumped config
    assert list(work_dir.glob('*/*.log'))                           # text log
    scalars = list(work_dir.glob('*/vis_data/scalars.json'))        # JSON log
    assert scalars
    records = [json.loads(ln) for ln in scalars[0].read_text().splitlines()]
    assert any('loss_align' in r for r in records) and any('acc/top1' in r for r in records)
    # test predictions: one score array per test sample, summing to 1 ('prob' averaging)
    preds = pickle.loads((work_dir / 'last_pred.pkl').read_bytes())
    data = pickle.loads(Path(small_demo).read_bytes())
    assert len(preds) == len(data['split']['test'])
    assert all(p.shape == (12,) for p in preds)
    np.testing.assert_allclose(np.stack(preds).sum(1), 1.0, rtol=1e-4)
    # the agent wrote one transcript per class
    assert len(list((work_dir / 'agent' / 'transcripts').glob('*.txt'))) == 12
    # what the run used: in the log at start, in run_info.json and in the report
    info = json.loads((work_dir / 'run_info.json').read_text(encoding='utf-8'))['lines']
    assert info['batch and lr'] == '32 per process x 1 process = 32; lr 0.1 (config lr 0.1 ' \
                                   'for a batch of 32, scaled by 1)'
    assert info['agent texts'] == f"dialogues 12 generated at start by Offline"
    assert info['agent LLM'] == 'Offline' and info['agent prompts'] == 'ours'
    assert info['agent masks'].startswith('built from the dialogues by the Selector, sha256 ')
    log = next(work_dir.glob('*/*.log')).read_text()
    assert 'this run uses:' in log and info['agent masks'] in log
    html = (work_dir / 'report' / 'index.html').read_text(encoding='utf-8')
    assert 'What this run used' in html and info['agent masks'] in html


def test_checkpoint_is_weights_only_and_has_no_text_encoder(trained):
    work_dir, _ = trained
    ckpt = load_checkpoint_file(work_dir / 'epoch_2.pth')
    keys = list(ckpt['state_dict'])
    assert 'backbone.examplar' in keys and 'cls_head.fc_cls.weight' in keys
    assert not any('text_encoder' in k for k in keys)
    assert ckpt['meta']['epoch'] == 2
    state = ckpt['agent_state']
    assert len(state['descriptions']) == 12
    assert torch.equal(ckpt['state_dict']['backbone.examplar'].float(),
                       torch.as_tensor(state['masks']).float())


def test_tools_test_reproduces_last_predictions(trained, small_demo, tmp_path):
    work_dir, _ = trained
    out = tmp_path / 'res.pkl'
    proc = _run(['tools/test.py', str(CONFIG), str(work_dir / 'epoch_2.pth'), '--out', str(out),
                 '--eval', 'top_k_accuracy', 'mean_class_accuracy',
                 *_short(tmp_path / 't', small_demo, 1)])
    assert 'acc/top1' in proc.stdout + proc.stderr
    ours = np.stack(pickle.loads(out.read_bytes()))
    last = np.stack(pickle.loads((work_dir / 'last_pred.pkl').read_bytes()))
    np.testing.assert_allclose(ours, last, rtol=1e-5, atol=1e-6)


def test_resume_auto_continues_from_latest(trained, small_demo, tmp_path):
    work_dir, _ = trained
    proc = _run(['tools/train.py', str(CONFIG), '--resume', 'auto', '--seed', '0',
                 *_short(work_dir, small_demo, 3)])
    log = proc.stdout + proc.stderr
    assert 'resuming from' in log and 'epoch_2.pth' in log
    assert 'Epoch(train) [3]' in log and 'Epoch(train) [1]' not in log
    ckpt = load_checkpoint_file(work_dir / 'epoch_3.pth')
    assert ckpt['meta']['epoch'] == 3
    assert os.readlink(work_dir / 'latest.pth') == 'epoch_3.pth'


def test_dist_train_two_gloo_processes(small_demo, tmp_path):
    env = _env()
    proc = subprocess.run(['bash', 'tools/dist_train.sh', str(CONFIG), '2', '--seed', '0',
                           *_short(tmp_path, small_demo, 1)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert (tmp_path / 'epoch_1.pth').is_file()
    log = next(tmp_path.glob('*/*.log')).read_text()
    assert 'Distributed training: True' in log and 'Epoch(train) [1]' in log
    # the lr follows the total batch: 2 processes of 32 at the demo's lr for 32
    info = json.loads((tmp_path / 'run_info.json').read_text(encoding='utf-8'))
    assert info['processes'] == 2 and info['total_batch'] == 64
    assert info['lr'] == pytest.approx(0.2)


def test_dist_test_two_processes_matches_single(trained, small_demo, tmp_path):
    work_dir, _ = trained
    out = tmp_path / 'dist.pkl'
    proc = subprocess.run(['bash', 'tools/dist_test.sh', str(CONFIG), str(work_dir / 'epoch_2.pth'),
                           '2', '--out', str(out), *_short(tmp_path / 't', small_demo, 1)],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    ours = np.stack(pickle.loads(out.read_bytes()))
    last = np.stack(pickle.loads((work_dir / 'last_pred.pkl').read_bytes()))
    assert ours.shape == last.shape                      # gathered in dataset order, no padding
    np.testing.assert_allclose(ours, last, rtol=1e-5, atol=1e-6)


def test_killed_run_resumes_from_last_complete_checkpoint(small_demo, tmp_path):
    """SIGKILL a training after its first checkpoint; --resume auto finishes the run."""
    import signal
    import time
    args = [sys.executable, 'tools/train.py', str(CONFIG), '--seed', '0',
            *_short(tmp_path, small_demo, 3)]
    proc = subprocess.Popen(args, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (tmp_path / 'epoch_1.pth').exists() and time.time() < deadline:
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = sorted(p.name for p in tmp_path.glob('epoch_*.pth'))
    assert done and 'epoch_3.pth' not in done
    for name in done:                                       # every checkpoint left is complete
        load_checkpoint_file(tmp_path / name)
    resumed = _run(['tools/train.py', str(CONFIG), '--resume', '--seed', '0',
                    *_short(tmp_path, small_demo, 3)])
    log = resumed.stdout + resumed.stderr
    assert f'resuming from {(tmp_path / done[-1]).resolve()}' in log
    assert load_checkpoint_file(tmp_path / 'epoch_3.pth')['meta']['epoch'] == 3
