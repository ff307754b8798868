"""Building blocks of the SkeletonAgent GCN: the dynamic graph unit and the multi-scale TCN.

Parameter names and shapes follow the official ``gcn_unit`` / ``mstcn_unit`` / ``base_tcn``, so
official checkpoints load unchanged, and the forward passes compute the same functions (checked
against a literal re-statement of the official code in ``tests/test_models.py``).

Every unit has one forward, built from torch modules and ops, for training and inference,
under autocast and with any norm layer (SyncBN included). Two things differ from the official
code, both exact rewrites: ``conv1``/``conv2`` of the graph unit run on the temporal mean of
their input (a 1×1 conv commutes with the mean: T times fewer multiply-adds), and the TCN's
joint-mean column is appended to its input once, not once per branch.

Speed and memory come from torch, not from hand-written kernels:

* training memory: ``with_cp`` on the blocks (``torch.utils.checkpoint``, see
  ``backbones.GCN_Block``); ``--compile`` for speed;
* inference: :meth:`GCNUnit.fuse` / :meth:`MSTCNUnit.fuse` / :meth:`TemporalConv.fuse` fold
  every BN that follows a convolution into it, once (``torch.nn.utils.fusion``), and swap the
  BN for ``nn.Identity``; the forward is unchanged.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

import torch
import torch.nn as nn
from mmcv.cnn import build_activation_layer, build_norm_layer
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ['GCNUnit', 'MSTCNUnit', 'TemporalConv', 'gcn_unit', 'mstcn_unit', 'base_tcn',
           'DEFAULT_MS_CFG', 'fold_conv_bn', 'fuse_backbone', 'fuse_for_inference']

#: The official branch configuration of the multi-scale TCN.
DEFAULT_MS_CFG: tuple = ((3, 1), (3, 2), (3, 3), (3, 4), ('max', 3), '1x1')

CfgLike = Union[str, dict]


def _as_cfg(cfg: CfgLike | None) -> dict | None:
    if cfg is None or isinstance(cfg, dict):
        return cfg
    return dict(type=cfg)


def _inplace(act_cfg: dict) -> dict:
    """``act_cfg`` with ``inplace=True`` for the activations that take it (ReLU family)."""
    if act_cfg.get('type') in ('ReLU', 'ReLU6', 'LeakyReLU', 'ELU') and 'inplace' not in act_cfg:
        return dict(act_cfg, inplace=True)
    return act_cfg


def fold_conv_bn(conv: nn.Module, bn: nn.Module) -> tuple[nn.Module, nn.Module]:
    """``(conv with bn folded in, nn.Identity())`` for a convolution followed by a batch norm in
    eval mode (``torch.nn.utils.fusion.fuse_conv_bn_eval``); the pair unchanged when ``bn`` is
    not a batch norm with running statistics (an Identity, or one that uses batch statistics)."""
    if not (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.modules.batchnorm._BatchNorm)
            and bn.track_running_stats and bn.running_mean is not None):
        return conv, bn
    if conv.training or bn.training:
        raise RuntimeError('fuse() folds batch norms for inference: call model.eval() first')
    return fuse_conv_bn_eval(conv, bn), nn.Identity()


def fuse_backbone(backbone: nn.Module) -> nn.Module:
    """``fuse()`` of every block in ``backbone.gcn``, once; the backbone refuses ``train()``
    afterwards (its state_dict has lost the folded BN entries). Returns ``backbone``."""
    if backbone.training:
        raise RuntimeError(f'{type(backbone).__name__}.fuse() is for inference: call eval() first')
    if not getattr(backbone, '_fused', False):
        for block in backbone.gcn:
            block.fuse()
        backbone._fused = True
    return backbone


def refuse_training_if_fused(backbone: nn.Module, mode: bool) -> None:
    if mode and getattr(backbone, '_fused', False):
        raise RuntimeError(f'{type(backbone).__name__}: the batch norms were folded by fuse() for '
                           'inference; build the model again to train it')


def fuse_for_inference(model: nn.Module) -> nn.Module:
    """Call ``fuse()`` on the outermost modules of ``model`` that have one (the backbones),
    after putting ``model`` in eval mode; a model without such modules is returned as it is.
    For inference only: see ``GCN_Module_LLM.fuse``."""
    model.eval()

    def visit(module: nn.Module) -> None:
        if callable(getattr(module, 'fuse', None)):
            module.fuse()
            return
        for child in module.children():
            visit(child)

    visit(model)
    return model


class TemporalConv(nn.Module):
    """Temporal convolution (kernel ``k×1``) + optional norm + dropout (official ``base_tcn``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 9, stride: int = 1,
                 dilation: int = 1, norm: CfgLike | None = 'BN', dropout: float = 0.) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.norm_cfg = _as_cfg(norm)
        pad = (kernel_size + (kernel_size - 1) * (dilation - 1) - 1) // 2
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=(kernel_size, 1), padding=(pad, 0),
                              stride=(stride, 1), dilation=(dilation, 1))
        self.bn = build_norm_layer(self.norm_cfg, out_channels)[1] if norm is not None else nn.Identity()
        self.drop = nn.Dropout(dropout, inplace=True)
        self.dropout = dropout
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return self.drop(x) if self.dropout > 0 else x

    def fuse(self) -> None:
        """Fold ``bn`` into ``conv`` (inference only; see :func:`fold_conv_bn`)."""
        self.conv, self.bn = fold_conv_bn(self.conv, self.bn)


