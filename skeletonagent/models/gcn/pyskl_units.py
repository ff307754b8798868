"""PYSKL's ST-GCN / ST-GCN++ building blocks, with PYSKL's parameter names and shapes.

The SkeletonAgent units in :mod:`.units` are a different design (dynamic graph unit, TCN with a
joint-mean column and ``add_coeff``), so PYSKL checkpoints need their own small units. These
mirror PYSKL's ``unit_gcn``, ``unit_tcn`` and ``mstcn`` (``pyskl/models/gcns/utils``) module by
module: every ``nn.Module`` attribute and ``nn.Sequential`` index is laid out as there, so a
PYSKL ``state_dict`` loads without renaming. The PYSKL class names are kept as aliases.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_norm_layer

from .units import FrameStridedConv2d, fold_conv_bn

__all__ = ['GraphConv', 'TemporalConvUnit', 'MultiScaleTCN', 'unit_gcn', 'unit_tcn', 'mstcn',
           'PYSKL_MS_CFG']

#: PYSKL's default branch layout of ``mstcn``.
PYSKL_MS_CFG: tuple = ((3, 1), (3, 2), (3, 3), (3, 4), ('max', 3), '1x1')

CfgLike = Union[str, dict]


def _cfg(value: CfgLike) -> dict:
    return dict(value) if isinstance(value, dict) else dict(type=value)


class TemporalConvUnit(nn.Module):
    """``k×1`` temporal convolution → norm (or none) → dropout (PYSKL ``unit_tcn``).

    State dict: ``conv.weight``, ``conv.bias`` and, when ``norm`` is given, ``bn.*``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 9, stride: int = 1,
                 dilation: int = 1, norm: CfgLike | None = 'BN', dropout: float = 0.) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        self.norm_cfg = None if norm is None else _cfg(norm)
        # "same" padding for a dilated kernel: (effective kernel - 1) / 2
        effective = kernel_size + (kernel_size - 1) * (dilation - 1)
        self.conv = FrameStridedConv2d(in_channels, out_channels, kernel_size=(kernel_size, 1),
                                       stride=(stride, 1), padding=((effective - 1) // 2, 0),
                                       dilation=(dilation, 1))
        self.bn = nn.Identity() if norm is None else build_norm_layer(self.norm_cfg, out_channels)[1]
        self.drop = nn.Dropout(dropout, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.bn(self.conv(x)))

    def fuse(self) -> None:
        """Fold ``bn`` into ``conv`` (inference only)."""
        self.conv, self.bn = fold_conv_bn(self.conv, self.bn)


class GraphConv(nn.Module):
    """Spatial graph convolution over ``K`` adjacency subsets (PYSKL ``unit_gcn``).

    Args:
        A: K×V×V adjacency subsets.
        adaptive: None (fixed ``A``, a buffer), 'init' (``A`` is a learned parameter),
            'offset' (``A + PA``, ``PA`` initialised near 0) or 'importance' (``A * PA``,
            ``PA`` initialised to 1).
        conv_pos: 'pre' (1×1 conv to K·C_out channels, then joint mixing) or 'post'
            (joint mixing, then 1×1 conv from K·C_in channels).
        with_res: add a residual (1×1 conv + norm when the channels change).
        norm, act: norm and activation configs (mmcv names).

    State dict: ``A``, ``PA`` (offset/importance), ``conv.*``, ``bn.*``, and ``down.0.*`` /
    ``down.1.*`` when ``with_res`` and the channels change.
    """

    def __init__(self, in_channels: int, out_channels: int, A: torch.Tensor,
                 adaptive: str | None = 'importance', conv_pos: str = 'pre', with_res: bool = False,
                 norm: CfgLike = 'BN', act: CfgLike = 'ReLU') -> None:
        super().__init__()
        if adaptive not in (None, 'init', 'offset', 'importance'):
            raise ValueError(f"unit_gcn: adaptive must be None, 'init', 'offset' or 'importance', "
                             f'got {adaptive!r}')
        if conv_pos not in ('pre', 'post'):
            raise ValueError(f"unit_gcn: conv_pos must be 'pre' or 'post', got {conv_pos!r}")
        A = torch.as_tensor(A, dtype=torch.float32)
        if A.dim() != 3 or A.shape[1] != A.shape[2]:
            raise ValueError(f'unit_gcn: A must be K×V×V, got {tuple(A.shape)}')
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_subsets = A.shape[0]
        self.adaptive = adaptive
        self.conv_pos = conv_pos
        self.with_res = with_res
        self.norm_cfg = _cfg(norm)
        self.act_cfg = _cfg(act)
        self.bn = build_norm_layer(self.norm_cfg, out_channels)[1]
        self.act = build_activation_layer(self.act_cfg)

        if adaptive == 'init':
            self.A = nn.Parameter(A.clone())
        else:
            self.register_buffer('A', A.clone())
        if adaptive == 'offset':
            self.PA = nn.Parameter(torch.empty_like(A).uniform_(-1e-6, 1e-6))
        elif adaptive == 'importance':
            self.PA = nn.Parameter(torch.ones_like(A))

        k = self.num_subsets
        if conv_pos == 'pre':
            self.conv = nn.Conv2d(in_channels, out_channels * k, 1)
        else:
            self.conv = nn.Conv2d(in_channels * k, out_channels, 1)
        if with_res and in_channels != out_channels:
            self.down = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1),
                                      build_norm_layer(self.norm_cfg, out_channels)[1])
        else:
            self.down = None

    def adjacency(self) -> torch.Tensor:
        """The K×V×V adjacency this unit mixes joints with."""
        if self.adaptive == 'offset':
            return self.A + self.PA
        if self.adaptive == 'importance':
            return self.A * self.PA
        return self.A

    def forward(self, x: torch.Tensor, A: torch.Tensor | None = None) -> torch.Tensor:
        n, _, t, v = x.shape
        adj = self.adjacency()
        if self.conv_pos == 'pre':
            y = self.conv(x).view(n, self.num_subsets, -1, t, v)
            y = torch.einsum('nkctv,kvw->nctw', y, adj)
        else:
            y = torch.einsum('nctv,kvw->nkctw', x, adj).reshape(n, -1, t, v)
            y = self.conv(y)
        y = self.bn(y.contiguous())
        if self.with_res:
            y = y + (x if self.down is None else self.down(x))
        return self.act(y)

    def fuse(self) -> None:
        """Fold the batch norms that directly follow a convolution (inference only): ``bn``
        when ``conv_pos='post'`` (with 'pre' the joint mixing sits between them) and ``down``'s."""
        if self.conv_pos == 'post':
            self.conv, self.bn = fold_conv_bn(self.conv, self.bn)
        if self.down is not None:
            self.down[0], self.down[1] = fold_conv_bn(self.down[0], self.down[1])


