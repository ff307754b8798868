"""Checkpoint files: atomic writes, weights_only loading, latest link, resume lookup."""
import os
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

from skeletonagent.engine.checkpoint import (atomic_write_bytes, find_resume_checkpoint,
                                             load_checkpoint_file, update_latest_link)


class Evil:
    def __reduce__(self):
        return (os.system, ('echo pwned',))


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / 'a.pth'
    atomic_write_bytes(target, b'one')
    atomic_write_bytes(target, b'two')
    assert target.read_bytes() == b'two'
    assert [p.name for p in tmp_path.iterdir()] == ['a.pth']


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


def test_mmengine_style_checkpoint_loads_weights_only(tmp_path):
    hb = HistoryBuffer()
    hb.update(1.5)
    ckpt = dict(state_dict={'w': torch.ones(2)},
                meta=dict(epoch=3, seed=np.int64(7), arr=np.arange(3)),
                message_hub=dict(log_scalars={'train/loss': hb}))
    path = tmp_path / 'c.pth'
    torch.save(ckpt, path)
    out = load_checkpoint_file(path)
    assert out['meta']['epoch'] == 3 and torch.equal(out['state_dict']['w'], torch.ones(2))
    assert out['message_hub']['log_scalars']['train/loss'].current() == 1.5


def test_checkpoint_with_arbitrary_object_is_refused(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'payload': Evil()}, path)
    with pytest.raises(RuntimeError, match='weights_only'):
        load_checkpoint_file(path)


def test_truncated_checkpoint_is_named(tmp_path):
    path = tmp_path / 't.pth'
    torch.save({'state_dict': {'w': torch.zeros(1000)}}, path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(RuntimeError, match='t.pth'):
        load_checkpoint_file(path)


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