class GCNUnit(nn.Module):
    """Dynamic graph convolution with learnable adjacency subsets (official ``gcn_unit``).

    For every subset ``k`` and mid channel ``c`` the joints are mixed by the matrix
    ``A[k] + alpha[0]·tanh(x1[c, v] - x2[c, w]) + beta[0]·softmax_v(Σ_c x1[c, v]·x2[c, w])``,
    where ``x1``/``x2`` are 1×1 projections of the temporally averaged input. As in the
    official code, only the first entries of ``alpha`` and ``beta`` are used.
    """

    def __init__(self, in_channels: int, out_channels: int, A: torch.Tensor, ratio: float = 0.125,
                 intra_act: str = 'softmax', inter_act: str = 'tanh', norm: CfgLike = 'BN',
                 act: CfgLike = 'ReLU') -> None:
        super().__init__()
        if intra_act not in ('softmax', 'sigmoid', 'tanh', 'relu'):
            raise ValueError(f'GCNUnit: unknown intra_act {intra_act!r}')
        if inter_act not in ('softmax', 'sigmoid', 'tanh', 'relu'):
            raise ValueError(f'GCNUnit: unknown inter_act {inter_act!r}')
        A = torch.as_tensor(A, dtype=torch.float32)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_subsets = A.size(0)
        self.ratio = ratio
        self.mid_channels = int(ratio * out_channels)
        mid_total = self.mid_channels * self.num_subsets
        self.norm_cfg = _as_cfg(norm)
        self.act_cfg = _as_cfg(act)
        # the activation follows a norm (in `pre`) or a fresh sum (at the end): in place is safe
        self.act = build_activation_layer(_inplace(self.act_cfg))
        self.intra_act = intra_act
        self.inter_act = inter_act

        self.A = nn.Parameter(A.clone())
        self.pre = nn.Sequential(
            nn.Conv2d(in_channels, mid_total, 1), build_norm_layer(self.norm_cfg, mid_total)[1], self.act)
        self.post = nn.Conv2d(mid_total, out_channels, 1)
        self.alpha = nn.Parameter(torch.zeros(self.num_subsets))
        self.beta = nn.Parameter(torch.zeros(self.num_subsets))
        self.conv1 = nn.Conv2d(in_channels, mid_total, 1)
        self.conv2 = nn.Conv2d(in_channels, mid_total, 1)
        if in_channels != out_channels:
            self.down = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1),
                                      build_norm_layer(self.norm_cfg, out_channels)[1])
        else:
            self.down = None
        self.bn = build_norm_layer(self.norm_cfg, out_channels)[1]

    @staticmethod
    def _activate(name: str, x: torch.Tensor, dim: int) -> torch.Tensor:
        if name == 'softmax':
            return torch.softmax(x, dim)
        return getattr(torch, name)(x)

    def joint_mixing(self, x: torch.Tensor) -> torch.Tensor:
        """The per-sample, per-channel joint mixing matrices N×K×C×V×V of input N×Cin×T×V."""
        n, _, _, v = x.shape
        k, c = self.num_subsets, self.mid_channels
        x_mean = x.mean(2, keepdim=True)                 # conv1/conv2 commute with the mean over T
        x1 = self.conv1(x_mean).reshape(n, k, c, v)
        x2 = self.conv2(x_mean).reshape(n, k, c, v)
        intra = self._activate(self.intra_act, torch.matmul(x1.transpose(-1, -2), x2), -2)   # N K V W
        shared = (self.A + intra * self.beta[0]).unsqueeze(2)                                 # N K 1 V W
        inter = self._activate(self.inter_act, x1.unsqueeze(-1) - x2.unsqueeze(-2), -2)      # N K C V W
        return torch.addcmul(shared, inter, self.alpha[0])

    def forward(self, x: torch.Tensor, A: torch.Tensor | None = None) -> torch.Tensor:
        n, _, t, v = x.shape
        k, c = self.num_subsets, self.mid_channels
        mixing = self.joint_mixing(x)
        h = self.pre(x).reshape(n, k, c, t, v)
        y = torch.matmul(h, mixing).reshape(n, k * c, t, v)
        out = self.bn(self.post(y))
        res = x if self.down is None else self.down(x)
        return self.act(out.add_(res))         # backward needs neither a norm's nor a conv's output

    def fuse(self) -> None:
        """Fold the batch norms into ``pre[0]``, ``post`` and ``down[0]`` (inference only)."""
        self.pre[0], self.pre[1] = fold_conv_bn(self.pre[0], self.pre[1])
        self.post, self.bn = fold_conv_bn(self.post, self.bn)
        if self.down is not None:
            self.down[0], self.down[1] = fold_conv_bn(self.down[0], self.down[1])


