"""Building blocks of the SkeletonAgent GCN: the dynamic graph unit and the multi-scale TCN.

Parameter names and shapes follow the official ``gcn_unit`` / ``mstcn_unit`` / ``base_tcn``, so
official checkpoints load unchanged, and the forward passes compute the same functions (checked
against a literal re-statement of the official code in ``tests/test_models.py``). The work is
reorganised for speed and memory:

* activations run channels-last (N×C×T×V with C innermost), the layout oneDNN's 1×1
  convolutions are fastest in; the joint mixing works on N×K×C×T×V rows, and the 1×1
  convolutions around it run as matrix products that read and write both layouts directly;
* ``conv1``/``conv2`` of the graph unit are applied to the temporal mean of their input (a 1×1
  conv commutes with the mean: T times fewer multiply-adds than the official code);
* the multi-scale TCN's branch entry convolutions are fused into one, and the joint-mean
  ("global") column is the joint mean of their output rather than a copy of the input;
* training: ``BN → ReLU → op`` chains run through the kernels of :mod:`.fused`, which keep only
  the BN input for backward and recompute the rest (about a third less activation memory);
* inference: batch norms are folded into the convolutions around them, and the joint-mean
  column goes through the TCN branches on its own (no V+1 concatenation).
"""
from __future__ import annotations

from typing import Any, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer, build_norm_layer

from .fused import BranchSpec, add_joint_mean, bn_relu_branches, bn_relu_conv, graph_conv, temporal_mean

__all__ = ['GCNUnit', 'MSTCNUnit', 'TemporalConv', 'gcn_unit', 'mstcn_unit', 'base_tcn',
           'DEFAULT_MS_CFG']

#: The official branch configuration of the multi-scale TCN.
DEFAULT_MS_CFG: tuple = ((3, 1), (3, 2), (3, 3), (3, 4), ('max', 3), '1x1')

CfgLike = Union[str, dict]


def _as_cfg(cfg: CfgLike | None) -> dict | None:
    if cfg is None or isinstance(cfg, dict):
        return cfg
    return dict(type=cfg)


