"""Common interface of the text encoders (class descriptions → embeddings)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

__all__ = ['TextEncoder']


class TextEncoder(nn.Module):
    """A text encoder: ``encode(list[str]) -> Tensor (n, dim)``.

    Attributes:
        key: name of the embedding space (the backbone's ``linear_head[key]``).
        dim: embedding size.
        trainable: if False (default) the encoder is frozen: eval mode, no gradients, and
            :meth:`encode` runs without autograd.
    """

    key: str = ''
    dim: int = 0

    def __init__(self, trainable: bool = False, batch_size: int = 64) -> None:
        super().__init__()
        self.trainable = bool(trainable)
        self.batch_size = int(batch_size)

    def _freeze(self) -> None:
        if not self.trainable:
            for param in self.parameters():
                param.requires_grad_(False)
            super().train(False)

    def train(self, mode: bool = True) -> TextEncoder:
        """A frozen encoder stays in eval mode whatever its parent asks."""
        return super().train(mode and self.trainable)

    @property
    def device(self) -> torch.device:
        for param in self.parameters():
            return param.device
        return torch.device('cpu')

    def _encode_batch(self, texts: list[str]) -> torch.Tensor:
        raise NotImplementedError

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Embeddings (n, dim), float32, on the encoder's device."""
        if isinstance(texts, str):
            raise TypeError('TextEncoder.encode expects a list of strings, got a single string')
        texts = [str(t) for t in texts]
        if not texts:
            return torch.zeros(0, self.dim, device=self.device)
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            chunks = [self._encode_batch(texts[i:i + self.batch_size])
                      for i in range(0, len(texts), self.batch_size)]
        return torch.cat(chunks).float()

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        return self.encode(texts)