class MSTCNUnit(nn.Module):
    """Multi-scale temporal convolution with a joint-mean ("global") column (official ``mstcn_unit``).

    Branches (``ms_cfg``): ``(k, d)`` = 1×1 conv → BN → ReLU → k×1 conv with dilation ``d``;
    ``('max', k)`` = 1×1 conv → BN → ReLU → max-pool; ``'1x1'`` = strided 1×1 conv. Every branch
    sees the V joints plus their mean; the mean column's output, scaled per joint by
    ``add_coeff``, is added to every joint. Then BN → ReLU → 1×1 conv → BN → dropout.
    """

    def __init__(self, in_channels: int, out_channels: int, mid_channels: float | None = None,
                 num_joints: int = 25, dropout: float = 0., ms_cfg: Sequence[Any] = DEFAULT_MS_CFG,
                 stride: int = 1, norm: CfgLike | None = None, act: CfgLike | None = None) -> None:
        super().__init__()
        # `norm`/`act` are accepted for the official common-argument routing (act/norm apply to
        # both units there); the official TCN always uses BatchNorm2d and ReLU.
        if norm is not None and _as_cfg(norm).get('type') not in ('BN', 'BN2d'):
            raise ValueError(f'MSTCNUnit supports only BN normalisation, got {norm!r}')
        if act is not None and _as_cfg(act).get('type') != 'ReLU':
            raise ValueError(f'MSTCNUnit supports only ReLU activation, got {act!r}')
        ms_cfg = [tuple(c) if isinstance(c, list) else c for c in ms_cfg]
        self.ms_cfg = ms_cfg
        self.num_branches = len(ms_cfg)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        self.act = nn.ReLU(inplace=True)        # always after a batch norm
        self.num_joints = num_joints
        # official: one coefficient per joint; only the first V are used
        self.add_coeff = nn.Parameter(torch.zeros(num_joints))

        if mid_channels is None:
            mid = out_channels // self.num_branches
            rem_mid = out_channels - mid * (self.num_branches - 1)
        else:
            if not (isinstance(mid_channels, float) and mid_channels > 0):
                raise ValueError(f'MSTCNUnit: mid_channels must be a positive float ratio, got {mid_channels!r}')
            mid = int(out_channels * mid_channels)
            rem_mid = mid
        self.mid_channels = mid
        self.rem_mid_channels = rem_mid

        branches = []
        for i, cfg in enumerate(ms_cfg):
            branch_c = rem_mid if i == 0 else mid
            if cfg == '1x1':
                branches.append(nn.Conv2d(in_channels, branch_c, kernel_size=1, stride=(stride, 1)))
                continue
            if not isinstance(cfg, tuple) or len(cfg) != 2:
                raise ValueError(f'MSTCNUnit: bad branch config {cfg!r} in ms_cfg {ms_cfg!r}')
            if cfg[0] == 'max':
                branches.append(nn.Sequential(
                    nn.Conv2d(in_channels, branch_c, kernel_size=1), nn.BatchNorm2d(branch_c), self.act,
                    nn.MaxPool2d(kernel_size=(cfg[1], 1), stride=(stride, 1), padding=(1, 0))))
                continue
            if not (isinstance(cfg[0], int) and isinstance(cfg[1], int)):
                raise ValueError(f'MSTCNUnit: bad branch config {cfg!r} in ms_cfg {ms_cfg!r}')
            branches.append(nn.Sequential(
                nn.Conv2d(in_channels, branch_c, kernel_size=1), nn.BatchNorm2d(branch_c), self.act,
                TemporalConv(branch_c, branch_c, kernel_size=cfg[0], stride=stride, dilation=cfg[1], norm=None)))
        self.branches = nn.ModuleList(branches)
        tin_channels = mid * (self.num_branches - 1) + rem_mid
        self.transform = nn.Sequential(
            nn.BatchNorm2d(tin_channels), self.act, nn.Conv2d(tin_channels, out_channels, kernel_size=1))
        self.bn = nn.BatchNorm2d(out_channels)
        self.drop = nn.Dropout(dropout, inplace=True)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x.shape[-1]
        if v > self.num_joints:
            raise ValueError(f'MSTCNUnit: input has {v} joints but add_coeff holds {self.num_joints} '
                             f'(set tcn_num_joints >= {v})')
        x = torch.cat([x, x.mean(-1, keepdim=True)], -1)                 # the joints and their mean
        out = torch.cat([branch(x) for branch in self.branches], 1)
        local, glob = out.split([v, 1], -1)
        # the product saves `glob` for add_coeff's gradient: a copy, not a view of all of `out`
        feat = torch.addcmul(local, glob.contiguous(), self.add_coeff[:v].to(out.dtype))   # local + global
        feat = self.bn(self.transform(feat))
        return self.drop(feat) if self.dropout > 0 else feat

    def fuse(self) -> None:
        """Fold the branch-entry BNs into their 1×1 convs and ``bn`` into ``transform[2]``
        (inference only). ``transform[0]`` stays: a ReLU separates it from any convolution."""
        for branch in self.branches:
            if isinstance(branch, nn.Sequential):
                branch[0], branch[1] = fold_conv_bn(branch[0], branch[1])
        self.transform[2], self.bn = fold_conv_bn(self.transform[2], self.bn)


# Official names.
gcn_unit = GCNUnit
mstcn_unit = MSTCNUnit
base_tcn = TemporalConv