def _apply_act(act: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply an activation, in place when it is a plain ReLU (its input is never reused)."""
    if type(act) is nn.ReLU:
        return F.relu_(x)
    return act(x)


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
        self.act = build_activation_layer(self.act_cfg)
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

    def _projections(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x1``, ``x2`` (N×K×C×V, 1×1 projections of the temporal mean of ``x``) and the
        channel-shared part of the mixing, ``A + beta·act(x1ᵀx2)`` (N×K×1×V×V)."""
        n, _, _, v = x.shape
        k, c = self.num_subsets, self.mid_channels
        x_mean = temporal_mean(x)
        x1 = self.conv1(x_mean).reshape(n, k, c, v)
        x2 = self.conv2(x_mean).reshape(n, k, c, v)
        intra = self._activate(self.intra_act, torch.matmul(x1.transpose(-1, -2), x2), -2)
        shared = (self.A + intra * self.beta[0]).unsqueeze(2)
        return x1, x2, shared

    def _mixing_terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``shared`` N×K×1×V×V and ``inter`` N×K×C×V×V (``act(x1_v - x2_w)``)."""
        x1, x2, shared = self._projections(x)
        diff = x1.unsqueeze(-1) - x2.unsqueeze(-2)
        inter = diff.tanh_() if self.inter_act == 'tanh' else self._activate(self.inter_act, diff, -2)
        return shared, inter

    def joint_mixing(self, x: torch.Tensor) -> torch.Tensor:
        """The per-sample, per-channel joint mixing matrices N×K×C×V×V."""
        shared, inter = self._mixing_terms(x)
        return torch.addcmul(shared, inter, self.alpha[0])

    def _fast_path(self) -> bool:
        """Plain BatchNorm2d + ReLU units (the official ones) take the optimised paths."""
        bns = [self.pre[1], self.bn] + ([] if self.down is None else [self.down[1]])
        return (type(self.act) is nn.ReLU and all(type(bn) is nn.BatchNorm2d and bn.track_running_stats
                                                  for bn in bns))

    def forward(self, x: torch.Tensor, A: torch.Tensor | None = None) -> torch.Tensor:
        fast = self._fast_path()
        if fast and self.bn.training and torch.is_grad_enabled() and self.inter_act == 'tanh':
            # training: only the BN input of `pre` is kept for backward (see fused.py)
            x1, x2, shared = self._projections(x)
            out = self.bn(graph_conv(x, self.pre[0], self.pre[1], shared, x1, x2, self.alpha[0], self.post))
            res = x if self.down is None else self.down(x)
            return F.relu_(out.add_(res))   # BN's backward needs its input, not its output
        shared, inter = self._mixing_terms(x)
        if fast and not self.bn.training:
            return self._forward_eval(x, shared, inter)
        n, _, t, v = x.shape
        k, c = self.num_subsets, self.mid_channels
        h = self.pre(x).contiguous().view(n, k, c, t, v)
        y = torch.matmul(h, torch.addcmul(shared, inter, self.alpha[0])).view(n, k * c, t, v)
        if _is_channels_last(x):
            y = y.contiguous(memory_format=torch.channels_last)
        out = self.bn(self.post(y))
        res = x if self.down is None else self.down(x)
        return _apply_act(self.act, out.add_(res))

    def _forward_eval(self, x: torch.Tensor, shared: torch.Tensor, inter: torch.Tensor) -> torch.Tensor:
        """Inference: batch norms folded into the 1×1 convolutions, which run as matrix products
        reading channels-last ``x`` and writing the N×K×C×T×V rows the joint mixing needs (and
        back), so no layout copies are made."""
        n, cin, t, v = x.shape
        k, c = self.num_subsets, self.mid_channels
        x_rows = x.flatten(2)                                    # N × Cin × TV (a view when possible)
        w_pre, b_pre = _fold_conv_bn(self.pre[0], self.pre[1])
        h = torch.matmul(w_pre.view(k * c, cin), x_rows).add_(b_pre.view(-1, 1)).relu_()
        y = torch.matmul(h.view(n, k, c, t, v), torch.addcmul(shared, inter, self.alpha[0]))
        w_post, b_post = _fold_conv_bn(self.post, self.bn)
        if _is_channels_last(x):
            out = torch.matmul(y.view(n, k * c, t * v).transpose(1, 2), w_post.view(self.out_channels, -1).t())
            out = out.view(n, t, v, self.out_channels).permute(0, 3, 1, 2)
        else:
            out = torch.matmul(w_post.view(self.out_channels, -1), y.view(n, k * c, t * v)).view(n, -1, t, v)
        out = out.add_(b_post.view(-1, 1, 1))
        res = x if self.down is None else F.conv2d(x, *_fold_conv_bn(self.down[0], self.down[1]))
        return out.add_(res).relu_()


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
        self.act = nn.ReLU()
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
        self._kinds: list[tuple] = []
        for i, cfg in enumerate(ms_cfg):
            branch_c = rem_mid if i == 0 else mid
            if cfg == '1x1':
                branches.append(nn.Conv2d(in_channels, branch_c, kernel_size=1, stride=(stride, 1)))
                self._kinds.append(('1x1', branch_c))
                continue
            if not isinstance(cfg, tuple) or len(cfg) != 2:
                raise ValueError(f'MSTCNUnit: bad branch config {cfg!r} in ms_cfg {ms_cfg!r}')
            if cfg[0] == 'max':
                branches.append(nn.Sequential(
                    nn.Conv2d(in_channels, branch_c, kernel_size=1), nn.BatchNorm2d(branch_c), self.act,
                    nn.MaxPool2d(kernel_size=(cfg[1], 1), stride=(stride, 1), padding=(1, 0))))
                self._kinds.append(('max', branch_c))
                continue
            if not (isinstance(cfg[0], int) and isinstance(cfg[1], int)):
                raise ValueError(f'MSTCNUnit: bad branch config {cfg!r} in ms_cfg {ms_cfg!r}')
            branches.append(nn.Sequential(
                nn.Conv2d(in_channels, branch_c, kernel_size=1), nn.BatchNorm2d(branch_c), self.act,
                TemporalConv(branch_c, branch_c, kernel_size=cfg[0], stride=stride, dilation=cfg[1], norm=None)))
            self._kinds.append(('tcn', branch_c))
        self.branches = nn.ModuleList(branches)
        self._branch_channels = [ch for _, ch in self._kinds]
        tin_channels = mid * (self.num_branches - 1) + rem_mid
        self.transform = nn.Sequential(
            nn.BatchNorm2d(tin_channels), self.act, nn.Conv2d(tin_channels, out_channels, kernel_size=1))
        self.bn = nn.BatchNorm2d(out_channels)
        self.drop = nn.Dropout(dropout, inplace=True)
        self.dropout = dropout

    # -- helpers ------------------------------------------------------------------------------
    def _entry_convs(self) -> list[nn.Conv2d]:
        return [b if isinstance(b, nn.Conv2d) else b[0] for b in self.branches]

    def _specs(self) -> list[BranchSpec]:
        specs = []
        for (kind, ch), branch in zip(self._kinds, self.branches):
            if kind == 'tcn':
                conv = branch[3].conv
                specs.append(BranchSpec(ch, conv.weight, conv.bias, conv.dilation[0], conv.kernel_size[0],
                                        conv.padding[0]))
            elif kind == 'max':
                pool = branch[3]
                specs.append(BranchSpec(ch, kernel=_first(pool.kernel_size), pad=_first(pool.padding)))
        return specs

    def _combine(self, out: torch.Tensor, v: int) -> torch.Tensor:
        """Joint columns plus ``add_coeff``-weighted joint-mean column (official local + global)."""
        return add_joint_mean(out, self.add_coeff[:v])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x.shape[-1]
        if v > self.num_joints:
            raise ValueError(f'MSTCNUnit: input has {v} joints but add_coeff holds {self.num_joints} '
                             f'(set tcn_num_joints >= {v})')
        bns = [m for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        plain_bns = all(type(bn) is nn.BatchNorm2d for bn in bns)   # e.g. not converted to SyncBN
        training = self.transform[0].training
        if plain_bns and training and torch.is_grad_enabled():
            feat = self._forward_train(x)
        elif plain_bns and not training and all(bn.track_running_stats for bn in bns):
            feat = self._forward_eval(x)
        else:
            feat = self._forward_plain(x)
        return self.drop(feat) if self.dropout > 0 else feat

    def _split_outputs(self, bn_out: torch.Tensor, plain_outs: dict[int, torch.Tensor]) -> torch.Tensor:
        """Concatenate branch outputs in branch order (BN'd branches come as one tensor)."""
        if not plain_outs:
            return bn_out
        bn_channels = [ch for kind, ch in self._kinds if kind != '1x1']
        bn_parts = iter(bn_out.split(bn_channels, 1)) if bn_channels else iter(())
        ordered = [plain_outs[i] if kind == '1x1' else next(bn_parts) for i, (kind, _) in enumerate(self._kinds)]
        return torch.cat(ordered, 1)

    def _plain_branch(self, conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        """The un-normalised 1×1 branch with its joint-mean column (conv commutes with the mean)."""
        y = conv(x)
        return _with_mean_column(y)

    def _forward_train(self, x: torch.Tensor) -> torch.Tensor:
        """Training: BN'd branches through one memory-saving kernel (see fused.py)."""
        convs = self._entry_convs()
        bn_idx = [i for i, (kind, _) in enumerate(self._kinds) if kind != '1x1']
        plain = {i: self._plain_branch(convs[i], x) for i, (kind, _) in enumerate(self._kinds) if kind == '1x1'}
        bn_out = x.new_zeros(0)
        if bn_idx:
            weight = torch.cat([convs[i].weight for i in bn_idx]) if len(bn_idx) > 1 else convs[bn_idx[0]].weight
            bias = torch.cat([convs[i].bias for i in bn_idx]) if len(bn_idx) > 1 else convs[bn_idx[0]].bias
            y = F.conv2d(x, weight, bias)
            y = _with_mean_column(y)        # == convs of [x, mean_v x]
            bn_out = bn_relu_branches(y, [self.branches[i][1] for i in bn_idx], self._specs(), self.stride)
        feat = self._combine(self._split_outputs(bn_out, plain), v=x.shape[-1])
        return self.bn(bn_relu_conv(feat, self.transform[0], self.transform[2]))

    def _forward_eval(self, x: torch.Tensor) -> torch.Tensor:
        """Inference: batch norms folded into the convolutions around them; the joint-mean column
        goes through the branches on its own (no V+1 concatenation).

        The ``transform`` BN (per-channel ``s·feat + b``) is pushed into the branches: the
        temporal and 1×1 convolutions are linear, and for ``s > 0`` ``max(relu(y))·s =
        max(relu(s·y))``, so ``s`` scales each branch's last linear op and ``b`` joins the joint
        columns' biases (the mean column is scaled by ``add_coeff`` and must not get it)."""
        v = x.shape[-1]
        bn_t = self.transform[0]
        scale = bn_t.weight * torch.rsqrt(bn_t.running_var + bn_t.eps)
        shift = bn_t.bias - bn_t.running_mean * scale
        scales, shifts = scale.split(self._branch_channels), shift.split(self._branch_channels)
        push = all(kind != 'max' or bool((sc > 0).all()) for (kind, _), sc in zip(self._kinds, scales))
        entry_w, entry_b = [], []
        for (kind, _), conv, branch, sc in zip(self._kinds, self._entry_convs(), self.branches, scales):
            w, b = _fold_conv_bn(conv, None if kind == '1x1' else branch[1])
            if push and kind in ('1x1', 'max'):
                w, b = w * sc.view(-1, 1, 1, 1), b * sc
            entry_w.append(w)
            entry_b.append(b)
        y = F.conv2d(x, torch.cat(entry_w), torch.cat(entry_b))
        g = y.mean(-1, keepdim=True)
        locals_, globs = [], []
        for (kind, _), branch, y_b, g_b, sc, sh in zip(self._kinds, self.branches, y.split(self._branch_channels, 1),
                                                       g.split(self._branch_channels, 1), scales, shifts):
            if kind == '1x1':
                local = y_b[:, :, ::self.stride] if self.stride > 1 else y_b
                glob = g_b[:, :, ::self.stride] if self.stride > 1 else g_b
                if push:
                    local = local + sh.view(-1, 1, 1)
            else:
                y_b, g_b = (y_b.relu(), g_b.relu()) if y_b.requires_grad else (y_b.relu_(), g_b.relu_())
                if kind == 'tcn' and push:
                    conv = branch[3].conv
                    w, b = conv.weight * sc.view(-1, 1, 1, 1), conv.bias * sc
                    args = (conv.stride, conv.padding, conv.dilation)
                    local, glob = F.conv2d(y_b, w, b + sh, *args), F.conv2d(g_b, w, b, *args)
                else:
                    local, glob = branch[3](y_b), branch[3](g_b)
                    if push:                                     # max-pool: shift after the max
                        local = local + sh.view(-1, 1, 1)
            locals_.append(local)
            globs.append(glob)
        feat = torch.addcmul(torch.cat(locals_, 1), torch.cat(globs, 1), self.add_coeff[:v])
        feat = F.relu_(feat if push else bn_t(feat))
        return F.conv2d(feat, *_fold_conv_bn(self.transform[2], self.bn))

    def _forward_plain(self, x: torch.Tensor) -> torch.Tensor:
        """Module by module (BN in training mode without autograd, or anything unusual)."""
        v = x.shape[-1]
        outs = []
        for (kind, _), branch in zip(self._kinds, self.branches):
            if kind == '1x1':
                outs.append(self._plain_branch(branch, x))
            else:
                y = branch[0](x)
                y = _with_mean_column(y)
                outs.append(branch[3](F.relu(branch[1](y))))
        feat = self._combine(torch.cat(outs, 1), v)
        feat = self.transform[2](F.relu(self.transform[0](feat)))
        return self.bn(feat)


def _with_mean_column(y: torch.Tensor) -> torch.Tensor:
    """``cat([y, mean_v y], -1)`` (N×C×T×(V+1)), keeping ``y``'s memory format."""
    mean = y.mean(-1, keepdim=True)
    if _is_channels_last(y):
        mean = mean.contiguous(memory_format=torch.channels_last)
    return torch.cat([y, mean], -1)


def _first(value: Any) -> int:
    return value[0] if isinstance(value, (tuple, list)) else value


def _is_channels_last(x: torch.Tensor) -> bool:
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def _fold_conv_bn(conv: nn.Conv2d, bn: nn.Module | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of ``bn(conv(x))`` as one convolution (``bn`` in eval mode, or None)."""
    bias = conv.bias if conv.bias is not None else conv.weight.new_zeros(conv.out_channels)
    if bn is None:
        return conv.weight, bias
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
    return conv.weight * scale.view(-1, 1, 1, 1), (bias - bn.running_mean) * scale + bn.bias


# Official names.
gcn_unit = GCNUnit
mstcn_unit = MSTCNUnit
base_tcn = TemporalConv
