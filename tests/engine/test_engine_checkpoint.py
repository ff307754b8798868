"""Checkpoint files: atomic writes, weights_only loading, latest link, resume lookup."""
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

from skeletonagent.engine.checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    PlainCheckpointHook,
    atomic_write_bytes,
    find_resume_checkpoint,
    load_checkpoint_file,
    load_model_weights,
    rebuild_history_buffer,
    update_latest_link,
)


class Evil:
    def __reduce__(self):
        return (os.system, ('echo pwned',))


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / 'a.pth'
    atomic_write_bytes(target, b'one')
    atomic_write_bytes(target, b'two')
    assert target.read_bytes() == b'two'
    assert [p.name for p in tmp_path.iterdir()] == ['a.pth']


@pytest.mark.parametrize('umask, mode', [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_write_follows_the_umask(tmp_path, umask, mode):
    """Checkpoints, predictions and transcripts get the permissions ``open()`` would give
    (0666 less the umask), like the logs: collaborators on a shared server can read them."""
    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / 'a.pth', b'one')
        atomic_write_bytes(tmp_path / 'a.pth', b'two')          # replacing: same mode
    finally:
        os.umask(old)
    assert (tmp_path / 'a.pth').stat().st_mode & 0o777 == mode


def test_failed_write_keeps_previous_file(tmp_path, monkeypatch):
    target = tmp_path / 'a.pth'
    atomic_write_bytes(target, b'good')

    def no_space(*args, **kwargs):
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(os, 'fsync', no_space)
    with pytest.raises(OSError, match='a.pth'):
        atomic_write_bytes(target, b'x' * 100)
    assert target.read_bytes() == b'good'
    assert [p.name for p in tmp_path.iterdir()] == ['a.pth']


def test_plain_checkpoint_needs_no_allow_list(tmp_path):
    """What mmengine puts into a checkpoint (log buffers, numpy scalars and arrays) becomes
    plain data torch's own weights_only loader reads, and the buffers come back on load."""
    hb = HistoryBuffer()
    for value, count in ((1.5, 1), (0.5, 3)):
        hb.update(value, count)
    ckpt = dict(state_dict={'w': torch.ones(2)},
                meta=dict(epoch=3, seed=np.int64(7), arr=np.arange(3), best=np.float64(0.25),
                          classes=('a', 'b'), work_dir=tmp_path),
                message_hub=dict(log_scalars={'train/loss': hb}, runtime_info={},
                                 resumed_keys={}))
    PlainCheckpointHook().before_save_checkpoint(None, ckpt)
    path = tmp_path / 'c.pth'
    torch.save(ckpt, path)
    out = torch.load(path, weights_only=True)          # no allow-list: plain data only
    assert out['meta']['seed'] == 7 and type(out['meta']['seed']) is int
    assert out['meta']['best'] == 0.25 and out['meta']['work_dir'] == str(tmp_path)
    assert torch.equal(out['meta']['arr'], torch.arange(3))
    assert out['meta']['classes'] == ('a', 'b')
    assert out['message_hub']['log_scalars']['train/loss'] == dict(
        log_history=[1.5, 0.5], count_history=[1, 3], max_length=1000000)
    PlainCheckpointHook().after_load_checkpoint(None, out)
    restored = out['message_hub']['log_scalars']['train/loss']
    assert isinstance(restored, HistoryBuffer)
    assert restored.current() == 0.5 and restored.mean() == pytest.approx(0.5)  # 2.0 / 4 counts
    assert restored.data[1].tolist() == [1, 3]


class _LegacyBuffer:
    """How checkpoints written before the plain format pickled a log buffer."""

    def __reduce__(self):
        return rebuild_history_buffer, (10, np.array([2.0, 4.0]), np.array([1, 1]))


def test_numpy_and_legacy_checkpoints_load_without_global_registration(tmp_path):
    """PYSKL / official checkpoints hold numpy scalars; ours from before the plain format a
    rebuild call. Our loader reads both; torch's global allow-list is left as it was."""
    path = tmp_path / 'old.pth'
    torch.save(dict(state_dict={'w': torch.zeros(1)},
                    meta=dict(hook_msgs=dict(best_score=np.float64(0.9)), arr=np.arange(2)),
                    message_hub=dict(log_scalars={'train/loss': _LegacyBuffer()})), path)
    registered = torch.serialization.get_safe_globals()   # a runner built here adds some
    torch.serialization.clear_safe_globals()
    try:
        with pytest.raises(pickle.UnpicklingError):
            torch.load(path, weights_only=True)
        out = load_checkpoint_file(path)
        assert torch.serialization.get_safe_globals() == []
    finally:
        torch.serialization.add_safe_globals(registered)
    assert out['meta']['hook_msgs']['best_score'] == 0.9
    assert out['message_hub']['log_scalars']['train/loss'] == dict(
        log_history=[2.0, 4.0], count_history=[1, 1], max_length=10)


def test_checkpoint_with_arbitrary_object_is_refused(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'payload': Evil()}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint_file(path)
    assert str(info.value) == (
        f'checkpoint {path} holds a reference to posix.system, which '
        'torch.load(weights_only=True) refuses: only tensors, numbers, strings and containers '
        'of them are read (unpickling other objects could run code); it was not loaded')


def test_truncated_checkpoint_is_named(tmp_path):
    path = tmp_path / 't.pth'
    torch.save({'state_dict': {'w': torch.zeros(1000)}}, path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint_file(path)
    assert str(info.value) == (f'checkpoint {path} is truncated or corrupt: PytorchStreamReader '
                               'failed reading zip archive: failed finding central directory')


def _zip_without_data(path):
    import zipfile
    with zipfile.ZipFile(path, 'w') as archive:
        archive.writestr('notes.txt', 'x')


NOT_CHECKPOINTS = {
    'empty': (lambda p: p.write_bytes(b''), 'it is empty'),
    'text': (lambda p: p.write_text('epoch 1: top1 0.9\n'), 'it is a text file'),
    'pickle': (lambda p: p.write_bytes(pickle.dumps({'annotations': [np.zeros(2)]})),
               'it is a plain Python pickle (an annotation, prediction or score file?), not '
               'written by torch.save'),
    'npy': (lambda p: np.save(open(p, 'wb'), np.zeros(3)), 'it is a numpy .npy array'),
    'zip': (_zip_without_data, 'it is a zip archive without the data.pkl torch.save writes'),
}


@pytest.mark.parametrize('kind', list(NOT_CHECKPOINTS))
def test_file_that_is_not_a_checkpoint_says_so_in_one_line(kind, tmp_path):
    write, what = NOT_CHECKPOINTS[kind]
    path = tmp_path / 'model.pth'
    write(path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint_file(path)
    assert str(info.value) == (
        f'{path} is not a PyTorch checkpoint: {what}; give a .pth file written by training '
        '(work_dir/latest.pth, epoch_N.pth, best_*.pth)')
    assert isinstance(info.value, ValueError)


def test_mismatch_is_counted_with_the_first_few_keys():
    """Hundreds of mismatched weights: one line of counts, then at most SHOWN_KEYS of each."""
    model = torch.nn.Sequential(*[torch.nn.Linear(2, 2) for _ in range(8)])
    state = {f'{i}.{p}': torch.zeros(3, 3) if p == 'weight' else torch.zeros(3)
             for i in range(8) for p in ('weight', 'bias')}         # 16 shape mismatches
    state.pop('7.bias')                                             # stays missing: 15 + 1
    state['extra.weight'] = torch.zeros(1)                          # 1 unexpected
    with pytest.raises(CheckpointMismatchError) as info:
        load_model_weights(model, {'state_dict': state}, name='other.pth')
    lines = str(info.value).splitlines()
    assert lines[0] == ('checkpoint other.pth does not fit the model (Sequential built from '
                        'the config): 15 size mismatches, 1 missing key, 1 unexpected key; is '
                        'it a checkpoint of this config (backbone, stream, number of classes)?')
    assert lines[1:8] == ['  size mismatches (checkpoint shape, model shape):',
                          '    0.weight: [3, 3] vs [2, 2]', '    0.bias: [3] vs [2]',
                          '    1.weight: [3, 3] vs [2, 2]', '    1.bias: [3] vs [2]',
                          '    2.weight: [3, 3] vs [2, 2]', '    ... and 10 more']
    assert lines[8:] == ['  missing keys: in the model, not in the checkpoint:', '    7.bias',
                         '  unexpected keys: in the checkpoint, not in the model:',
                         '    extra.weight']
    assert len(info.value.shape_mismatches) == 15
    assert info.value.missing_keys == ['7.bias']
    assert info.value.unexpected_keys == ['extra.weight']


def test_latest_link_and_resume_lookup(tmp_path):
    assert find_resume_checkpoint(tmp_path) is None
    for n in (1, 2):
        (tmp_path / f'epoch_{n}.pth').write_bytes(b'x')
    update_latest_link(tmp_path, tmp_path / 'epoch_1.pth')
    update_latest_link(tmp_path, tmp_path / 'epoch_2.pth')
    assert os.readlink(tmp_path / 'latest.pth') == 'epoch_2.pth'
    assert find_resume_checkpoint(tmp_path) == (tmp_path / 'epoch_2.pth').resolve()


def test_resume_lookup_falls_back_to_last_checkpoint_record(tmp_path):
    (tmp_path / 'epoch_4.pth').write_bytes(b'x')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'epoch_4.pth'))
    assert find_resume_checkpoint(tmp_path) == tmp_path / 'epoch_4.pth'
    (tmp_path / 'epoch_4.pth').unlink()
    assert find_resume_checkpoint(tmp_path) is None


# ------------------------------------------------------------------ a real run (slow)
ROOT = Path(__file__).resolve().parents[2]

FRESH_LOAD = '''
import sys, torch
ckpt = torch.load(sys.argv[1])               # torch's default: weights_only=True
assert not [m for m in sys.modules if m.startswith(('skeletonagent', 'mmengine'))]
hub = ckpt['message_hub']['log_scalars']
print(len(hub['train/loss']['log_history']), ckpt['meta']['epoch'])
'''


def _train(work_dir: Path, data: Path, epochs: int, *extra: str) -> None:
    env = dict(os.environ, OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1', SKELETONAGENT_PROGRESS='0')
    options = [f'work_dir={work_dir}', f'total_epochs={epochs}', 'data.workers_per_gpu=0',
               'log_config.interval=1']
    for split in ('train', 'val', 'test'):
        options += [f'data.{split}.type=PoseDataset', f'data.{split}.ann_file={data}']
    proc = subprocess.run([sys.executable, 'tools/train.py', 'configs/demo/j.py', '--seed', '0',
                           *extra, '--cfg-options', *options], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]


@pytest.mark.slow
def test_training_checkpoints_load_anywhere_and_resume_restores_the_log_buffers(demo_run_copy,
                                                                               tmp_path):
    """``torch.load('latest.pth')`` in a fresh interpreter (neither our package nor mmengine
    imported) reads a training checkpoint; ``--resume`` still continues mmengine's log
    buffers: after 2 + 1 epochs the loss history holds 3 epochs of iterations. (The 2 epochs
    are a copy of the shared demo run, tests/conftest.py.)"""
    data, work_dir = demo_run_copy.data, demo_run_copy.work_dir

    def fresh_load(name: str) -> tuple[int, int]:
        out = subprocess.run([sys.executable, '-c', FRESH_LOAD, str(work_dir / name)],
                             cwd=tmp_path, capture_output=True, text=True, timeout=120,
                             env=dict(os.environ, PYTHONPATH=''))
        assert out.returncode == 0, out.stderr[-3000:]
        entries, epoch = out.stdout.split()
        return int(entries), int(epoch)
    two, epoch = fresh_load('latest.pth')
    assert epoch == 2 and two > 0 and two % 2 == 0          # the same iterations each epoch
    # checkpoints, predictions and logs alike follow the umask (here the test's)
    modes = {p.name: p.stat().st_mode & 0o777 for p in
             [work_dir / 'epoch_2.pth', *work_dir.glob('*/*.log'), work_dir / 'run_info.json']}
    assert len(set(modes.values())) == 1, modes
    _train(work_dir, data, 3, '--resume', 'auto')
    three, epoch = fresh_load('latest.pth')
    assert epoch == 3 and three == two // 2 * 3


def test_checkpoint_of_another_text_encoder_gives_the_override_to_pass():
    """A paper config trained with the documented MiniLM switch, tested without it: the
    message names the text encoder and gives the options it was trained with."""
    from skeletonagent.engine import load_config
    from skeletonagent.engine.checkpoint import check_checkpoint_config
    paper = Path(__file__).resolve().parents[2] / 'configs' / 'ntu60_xsub' / 'j.py'
    switch = {'model.text_encoder.type': 'MiniLM', 'model.backbone.text_dim': 384,
              'model.backbone.text_key': 'MiniLM'}
    trained = load_config(paper, switch)
    ckpt = {'meta': {'cfg': trained.pretty_text}}
    with pytest.raises(CheckpointMismatchError) as info:
        check_checkpoint_config(ckpt, load_config(paper), 'j_minilm.pth')
    message = str(info.value)
    assert message.startswith('checkpoint j_minilm.pth was trained with another text encoder')
    assert "model.text_encoder.type: checkpoint 'MiniLM', config 'CLIP'" in message
    assert message.endswith('--cfg-options model.backbone.text_dim=384 '
                            'model.backbone.text_key=MiniLM model.text_encoder.type=MiniLM')
    assert 'another stream or dataset' not in message
    check_checkpoint_config(ckpt, load_config(paper, switch), 'j_minilm.pth')   # same: passes
    # a checkpoint of another stream still says so
    other = load_config(paper, {**switch, 'model.backbone.llm_modality': 'b'})
    with pytest.raises(CheckpointMismatchError, match='another stream or dataset'):
        check_checkpoint_config({'meta': {'cfg': other.pretty_text}}, load_config(paper, switch),
                                'b.pth')
