"""When the agent asks and when its answers are used: our default loop against the official one
(``agent.official=True``): round epochs, the epoch the texts take effect, which counts a round
sees (epochs, ranks)."""
from __future__ import annotations

import json
import logging
import os
import socket
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from agent_fakes import FakeRecognizer, step_outputs

from skeletonagent.agent.hook import REPORT_SUBDIR, AgentHook

NUM_CLASSES = 12    # the demo label map


def _texts(model) -> list:
    """The descriptions the model was given last."""
    return model.installed[-1][0]


def _hook(official: bool, interval: int = 1, **kw) -> AgentHook:
    return AgentHook(interval=interval, layout='nturgb+d', modality='j', top_k=2, label_map='demo',
                     official=official, final_wait=30, llm=dict(type='Offline'), round_nice=0,
                     **kw)


def _runner(tmp_path, max_epochs: int):
    return SimpleNamespace(model=FakeRecognizer(NUM_CLASSES, embedding_dim=None), work_dir=str(tmp_path),
                           epoch=0, max_epochs=max_epochs,
                           logger=logging.getLogger('test_agent_schedule'))


def _step(hook, runner, pairs):
    """One training step whose clean samples are (label, predicted class) pairs."""
    labels = torch.tensor([p[0] for p in pairs])
    logits = torch.full((len(pairs), NUM_CLASSES), -5.0)
    logits[torch.arange(len(pairs)), torch.tensor([p[1] for p in pairs])] = 5.0
    hook.after_train_iter(runner, 0, outputs=step_outputs(logits, labels))


def _round_matrix(tmp_path, index: int = 1) -> np.ndarray:
    return np.load(tmp_path / REPORT_SUBDIR / f'round_{index:03d}_confusion.npy')


# ------------------------------------------------------------------------------ round epochs
@pytest.mark.parametrize('official,interval,max_epochs,expected', [
    (True, 5, 300, list(range(5, 150, 5))),        # UAV CSv1: the official head stops at 145
    (False, 5, 300, list(range(5, 300, 5))),       # ours asks until the end
    (True, 5, 150, list(range(5, 150, 5))),
    (False, 5, 150, list(range(5, 150, 5))),       # never after the last epoch
    (True, 50, 150, [50, 100]),                    # Kinetics
    (True, 5, 30, [5, 10, 15, 20, 25]),
    (False, 0, 150, []),
])
def test_round_epochs(official, interval, max_epochs, expected):
    assert _hook(official, interval).round_epochs(max_epochs) == expected


def test_schedule_is_described():
    assert 'official: synchronous' in _hook(True, 5).schedule_text(300)
    assert 'after epochs 5, 10, 15, ..., 145' in _hook(True, 5).schedule_text(300)
    assert 'background' in _hook(False, 5).schedule_text(150)
    assert _hook(False, 0).schedule_text(150).startswith('no rounds')


# ------------------------------------------------------------- when the texts take effect
def test_official_round_texts_are_used_from_the_next_epoch(tmp_path):
    hook, runner = _hook(official=True), _runner(tmp_path, max_epochs=3)
    hook.before_train(runner)
    first = _texts(runner.model)
    _step(hook, runner, [(6, 7), (7, 6)])
    hook.after_train_epoch(runner)                  # end of epoch 1: round, installed at once
    assert hook.rounds_done == 1 and hook.state.version == 1
    assert _texts(runner.model) != first      # epoch 2 trains with the new texts
    hook.after_train(runner)


def test_default_round_texts_are_used_from_the_epoch_after_next(tmp_path):
    hook, runner = _hook(official=False), _runner(tmp_path, max_epochs=3)
    hook.before_train(runner)
    first = _texts(runner.model)
    _step(hook, runner, [(6, 7), (7, 6)])
    hook.after_train_epoch(runner)                  # end of epoch 1: round starts, in the background
    hook._future.result(timeout=60)
    assert _texts(runner.model) == first and hook.state.version == 0
    runner.epoch = 1
    hook.after_train_epoch(runner)                  # end of epoch 2: installed for epoch 3
    assert hook.state.version == 1 and _texts(runner.model) != first
    hook.after_train(runner)


# ------------------------------------------------------------------ which counts a round sees
@pytest.mark.parametrize('official', [True, False])
def test_counts_a_round_sees_over_epochs(tmp_path, official):
    hook, runner = _hook(official=official, interval=2), _runner(tmp_path, max_epochs=3)
    hook.before_train(runner)
    _step(hook, runner, [(1, 2)])                   # epoch 1
    hook.after_train_epoch(runner)
    runner.epoch = 1
    _step(hook, runner, [(3, 4)])                   # epoch 2, then the round
    hook.after_train_epoch(runner)
    if hook._future is not None:
        hook._future.result(timeout=60)
    matrix = _round_matrix(tmp_path)
    assert matrix[3, 4] == 1
    assert matrix[1, 2] == (0 if official else 1)  # official: the last epoch only
    hook.after_train(runner)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _two_rank_worker(rank: int, port: int, work_dir: str, official: bool) -> None:
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                            world_size=2)
    try:
        hook, runner = _hook(official=official), _runner(work_dir, max_epochs=3)
        hook.before_train(runner)
        # rank 0 confuses 1 -> 2, rank 1 confuses 3 -> 4 (twice)
        _step(hook, runner, [(1, 2)] if rank == 0 else [(3, 4), (3, 4)])
        hook.after_train_epoch(runner)
        if not official:
            if rank == 0:
                hook._future.result(timeout=60)
            runner.epoch = 1
            hook.after_train_epoch(runner)          # installs on both ranks
        with open(os.path.join(work_dir, f'digest{rank}.json'), 'w') as f:
            json.dump(dict(hook.state.digests(), installed=_texts(runner.model)), f)
        hook.after_train(runner)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize('official', [True, False])