class MultiScaleTCN(nn.Module):
    """Multi-scale temporal convolution (PYSKL ``mstcn``, the "++" of ST-GCN++).

    Branches (``ms_cfg``): ``(k, d)`` = 1×1 conv → BN → ReLU → ``k×1`` conv with dilation ``d``;
    ``('max', k)`` = 1×1 conv → BN → ReLU → temporal max-pool; ``'1x1'`` = strided 1×1 conv.
    The concatenated branches go through BN → ReLU → 1×1 conv, then BN and dropout.

    State dict: ``branches.{i}.0.*`` (entry conv), ``branches.{i}.1.*`` (BN),
    ``branches.{i}.3.conv.*`` (temporal conv), ``branches.{j}.*`` for a '1x1' branch,
    ``transform.0.*`` (BN), ``transform.2.*`` (conv), ``bn.*``.
    """

    def __init__(self, in_channels: int, out_channels: int, mid_channels: float | None = None,
                 dropout: float = 0., ms_cfg: Sequence[Any] = PYSKL_MS_CFG, stride: int = 1) -> None:
        super().__init__()
        ms_cfg = [tuple(c) if isinstance(c, list) else c for c in ms_cfg]
        self.ms_cfg = ms_cfg
        self.num_branches = len(ms_cfg)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.act = nn.ReLU()
        if mid_channels is None:
            mid = out_channels // self.num_branches
            first = out_channels - mid * (self.num_branches - 1)
        else:
            if not (isinstance(mid_channels, float) and mid_channels > 0):
                raise ValueError(f'mstcn: mid_channels must be a positive float ratio, got {mid_channels!r}')
            mid = first = int(out_channels * mid_channels)
        self.mid_channels = mid
        self.rem_mid_channels = first

        branches = []
        for i, cfg in enumerate(ms_cfg):
            ch = first if i == 0 else mid
            if cfg == '1x1':
                branches.append(FrameStridedConv2d(in_channels, ch, kernel_size=1, stride=(stride, 1)))
                continue
            if not (isinstance(cfg, tuple) and len(cfg) == 2):
                raise ValueError(f'mstcn: bad branch {cfg!r} in ms_cfg {ms_cfg!r}')
            entry = [nn.Conv2d(in_channels, ch, kernel_size=1), nn.BatchNorm2d(ch), self.act]
            if cfg[0] == 'max':
                tail = nn.MaxPool2d(kernel_size=(cfg[1], 1), stride=(stride, 1), padding=(1, 0))
            elif isinstance(cfg[0], int) and isinstance(cfg[1], int):
                tail = TemporalConvUnit(ch, ch, kernel_size=cfg[0], stride=stride, dilation=cfg[1], norm=None)
            else:
                raise ValueError(f'mstcn: bad branch {cfg!r} in ms_cfg {ms_cfg!r}')
            branches.append(nn.Sequential(*entry, tail))
        self.branches = nn.ModuleList(branches)
        cat_channels = mid * (self.num_branches - 1) + first
        self.transform = nn.Sequential(nn.BatchNorm2d(cat_channels), self.act,
                                       nn.Conv2d(cat_channels, out_channels, kernel_size=1))
        self.bn = nn.BatchNorm2d(out_channels)
        self.drop = nn.Dropout(dropout, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = torch.cat([branch(x) for branch in self.branches], dim=1)
        return self.drop(self.bn(self.transform(feat)))

    def fuse(self) -> None:
        """Fold the branch-entry BNs and ``bn`` into the convolutions before them (inference only)."""
        for branch in self.branches:
            if isinstance(branch, nn.Sequential):
                branch[0], branch[1] = fold_conv_bn(branch[0], branch[1])
        self.transform[2], self.bn = fold_conv_bn(self.transform[2], self.bn)


# PYSKL's names
unit_gcn = GraphConv
unit_tcn = TemporalConvUnit
mstcn = MultiScaleTCN
