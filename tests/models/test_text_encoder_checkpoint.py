"""A text encoder trained with the model (the official recipe) is saved in checkpoints, so a
resumed run continues with the text tower it had; a frozen one is not saved."""
from __future__ import annotations

import warnings

import torch
import torch.nn as nn

from skeletonagent.models.text.base import TextEncoder
from skeletonagent.registry import MODELS, TEXT_ENCODERS


@TEXT_ENCODERS.register_module(force=True)
class TinyTrainableEncoder(TextEncoder):
    """Characters hashed into a bag, then a linear projection (the trainable part)."""

    key = 'tiny'

    def __init__(self, dim: int = 8, trainable: bool = False) -> None:
        super().__init__(trainable=trainable)
        self.dim = dim
        self.proj = nn.Linear(16, dim)
        self._freeze()

    def _encode_batch(self, texts):
        bags = torch.zeros(len(texts), 16, device=self.proj.weight.device)
        for i, text in enumerate(texts):
            for ch in text:
                bags[i, ord(ch) % 16] += 1
        return self.proj(bags)


def _model(trainable: bool):
    import skeletonagent.models  # noqa: F401
    torch.manual_seed(0)
    cfg = dict(type='RecognizerGCN',
               backbone=dict(type='GCN_Module_LLM', num_classes=5, base_channels=8, num_stages=4,
                             inflate_stages=[3, 4], down_stages=[3], text_dim=8, text_key='tiny',
                             tcn_ms_cfg=[(3, 1), (3, 2), ('max', 3), '1x1'],
                             graph_cfg=dict(layout='nturgb+d', mode='spatial')),
               cls_head=dict(type='SimpleHead', joint_cfg='nturgb+d', num_classes=5, in_channels=32,
                             weight_1=0.2, weight_2=0.5),
               text_encoder=dict(type='TinyTrainableEncoder', dim=8, trainable=trainable))
    model = MODELS.build(cfg)
    model.set_agent_state([f'class {i} moves' for i in range(5)], None)
    return model


def _train_one_step(model):
    model.init_text_encoder()
    model.train()
    optim = torch.optim.SGD(model.parameters(), lr=0.5)
    losses = model(torch.randn(4, 1, 2, 8, 25, 3), torch.tensor([0, 1, 2, 3]), mode='loss')
    sum(losses[k] for k in losses if k.startswith('loss')).backward()
    optim.step()


def test_trained_encoder_is_saved_and_restored():
    model = _model(trainable=True)
    _train_one_step(model)
    state = model.state_dict()
    assert torch.equal(state['text_encoder.proj.weight'], model.text_encoder.proj.weight)
    resumed = _model(trainable=True)
    resumed.init_text_encoder()                     # pretrained weights, as at a run's start
    assert not torch.equal(resumed.text_encoder.proj.weight, model.text_encoder.proj.weight)
    resumed.load_state_dict(state, strict=True)     # a resumed run takes the trained tower
    torch.testing.assert_close(resumed.text_encoder.proj.weight, model.text_encoder.proj.weight)


def test_a_test_time_model_ignores_the_encoder_weights():
    model = _model(trainable=True)
    _train_one_step(model)
    tester = _model(trainable=True)                 # no encoder built: testing needs none
    tester.load_state_dict(model.state_dict(), strict=True)
    assert tester.text_encoder is None


def test_frozen_encoder_is_not_saved_and_an_old_checkpoint_warns():
    frozen = _model(trainable=False)
    frozen.init_text_encoder()
    state = frozen.state_dict()
    assert not any(k.startswith('text_encoder.') for k in state)
    trained = _model(trainable=True)
    trained.init_text_encoder()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        trained.load_state_dict(state, strict=True)
    assert any('holds no weights of the trained text encoder' in str(w.message) for w in caught)
