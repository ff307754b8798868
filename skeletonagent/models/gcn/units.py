"""Building blocks of the SkeletonAgent GCN: the dynamic graph unit and the multi-scale TCN.

Parameter names and shapes follow the official ``gcn_unit`` / ``mstcn_unit`` / ``base_tcn``, so
official checkpoints load unchanged, and the forward passes compute the same functions (checked
against a literal re-statement of the official code in ``tests/models/test_models.py``).

Every unit has one forward, built from torch modules and ops, for training and inference,
under autocast and with any norm layer (SyncBN included). Two things differ from the official
code, both exact rewrites: ``conv1``/``conv2`` of the graph unit run on the temporal mean of
their input (a 1×1 conv commutes with the mean: T times fewer multiply-adds), and the TCN's
joint-mean column is appended to its input once, not once per branch.

Speed and memory come from torch, not from hand-written kernels:

* layout: the backbone hands the blocks channels-last activations (N×C×T×V tensors stored as
  N×T×V×C) and keeps their convolution weights channels-last too; the 1×1 convolutions of one
  input run as one product (:func:`pointwise_convs`), and only the joint mixing's batched
  product runs on a contiguous copy (:func:`relayout`). ``bench/train_step.py`` measured this
  layout faster than the contiguous one with one convolution per branch (figures in
  ``bench/README.md``);
* training memory: backward keeps each activation once. The TCN appends the joints' mean to
  the outputs of its entry convolutions, not to a copy of its input, and the graph unit
  activates ``pre``'s output after copying it to the joint mixing's layout, so the
  activation's backward and the product's keep one tensor. With the NTU-60 model this cut
  the tensors kept for backward and the step's peak memory, at the same step time
  (``bench/train_step.py``; ``bench/README.md``, "backward keeps each activation once").
  Less memory still: ``with_cp`` on the blocks (``torch.utils.checkpoint``,
  see ``backbones.GCN_Block``); ``--compile`` for speed;
* inference: :meth:`GCNUnit.fuse` / :meth:`MSTCNUnit.fuse` / :meth:`TemporalConv.fuse` fold
  every BN that follows a convolution into it, once (``torch.nn.utils.fusion``), and swap the
  BN for ``nn.Identity``; the forward is unchanged.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_activation_layer, build_norm_layer
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ['GCNUnit', 'MSTCNUnit', 'TemporalConv', 'FrameStridedConv2d', 'gcn_unit', 'mstcn_unit', 'base_tcn',
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


def pointwise_convs(x: torch.Tensor, convs: Sequence[nn.Conv2d],
                    then: Callable[[torch.Tensor], torch.Tensor] | None = None) -> tuple[torch.Tensor, ...]:
    """``tuple(then(conv(x)) for conv in convs)`` for 1×1 convolutions of the same input
    (unpadded, ungrouped ``nn.Conv2d``, strided along time at most: a matrix product over
    channels, on every ``stride``-th frame), as one convolution with the weights stacked along
    the output channels, ``then`` applied once to the stacked output, and the result split
    (and, for a conv strided along time, every ``stride``-th frame kept). ``then`` must treat every
    channel and frame on its own, so that it commutes with the split and the frame selection
    (the MSTCN appends each channel's mean over the joints).

    Exact: every output value is the same dot product. Faster because one large matrix product
    runs far better than several with few output channels, above all in backward (oneDNN on
    CPU: the six 384→64 branch entries of a TCN take several times the time of one 384→384,
    and a strided 1×1 conv with few outputs far longer than the same product unstrided;
    ``bench/README.md``). The
    modules keep their own weights (state_dict, ``fuse()``); gradients reach each of them
    through the concatenation.

    Each output is copied out of the split into its own channels-last tensor. Handing on the
    strided views instead saved little peak memory and made the step slower
    (``bench/train_step.py --paths plain``; ``bench/README.md``): the norms and activations
    after it run far slower on a view whose rows skip the other branches' channels."""
    then = then or (lambda y: y)
    if len(convs) == 1 and convs[0].stride == (1, 1):
        return (then(convs[0](x)),)
    weight = torch.cat([conv.weight for conv in convs])
    bias = None
    if any(conv.bias is not None for conv in convs):
        bias = torch.cat([conv.weight.new_zeros(conv.out_channels) if conv.bias is None else conv.bias
                          for conv in convs])
    outs = torch.split(then(F.conv2d(x, weight, bias)), [conv.out_channels for conv in convs], 1)
    # frames are dropped on the N×T×V×C view: the gradient of that slice is channels-last too
    return tuple(channels_last(out if conv.stride[0] == 1 else _nctv(_ntvc(out)[:, ::conv.stride[0]]))
                 for conv, out in zip(convs, outs))


class FrameStridedConv2d(nn.Conv2d):
    """``nn.Conv2d`` that runs a pointwise convolution strided along time (1×1 kernel, no
    padding, stride ``(s, 1)``; the down-sampling residual of a stride-2 block) on every
    ``s``-th frame with stride 1: the same dot products, on half the frames for ``s = 2``.

    Why not the strided call: oneDNN's kernel for a strided 1×1 convolution corrupts the heap
    in backward on AVX-512 CPUs when the input is channels-last and its channel count is not a
    multiple of 16 (``docs/upstream/onednn_strided_pointwise.md``), so the backbones never
    call it. Any other convolution runs as ``nn.Conv2d``. State dict, ``stride`` and
    ``fold_conv_bn`` are those of ``nn.Conv2d``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        step = self.stride[0]
        if step == 1 or self.kernel_size[0] != 1 or self.padding[0] != 0:
            return super().forward(x)
        frames = x[:, :, ::step]
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            frames = channels_last(frames)
        return F.conv2d(frames, self.weight, self.bias, (1, self.stride[1]), self.padding, self.dilation,
                        self.groups)


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` (N×C×T×V) in channels-last memory order (a copy only when it is not already)."""
    return x.contiguous(memory_format=torch.channels_last)


class _Relayout(torch.autograd.Function):
    """``x`` in ``memory_format``; its gradient handed back in ``x``'s own layout.

    A plain ``contiguous()`` passes the gradient on in whatever layout it arrives, so a
    channels-last tensor that took a detour through a contiguous product (the joint mixing)
    would get a contiguous gradient, and every elementwise and norm backward after it would
    mix layouts (several times slower on CPU; ``bench/README.md``). Only memory order
    changes; values are untouched."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, memory_format: torch.memory_format) -> torch.Tensor:
        ctx.source = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) \
            and not x.is_contiguous() else torch.contiguous_format
        return x.contiguous(memory_format=memory_format)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad.contiguous(memory_format=ctx.source), None


def relayout(x: torch.Tensor, memory_format: torch.memory_format) -> torch.Tensor:
    """``x.contiguous(memory_format=...)`` whose gradient comes back in ``x``'s layout (see
    :class:`_Relayout`); the plain call when autograd does not record or ``x`` is in that
    layout already (``x`` itself then, which an in-place operation may modify like any output)."""
    if not (torch.is_grad_enabled() and x.requires_grad) or x.is_contiguous(memory_format=memory_format):
        return x.contiguous(memory_format=memory_format)
    return _Relayout.apply(x, memory_format)


def _ntvc(x: torch.Tensor) -> torch.Tensor:
    """N×C×T×V → the N×T×V×C view (contiguous for a channels-last ``x``)."""
    return x.permute(0, 2, 3, 1)


def _nctv(x: torch.Tensor) -> torch.Tensor:
    """N×T×V×C → the N×C×T×V view (channels-last memory for a contiguous ``x``)."""
    return x.permute(0, 3, 1, 2)


def with_joint_mean(x: torch.Tensor) -> torch.Tensor:
    """N×C×T×V → N×C×T×(V+1): the joints and their mean as one more joint, channels-last."""
    x = _ntvc(x)
    return _nctv(torch.cat([x, x.mean(2, keepdim=True)], 2))


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
        self.conv = FrameStridedConv2d(in_channels, out_channels, kernel_size=(kernel_size, 1),
                                       padding=(pad, 0), stride=(stride, 1), dilation=(dilation, 1))
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
        # the activation follows a copy (in `forward`) or a fresh sum (at the end): in place is safe
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
        x1, x2 = pointwise_convs(x_mean, (self.conv1, self.conv2))
        x1, x2 = x1.reshape(n, k, c, v), x2.reshape(n, k, c, v)
        intra = self._activate(self.intra_act, torch.matmul(x1.transpose(-1, -2), x2), -2)   # N K V W
        shared = (self.A + intra * self.beta[0]).unsqueeze(2)                                 # N K 1 V W
        inter = self._activate(self.inter_act, x1.unsqueeze(-1) - x2.unsqueeze(-2), -2)      # N K C V W
        return torch.addcmul(shared, inter, self.alpha[0])

    def forward(self, x: torch.Tensor, A: torch.Tensor | None = None) -> torch.Tensor:
        n, _, t, v = x.shape
        k, c = self.num_subsets, self.mid_channels
        mixing = self.joint_mixing(x)
        conv, norm, act = self.pre
        if self.down is None:
            h, res = norm(conv(x)), x
        else:                                   # pre and down read the same input: one product
            h, res = pointwise_convs(x, (conv, self.down[0]))
            h, res = norm(h), self.down[1](res)
        # activated after the copy to the product's layout: the activation's backward and the
        # product's keep the same tensor (activated before it, both layouts were kept)
        h = act(relayout(h, torch.contiguous_format)).view(n, k, c, t, v)
        y = relayout(torch.matmul(h, mixing).view(n, k * c, t, v), torch.channels_last)
        out = self.bn(self.post(y))
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
                branches.append(FrameStridedConv2d(in_channels, branch_c, kernel_size=1, stride=(stride, 1)))
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
        # every branch starts with a 1×1 conv of the unit's input (the strided '1x1' branch
        # included): forward runs those convs as one product (see :func:`pointwise_convs`)
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
        # Every branch sees the joints and their mean. A 1×1 conv commutes with the mean, so the
        # entry convs run on the joints and the mean is appended to their outputs: backward then
        # keeps the input that the activation before this unit keeps anyway, not a copy of it
        # with the mean column (exact up to rounding; one copy fewer per block).
        entries = pointwise_convs(x, [self._entry_conv(branch) for branch in self.branches], then=with_joint_mean)
        # the rest of each branch after its entry conv ('1x1' is the conv alone)
        outs = [branch[1:](entry) if isinstance(branch, nn.Sequential) else entry
                for branch, entry in zip(self.branches, entries)]
        out = _ntvc(torch.cat(outs, 1))
        local, glob = out.split([v, 1], 2)
        # the product saves `glob` for add_coeff's gradient: a copy, not a view of all of `out`
        feat = _nctv(torch.addcmul(local, glob.contiguous(), self.add_coeff[:v, None].to(out.dtype)))
        feat = self.bn(self.transform(feat))
        return self.drop(feat) if self.dropout > 0 else feat

    @staticmethod
    def _entry_conv(branch: nn.Module) -> nn.Conv2d:
        return branch[0] if isinstance(branch, nn.Sequential) else branch

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
