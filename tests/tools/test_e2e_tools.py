"""End to end through the command-line tools, on the embedded demo (short runs).

These run the real scripts in subprocesses, as a user would. The trained run is the shared
``demo_run`` (tests/conftest.py: ``tools/train.py --validate --test-last --test-best``, 2
epochs): its checkpoints, logs, dumped config, agent transcripts and predictions; test →
the same predictions, with 1 and 2 processes; resume (in a copy of the run); a 2-process
gloo training. A training killed and resumed is tests/faults/test_kill.py's.
"""
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tool_env  # the environment every tool subprocess of the suite gets

from skeletonagent.engine.checkpoint import load_checkpoint_file

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / 'configs' / 'demo' / 'j.py'

pytestmark = pytest.mark.slow


def _short(work_dir: Path, data: Path, epochs: int) -> list[str]:
    """cfg-options that make the demo a seconds-long run on a tiny copy of the data."""
    return ['--cfg-options', f'work_dir={work_dir}', f'total_epochs={epochs}',
            f'data.train.ann_file={data}', f'data.val.ann_file={data}',
            f'data.test.ann_file={data}', 'data.workers_per_gpu=0', 'log_config.interval=5']


def _run(args, timeout=300):
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=tool_env(), capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def test_train_writes_checkpoints_logs_and_predictions(demo_run):
    work_dir = demo_run.work_dir
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
    data = pickle.loads(demo_run.data.read_bytes())
    assert len(preds) == len(data['split']['test'])
    assert all(p.shape == (12,) for p in preds)
    np.testing.assert_allclose(np.stack(preds).sum(1), 1.0, rtol=1e-4)
    # the agent wrote one transcript per class
    assert len(list((work_dir / 'agent' / 'transcripts').glob('*.txt'))) == 12
    # what the run used: in the log at start, in run_info.json and in the report
    info = json.loads((work_dir / 'run_info.json').read_text(encoding='utf-8'))['lines']
    assert info['batch and lr'] == '32 per process x 1 process = 32; lr 0.1 (config lr 0.1 ' \
                                   'for a batch of 32, scaled by 1)'
    assert info['agent texts'] == "dialogues 12 generated at start by Offline"
    assert info['agent LLM'] == 'Offline' and info['agent prompts'] == 'ours'
    assert info['agent masks'].startswith('built from the dialogues by the Selector, sha256 ')
    # the CPU and the instruction set oneDNN ran its kernels with (AVX2, AVX-512, AMX, ...)
    isa = r'(AMX|AVX-512|AVX2|AVX|SSE4\.1|below AVX2)'
    assert re.fullmatch(rf'.+; oneDNN kernels: {isa} \(.+\)', info['cpu']), info['cpu']
    log = next(work_dir.glob('*/*.log')).read_text()
    assert f"cpu: {info['cpu']}" in log
    assert 'this run uses:' in log and info['agent masks'] in log
    html = (work_dir / 'report' / 'index.html').read_text(encoding='utf-8')
    assert 'What this run used' in html and info['agent masks'] in html


def test_checkpoint_is_weights_only_and_has_no_text_encoder(demo_run):
    work_dir = demo_run.work_dir
    ckpt = load_checkpoint_file(work_dir / 'epoch_2.pth')
    keys = list(ckpt['state_dict'])
    assert 'backbone.examplar' in keys and 'cls_head.fc_cls.weight' in keys
    assert not any('text_encoder' in k for k in keys)
    assert ckpt['meta']['epoch'] == 2
    state = ckpt['agent_state']
    assert len(state['descriptions']) == 12
    assert torch.equal(ckpt['state_dict']['backbone.examplar'].float(),
                       torch.as_tensor(state['masks']).float())


def test_tools_test_reproduces_last_predictions(demo_run, tmp_path):
    work_dir = demo_run.work_dir
    out = tmp_path / 'res.pkl'
    proc = _run(['tools/test.py', str(CONFIG), str(work_dir / 'epoch_2.pth'), '--out', str(out),
                 '--eval', 'top_k_accuracy', 'mean_class_accuracy',
                 *_short(tmp_path / 't', demo_run.data, 1)])
    assert 'acc/top1' in proc.stdout + proc.stderr
    ours = np.stack(pickle.loads(out.read_bytes()))
    last = np.stack(pickle.loads((work_dir / 'last_pred.pkl').read_bytes()))
    np.testing.assert_allclose(ours, last, rtol=1e-5, atol=1e-6)


def test_resume_auto_continues_from_latest(demo_run_copy):
    work_dir = demo_run_copy.work_dir
    proc = _run(['tools/train.py', str(CONFIG), '--resume', 'auto', '--seed', '0',
                 *_short(work_dir, demo_run_copy.data, 3)])
    log = proc.stdout + proc.stderr
    assert f'resuming from {(work_dir / "epoch_2.pth").resolve()}' in log
    assert 'Epoch(train) [3]' in log and 'Epoch(train) [1]' not in log
    # no warning about what every resume and every documented work_dir= override does
    assert 'resumed key' not in log
    assert 'cls_head.work_dir' not in log
    ckpt = load_checkpoint_file(work_dir / 'epoch_3.pth')
    assert ckpt['meta']['epoch'] == 3
    assert os.readlink(work_dir / 'latest.pth') == 'epoch_3.pth'


def test_dist_train_two_gloo_processes(demo_data, tmp_path):
    env = tool_env()
    proc = subprocess.run(['bash', 'tools/dist_train.sh', str(CONFIG), '2', '--seed', '0',
                           *_short(tmp_path, demo_data, 1)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert (tmp_path / 'epoch_1.pth').is_file()
    log = next(tmp_path.glob('*/*.log')).read_text()
    assert 'Distributed training: True' in log and 'Epoch(train) [1]' in log
    assert 'broadcast_buffers' not in proc.stdout + proc.stderr     # torch's FutureWarning
    # the lr follows the total batch: 2 processes of 32 at the demo's lr for 32
    info = json.loads((tmp_path / 'run_info.json').read_text(encoding='utf-8'))
    assert info['processes'] == 2 and info['total_batch'] == 64
    assert info['lr'] == pytest.approx(0.2)


def test_dist_test_two_processes_matches_single(demo_run, tmp_path):
    work_dir = demo_run.work_dir
    out = tmp_path / 'dist.pkl'
    proc = subprocess.run(['bash', 'tools/dist_test.sh', str(CONFIG), str(work_dir / 'epoch_2.pth'),
                           '2', '--out', str(out), *_short(tmp_path / 't', demo_run.data, 1)],
                          cwd=ROOT, env=tool_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    ours = np.stack(pickle.loads(out.read_bytes()))
    last = np.stack(pickle.loads((work_dir / 'last_pred.pkl').read_bytes()))
    assert ours.shape == last.shape                      # gathered in dataset order, no padding
    np.testing.assert_allclose(ours, last, rtol=1e-5, atol=1e-6)
