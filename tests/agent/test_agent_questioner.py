"""The Questioner: confusion counting (official semantics), selection, all-reduce over ranks."""
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from skeletonagent.agent import OFFICIAL_SELECTION, ConfusionCounter, select_confused

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'bench'))
from questioner import official_loop  # noqa: E402  (the official per-sample loop, transcribed)

REPO = Path(__file__).resolve().parents[2]


def one_hot_logits(preds, num_classes):
    logits = torch.zeros(len(preds), num_classes)
    logits[torch.arange(len(preds)), torch.as_tensor(preds)] = 1.0
    return logits


def official_counts(batches, num_classes):
    """A direct transcription of the official per-sample double loop, for reference."""
    stats = np.zeros((num_classes, num_classes), dtype=np.int64)
    for logits, labels in batches:
        official_loop(logits.argmax(1).tolist(), labels.tolist(), stats)
    return stats


def official_class_list(stats):
    """A transcription of the official update_class_list (sorted dict items, top 10)."""
    out = []
    for row in stats:
        ranked = sorted(enumerate(row.tolist()), key=lambda kv: kv[1], reverse=True)
        out.append(sorted(cls for cls, _ in ranked[:10]))
    return out


# ---------------------------------------------------------------------- counting
def test_hand_made_batch_counts_both_directions():
    labels = torch.tensor([0, 0, 1, 2, 3])
    preds = [1, 0, 0, 2, 1]
    counter = ConfusionCounter(4)
    counter.update(one_hot_logits(preds, 4), labels)
    expected = np.zeros((4, 4), dtype=np.int64)
    # forward: sample of class i predicted as p != i -> (i, p)
    expected[0, 1] += 1; expected[1, 0] += 1; expected[3, 1] += 1  # noqa: E702
    # reverse: a sample of class j predicted as i -> (i, j), once per sample of class i
    # in the batch: two samples of class 0, so the class-1 sample predicted 0 adds 2.
    expected[0, 1] += 2
    expected[1, 0] += 1; expected[1, 3] += 1  # noqa: E702
    m = counter.matrix()
    np.testing.assert_array_equal(m, expected)
    assert m.dtype == np.int64 and np.all(np.diag(m) == 0)  # correct predictions: nothing
    assert counter.num_samples == 5
    np.testing.assert_array_equal(m, official_counts([(one_hot_logits(preds, 4), labels)], 4))

    once = ConfusionCounter(4, reverse='one')
    once.update(one_hot_logits(preds, 4), labels)
    assert once.matrix()[0, 1] == 2 and once.matrix()[1, 3] == 1
    forward = ConfusionCounter(4, reverse='none')
    forward.update(one_hot_logits(preds, 4), labels.view(-1, 1))  # N x 1 labels accepted
    assert forward.matrix().sum() == 3


def test_ties_take_the_first_maximum_and_batches_accumulate():
    counter = ConfusionCounter(3)
    logits = torch.tensor([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0]])
    counter.update(logits, torch.tensor([2, 0]))   # predictions 0 and 1
    counter.update(logits, torch.tensor([2, 0]))
    expected = official_counts([(logits, torch.tensor([2, 0]))] * 2, 3)
    np.testing.assert_array_equal(counter.matrix(), expected)
    counter.reset()
    assert counter.matrix().sum() == 0 and counter.num_samples == 0


def test_matches_official_loop_on_random_batches():
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.randn(24, 7, generator=gen), torch.randint(0, 7, (24,), generator=gen))
               for _ in range(6)]
    counter = ConfusionCounter(7)
    for logits, labels in batches:
        counter.update(logits, labels)
    np.testing.assert_array_equal(counter.matrix(), official_counts(batches, 7))


def closed_form_counts(preds, labels, num_classes):
    """The official double loop in closed form, for batches too large to loop over: a miss
    (label i, prediction p) adds 1 to (i, p); a sample of class j predicted as i adds, to
    (i, j), one count per sample of class i in the batch."""
    n = np.bincount(labels, minlength=num_classes)
    pairs = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(pairs, (labels, preds), 1)                       # pairs[label, prediction]
    np.fill_diagonal(pairs, 0)
    return pairs + n[:, None] * pairs.T


def test_closed_form_agrees_with_the_official_loop():
    gen = torch.Generator().manual_seed(2)
    logits, labels = torch.randn(30, 6, generator=gen), torch.randint(0, 6, (30,), generator=gen)
    np.testing.assert_array_equal(
        closed_form_counts(logits.argmax(1).numpy(), labels.numpy(), 6),
        official_counts([(logits, labels)], 6))


def test_large_batch_counts_like_the_closed_form():
    """One batch of 100000 samples of 120 classes (the update's speed: bench/questioner.py)."""
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(100_000, 120, generator=gen)
    labels = torch.randint(0, 120, (100_000,), generator=gen)
    counter = ConfusionCounter(120)
    counter.update(logits, labels)
    expected = closed_form_counts(logits.argmax(1).numpy(), labels.numpy(), 120)
    np.testing.assert_array_equal(counter.matrix(), expected)
    assert counter.num_samples == 100_000


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_cuda_counts_follow_the_logits_without_host_syncs():
    labels = torch.tensor([0, 0, 1, 2, 3])
    logits = one_hot_logits([1, 0, 0, 2, 1], 4)
    counter = ConfusionCounter(4)                       # starts on the CPU
    counter.update(logits.cuda(), labels.cuda())        # moves to the logits' device
    assert counter.device.type == 'cuda'
    torch.cuda.set_sync_debug_mode('error')
    try:
        counter.update(logits.cuda(), labels.cuda())
    finally:
        torch.cuda.set_sync_debug_mode('default')
    np.testing.assert_array_equal(counter.matrix(), 2 * official_counts([(logits, labels)], 4))