def test_two_ranks_counts_and_identical_texts(tmp_path, official):
    """Official: the round sees rank 0's shard only; ours: the counts of both ranks summed.
    Either way both ranks install the very same texts."""
    import torch.multiprocessing as mp
    mp.start_processes(_two_rank_worker, args=(_free_port(), str(tmp_path), official),
                       nprocs=2, join=True, start_method='fork')
    matrix = _round_matrix(tmp_path)
    assert matrix[1, 2] == 1
    assert matrix[3, 4] == (0 if official else 2)
    digests = [json.loads((tmp_path / f'digest{r}.json').read_text()) for r in (0, 1)]
    assert digests[0] == digests[1] and digests[0]['version'] == 1


# ------------------------------------------------------------------ the two schedule classes
class _Counter:
    """Records which counts a schedule reads and when it resets them."""

    def __init__(self):
        self.calls = []

    def matrix(self):
        self.calls.append('matrix')
        return np.eye(NUM_CLASSES)

    def all_reduce(self):
        self.calls.append('all_reduce')
        return np.eye(NUM_CLASSES) * 2

    def reset(self):
        self.calls.append('reset')


def test_the_hook_picks_its_schedule_once():
    from skeletonagent.agent.schedule import BackgroundSchedule, OfficialSchedule
    official, ours, stepped = _hook(True), _hook(False), _hook(False, background=False)
    assert isinstance(official.schedule, OfficialSchedule) and official.schedule.blocking
    assert official.schedule.executor() is None and not official.background
    assert isinstance(ours.schedule, BackgroundSchedule) and not ours.schedule.blocking
    assert isinstance(stepped.schedule, BackgroundSchedule) and stepped.schedule.blocking
    assert stepped.schedule.executor() is None
    executor = ours.schedule.executor()
    try:
        assert executor.submit(lambda: 7).result(timeout=10) == 7
    finally:
        executor.shutdown()
    import inspect

    from skeletonagent.agent import hook as hook_module
    assert 'if self.official' not in inspect.getsource(hook_module)


def test_which_counts_each_schedule_reads_and_whom_it_asks_about():
    from skeletonagent.agent.schedule import schedule_for
    official = schedule_for(True, interval=5, top_k=2)
    ours = schedule_for(False, interval=5, top_k=2)
    counter = _Counter()
    assert official.counts(counter)[0, 0] == 1 and counter.calls == ['matrix']
    official.epoch_without_round(counter)
    assert counter.calls == ['matrix', 'reset']        # a round sees only its epoch
    counter.calls.clear()
    assert ours.counts(counter)[0, 0] == 2 and counter.calls == ['all_reduce']
    ours.epoch_without_round(counter)
    assert counter.calls == ['all_reduce']             # counts run on to the next round
    matrix = np.zeros((4, 4))
    matrix[0, 1] = 3
    assert ours.select(matrix) == {0: [1]}
    # the official selection: k classes always, the class itself included, by index
    assert official.select(matrix)[0] == [0, 1] and len(official.select(matrix)[2]) == 2
    assert official.official_history and not ours.official_history


# ------------------------------------------------------- masks follow the model's layout
def test_masks_and_prompts_follow_the_models_layout(tmp_path, caplog):
    from skeletonagent.skeleton import get_layout
    hook = AgentHook(interval=1, layout='coco', modality='b', top_k=2, label_map='demo',
                     final_wait=30, llm=dict(type='Offline'), round_nice=0)
    runner = _runner(tmp_path, max_epochs=2)
    runner.model.backbone = SimpleNamespace(graph=SimpleNamespace(layout=get_layout('nturgb+d')),
                                            llm_modality='j')
    with caplog.at_level(logging.WARNING, logger='test_agent_schedule'):
        hook.before_train(runner)
    assert hook.mask_format.layout.name == 'nturgb+d' and hook.mask_format.stream == 'j'
    assert runner.model.installed[-1][1].shape == (NUM_CLASSES, 25, 25)
    assert "'coco' / modality 'b'" in caplog.text and "'nturgb+d' / 'j'" in caplog.text
    hook.after_train(runner)


def test_a_masks_file_of_another_layout_is_refused(tmp_path):
    masks = tmp_path / 'masks.npy'
    np.save(masks, np.zeros((NUM_CLASSES, 17, 17), dtype=np.float32))
    hook = AgentHook(interval=0, layout='nturgb+d', modality='j', label_map='demo',
                     llm=dict(type='Offline'), masks=str(masks))
    runner = _runner(tmp_path, max_epochs=1)
    with pytest.raises(ValueError, match=r"shape \(12, 17, 17\), expected \(12, 25, 25\) "
                                         r"\(classes, joints of layout 'nturgb\+d'"):
        hook.before_train(runner)
