"""The demo model learns: an overfit check, so that a model that stops learning fails CI.

The demo recognizer of ``configs/demo/j.py`` (its backbone, head, losses with mixup, the
frozen MiniLM text encoder and the Offline agent's initial descriptions and masks) takes
``STEPS`` training steps, through mmengine's ``train_step`` with the config's optimizer, on
one fixed batch of the 12 demo classes (one generated sample each, through the training
pipeline once). Then, in eval mode (BatchNorm running statistics), it must classify that
batch far above chance (1/12): a broken gradient path, loss or optimizer step leaves it near
chance. Seeded, one thread, about 20 s on 2 cores; with seeds 0-3 the accuracy after 45
steps was 11/12 or 12/12 on the reference machine, so the bar of 6/12 leaves a wide margin.
"""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
STEPS = 45
MIN_ACCURACY = 0.5            # chance: 1/12


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_demo_model_overfits_a_fixed_batch(tmp_path, one_thread, monkeypatch):
    from mmengine.config import Config
    from mmengine.optim import OptimWrapper

    from skeletonagent.agent import build_initial_agent
    from skeletonagent.datasets import PoseDataset
    from skeletonagent.datasets.synthetic import ensure_demo_data
    from skeletonagent.engine.runner import build_model

    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    cfg = Config.fromfile(str(ROOT / 'configs' / 'demo' / 'j.py'))
    num_classes = cfg.model.cls_head.num_classes
    data = ensure_demo_data(tmp_path / 'demo.pkl', num_train_per_class=1, num_val_per_class=1,
                            num_test_per_class=1)
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    train = PoseDataset(str(data), cfg.train_pipeline, split='train')
    samples = [train[i] for i in range(len(train))]
    batch = dict(keypoint=torch.stack([s['keypoint'] for s in samples]),
                 label=torch.tensor([s['label'] for s in samples]))
    assert sorted(batch['label'].tolist()) == list(range(num_classes))

    model = build_model(cfg, for_training=True)
    state = build_initial_agent(cfg.agent.to_dict(), num_classes, cfg.graph, cfg.modality,
                                tmp_path / 'work').state
    model.set_agent_state(state.descriptions, state.masks)
    opt = cfg.optimizer
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=opt.lr, momentum=opt.momentum,
                                           weight_decay=opt.weight_decay, nesterov=opt.nesterov))
    model.train()
    losses = [float(model.train_step(batch, wrapper)['loss_cls'].detach()) for _ in range(STEPS)]

    model.eval()
    with torch.no_grad():
        scores = model(batch['keypoint'], mode='tensor')
    accuracy = (scores.argmax(1) == batch['label']).float().mean().item()
    assert accuracy >= MIN_ACCURACY, \
        f'{accuracy:.3f} of the batch right after {STEPS} steps (chance {1 / num_classes:.3f})'
    assert losses[-1] < 0.25 * losses[0], losses
