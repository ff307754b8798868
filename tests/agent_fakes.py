"""What the agent hook needs of a recognizer and of a training step, for tests without a Runner."""
from __future__ import annotations

import numpy as np
import torch

from skeletonagent.models.recognizers.recognizer_gcn import StepLogVars, TrainPredictions


class FakeHead:
    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes


class FakeRecognizer:
    """Records every state the hook installs; encodes descriptions as zeros (or not at all)."""

    def __init__(self, num_classes: int = 12, embedding_dim: int | None = 4) -> None:
        self.cls_head = FakeHead(num_classes)
        self.installed = []
        self.embedding_dim = embedding_dim

    def set_agent_state(self, descriptions, masks, embeddings=None):
        self.installed.append((list(descriptions), np.array(masks), embeddings))

    def encode_descriptions(self, descriptions):
        if self.embedding_dim is None:
            return None
        return torch.zeros(len(descriptions), self.embedding_dim)


def step_outputs(logits: torch.Tensor, labels: torch.Tensor) -> StepLogVars:
    """A training step's outputs as the recognizer's ``parse_losses`` hands them to hooks."""
    out = StepLogVars(loss=torch.tensor(0.0))
    out.predictions = TrainPredictions(logits, labels)
    return out
