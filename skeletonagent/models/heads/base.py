"""What every GCN classification head shares: person/time/joint pooling and a linear classifier."""
from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ['PooledLinearHead']


class PooledLinearHead(nn.Module):
    """Mean over frames and joints, then over persons; dropout; ``fc_cls``.

    Subclasses set ``in_c``, ``init_std``, ``dropout`` (an ``nn.Dropout`` or None) and
    ``fc_cls`` in their ``__init__`` (the attribute names are the official/PYSKL state-dict
    and attribute names).
    """

    in_c: int
    init_std: float
    dropout: nn.Dropout | None
    fc_cls: nn.Linear

    def init_weights(self) -> None:
        """Normal(0, init_std) weights and zero bias (mmcv ``normal_init``)."""
        nn.init.normal_(self.fc_cls.weight, 0, self.init_std)
        nn.init.constant_(self.fc_cls.bias, 0)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """N×M×C×T×V features → N×C (mean over T·V, then over persons); N×C passes through."""
        if x.dim() == 2:
            return x
        if x.dim() != 5:
            raise ValueError(f'{type(self).__name__}: expected features N×M×C×T×V or N×C, '
                             f'got {tuple(x.shape)}')
        n, m, c = x.shape[:3]
        return x.reshape(n, m, c, -1).mean(3).mean(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(x)
        if x.shape[1] != self.in_c:
            raise ValueError(f'{type(self).__name__}: features have {x.shape[1]} channels, '
                             f'in_channels is {self.in_c}')
        if self.dropout is not None:
            x = self.dropout(x)
        return self.fc_cls(x)