def test_bad_inputs_and_state_dict(tmp_path):
    counter = ConfusionCounter(4)
    with pytest.raises(ValueError, match='N x 4'):
        counter.update(torch.zeros(3, 5), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r'3 logits but labels of shape \(2,\)'):
        counter.update(torch.zeros(3, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match='integers'):
        counter.update(torch.zeros(3, 4), torch.zeros(3, 4))
    with pytest.raises(ValueError, match='reverse'):
        ConfusionCounter(4, reverse='twice')
    counter.update(one_hot_logits([1, 0, 3], 4), torch.tensor([0, 1, 2]))
    path = tmp_path / 'counter.pt'
    torch.save(counter.state_dict(), path)
    restored = ConfusionCounter(4)
    restored.load_state_dict(torch.load(path, weights_only=True))
    np.testing.assert_array_equal(restored.matrix(), counter.matrix())
    assert restored.num_samples == 3
    with pytest.raises(ValueError, match='this counter has 5 classes'):
        ConfusionCounter(5).load_state_dict(counter.state_dict())
    # Without a process group all_reduce is the local matrix.
    np.testing.assert_array_equal(counter.all_reduce(), counter.matrix())


# ---------------------------------------------------------------------- selection
def test_select_confused_ranking_ties_and_zeros():
    m = np.array([[9, 2, 5, 2, 0],
                  [0, 0, 0, 0, 0],
                  [1, 0, 0, 1, 3],
                  [0, 0, 0, 0, 7],
                  [4, 4, 4, 4, 4]])
    got = select_confused(m, k=3)
    # Never itself (row 0's diagonal 9 is ignored), ties by lower index, zeros left out,
    # class 1 (no confusions) absent.
    assert got == {0: [2, 1, 3], 2: [4, 0, 3], 3: [4], 4: [0, 1, 2]}
    assert select_confused(m, k=1) == {0: [2], 2: [4], 3: [4], 4: [0]}
    assert select_confused(m, k=0) == {}
    assert select_confused(torch.as_tensor(m), k=3) == got

    padded = select_confused(m, k=3, pad_to_k=True)
    assert padded[1] == [0, 2, 3] and padded[3] == [4, 0, 1] and padded[2] == [4, 0, 3]
    assert all(len(v) == 3 and cls not in v for cls, v in padded.items())
    assert select_confused(m, k=10, pad_to_k=True)[0] == [2, 1, 3, 4]  # k above C - 1
    assert select_confused(m, k=3, order='index')[2] == [0, 3, 4]
    with pytest.raises(ValueError, match='square'):
        select_confused(np.zeros((3, 4)))
    with pytest.raises(ValueError, match='order'):
        select_confused(m, order='name')


def test_official_selection_reproduces_update_class_list():
    gen = torch.Generator().manual_seed(3)
    batches = [(torch.randn(16, 14, generator=gen), torch.randint(0, 14, (16,), generator=gen))
               for _ in range(2)]
    counter = ConfusionCounter(14)
    for logits, labels in batches:
        counter.update(logits, labels)
    stats = counter.matrix()
    assert (stats > 0).sum(1).min() < 10  # some rows are padded with zeros
    got = select_confused(stats, **OFFICIAL_SELECTION)
    expected = official_class_list(stats)
    assert [got[c] for c in range(14)] == expected
    # With padding a quiet class may name itself, as the official code does.
    quiet = np.zeros((12, 12), dtype=np.int64)
    assert select_confused(quiet, **OFFICIAL_SELECTION)[0] == list(range(10))


# ---------------------------------------------------------------------- distributed
WORKER = textwrap.dedent('''
    import sys
    import numpy as np
    import torch
    import torch.distributed as dist
    from skeletonagent.agent import ConfusionCounter

    rank, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                            world_size=2)
    gen = torch.Generator().manual_seed(5)
    batches = [(torch.randn(20, 9, generator=gen), torch.randint(0, 9, (20,), generator=gen))
               for _ in range(7)]
    counter = ConfusionCounter(9)
    for b, (logits, labels) in enumerate(batches):
        if b % 2 == rank:                 # each rank trains on its own batches
            counter.update(logits, labels)
    local = counter.matrix()
    reduced = counter.all_reduce()
    np.savez(out, local=local, reduced=reduced, samples=counter.num_samples)
    dist.destroy_process_group()
''')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_all_reduce_over_two_gloo_ranks(tmp_path):
    script = tmp_path / 'worker.py'
    script.write_text(WORKER)
    port = str(free_port())
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO), os.environ.get('PYTHONPATH', '')]), OMP_NUM_THREADS='1')
    procs = [subprocess.Popen([sys.executable, str(script), str(rank), port,
                               str(tmp_path / f'rank{rank}.npz')], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for rank in range(2)]
    outputs = []
    for proc in procs:
        try:
            outputs.append(proc.communicate(timeout=120)[0].decode(errors='replace'))
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
    assert all(p.returncode == 0 for p in procs), '\n'.join(outputs)

    gen = torch.Generator().manual_seed(5)
    batches = [(torch.randn(20, 9, generator=gen), torch.randint(0, 9, (20,), generator=gen))
               for _ in range(7)]
    single = ConfusionCounter(9)
    for logits, labels in batches:
        single.update(logits, labels)
    results = [np.load(tmp_path / f'rank{rank}.npz') for rank in range(2)]
    for res in results:
        np.testing.assert_array_equal(res['reduced'], single.matrix())
        assert int(res['samples']) == 140
    assert not np.array_equal(results[0]['local'], single.matrix())
    np.testing.assert_array_equal(results[0]['local'] + results[1]['local'], single.matrix())
