"""Memory-saving training kernels: ``BN → ReLU → op`` with the activation recomputed in backward.

In the official units every ``BN → ReLU → op`` keeps two full-size tensors for backward (the
BN input and the ReLU output, which the next op saves). The autograd functions here keep only
the BN input and the batch statistics and recompute ``relu(bn(x))`` (one elementwise pass)
during backward:

* :func:`graph_conv`: the graph unit's pre 1×1 conv → BN → ReLU → per-channel joint mixing →
  post 1×1 conv (the mixing matrices and the mixed tensor are recomputed too);
* :func:`bn_relu_branches`: the multi-scale TCN's BN → ReLU → temporal conv / max-pool branches;
* :func:`bn_relu_conv`: the TCN's ``transform`` (BN → ReLU → 1×1 conv).

Forward values are those of the module ops; gradients are the same functions evaluated with
aten's own backward kernels. Running statistics are updated exactly once, in forward, as
``nn.BatchNorm2d`` does. Only used when autograd records and the units are in training mode.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

__all__ = ['BNGroup', 'graph_conv', 'bn_relu_branches', 'bn_relu_conv', 'BranchSpec', 'add_joint_mean', 'temporal_mean']


class BNGroup:
    """Several ``BatchNorm2d`` modules normalising consecutive channel blocks of one tensor.

    :meth:`forward_train` runs one native batch norm over all their channels (batch statistics
    are per channel, so this equals running each module on its block), then writes the updated
    running statistics back into the modules.
    """

    def __init__(self, bns: Sequence[nn.BatchNorm2d]) -> None:
        self.bns = list(bns)
        eps = {bn.eps for bn in self.bns}
        momenta = {bn.momentum for bn in self.bns}
        tracks = {bn.track_running_stats for bn in self.bns}
        affine = {bn.affine for bn in self.bns}
        if len(eps) != 1 or len(momenta) != 1 or len(tracks) != 1 or affine != {True}:
            raise ValueError('BNGroup: the batch norms must share eps, momentum and running-stat tracking '
                             'and be affine')
        self.eps = self.bns[0].eps
        self.sizes = [bn.num_features for bn in self.bns]

    def params(self) -> tuple[torch.Tensor, torch.Tensor]:
        if len(self.bns) == 1:
            return self.bns[0].weight, self.bns[0].bias
        return torch.cat([bn.weight for bn in self.bns]), torch.cat([bn.bias for bn in self.bns])

    @torch.no_grad()
    def forward_train(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(normalised x, save_mean, save_invstd)``; updates the running statistics."""
        first = self.bns[0]
        momentum = first.momentum
        running_mean = running_var = None
        if first.track_running_stats:
            for bn in self.bns:
                bn.num_batches_tracked.add_(1)
            if momentum is None:
                momentum = 1.0 / float(first.num_batches_tracked)
            if len(self.bns) == 1:
                running_mean, running_var = first.running_mean, first.running_var
            else:
                running_mean = torch.cat([bn.running_mean for bn in self.bns])
                running_var = torch.cat([bn.running_var for bn in self.bns])
        out, save_mean, save_invstd = torch.native_batch_norm(
            x, weight, bias, running_mean, running_var, True, momentum if momentum is not None else 0.0, self.eps)
        if running_mean is not None and len(self.bns) > 1:
            for bn, rm, rv in zip(self.bns, running_mean.split(self.sizes), running_var.split(self.sizes)):
                bn.running_mean.copy_(rm)
                bn.running_var.copy_(rv)
        return out, save_mean, save_invstd


def _recompute_bn_relu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, save_mean: torch.Tensor,
                       save_invstd: torch.Tensor) -> torch.Tensor:
    """``relu((x - mean)·invstd·weight + bias)`` from saved batch statistics."""
    shape = (1, -1) + (1,) * (x.dim() - 2)
    scale = (save_invstd * weight).view(shape)
    shift = (bias - save_mean * save_invstd * weight).view(shape)
    return torch.addcmul(shift, x, scale).relu_()


def _bn_backward(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, save_mean: torch.Tensor,
                 save_invstd: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return torch.ops.aten.native_batch_norm_backward(
        grad, x, weight, None, None, save_mean, save_invstd, True, eps, [True, True, True])


def _channels_last_like(x: torch.Tensor) -> bool:
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


# -- GCN unit: pre 1×1 conv → BN → ReLU → per-channel joint mixing → post 1×1 conv -----------
def _rows(x: torch.Tensor) -> torch.Tensor:
    """N×C×T×V → N×C×(T·V) view (contiguous or channels-last input)."""
    return x.flatten(2)


class _GraphConv(torch.autograd.Function):
    """``post(relu(bn(pre(x))) ⊛ (shared + alpha·tanh(x1_v - x2_w)))``, where ``⊛`` mixes the
    joints of every (sample, subset, channel) by its own V×V matrix.

    The 1×1 convolutions run as matrix products that read channels-last ``x`` and write the
    N×K×C×T×V rows the joint mixing needs, and back, so no layout copies are made. Only the
    pre-BN activation and small tensors are saved; the activation, the N×K×C×V×V mixing
    matrices and the mixed tensor are recomputed in backward.
    """

    @staticmethod
    def forward(ctx, x, pre_weight, pre_bias, bn_weight, bn_bias, shared, x1, x2, alpha, post_weight, post_bias,
                group):
        n, cin, t, v = x.shape
        k, c = x1.shape[1], x1.shape[2]
        p = torch.matmul(pre_weight.view(k * c, cin), _rows(x)).add_(pre_bias.view(-1, 1)).view(n, k * c, t, v)
        h, save_mean, save_invstd = group.forward_train(p, bn_weight, bn_bias)
        mixing = torch.addcmul(shared, _tanh_diff(x1, x2), alpha)
        y = torch.matmul(h.relu_().view(n, k, c, t, v), mixing)
        del h, mixing
        out = _post_matmul(y.view(n, k * c, t * v), post_weight, post_bias, x, t, v)
        ctx.save_for_backward(x, pre_weight, p, bn_weight, bn_bias, save_mean, save_invstd, shared, x1, x2, alpha,
                              post_weight, post_bias)
        ctx.eps = group.eps
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        (x, pre_weight, p, bn_weight, bn_bias, save_mean, save_invstd, shared, x1, x2, alpha,
         post_weight, post_bias) = ctx.saved_tensors
        n, cin, t, v = x.shape
        k, c = x1.shape[1], x1.shape[2]
        cout = post_weight.shape[0]
        h = _recompute_bn_relu(p, bn_weight, bn_bias, save_mean, save_invstd)
        h5 = h.view(n, k, c, t, v)
        inter = _tanh_diff(x1, x2)
        mixing = torch.addcmul(shared, inter, alpha)
        y = torch.matmul(h5, mixing).view(n, k * c, t * v)
        # post 1×1 conv
        g_rows = _rows(grad_out)                                             # N × Cout × TV
        grad_post_w = torch.matmul(g_rows, y.transpose(1, 2)).sum(0).view_as(post_weight)
        grad_post_b = grad_out.sum((0, 2, 3))
        del y
        grad_y = torch.matmul(post_weight.view(cout, k * c).t(), g_rows).view(n, k, c, t, v)
        # joint mixing
        grad_mixing = torch.matmul(h5.transpose(-1, -2), grad_y)            # N K C V W
        grad_h = torch.matmul(grad_y, mixing.transpose(-1, -2)).view(n, k * c, t, v)
        del grad_y, mixing, h5
        grad_h = torch.ops.aten.threshold_backward(grad_h, h, 0)
        del h
        grad_p, grad_w, grad_b = _bn_backward(grad_h, p, bn_weight, save_mean, save_invstd, ctx.eps)
        del grad_h
        # pre 1×1 conv
        gp_rows = grad_p.view(n, k * c, t * v)
        x_rows = _rows(x)
        grad_pre_w = torch.matmul(gp_rows, x_rows.transpose(1, 2)).sum(0).view_as(pre_weight)
        grad_pre_b = gp_rows.sum((0, 2))
        w_pre = pre_weight.view(k * c, cin)
        if _channels_last_like(x):
            grad_x = torch.matmul(gp_rows.transpose(1, 2), w_pre).view(n, t, v, cin).permute(0, 3, 1, 2)
        else:
            grad_x = torch.matmul(w_pre.t(), gp_rows).view(n, cin, t, v)
        del grad_p, gp_rows
        grad_shared = grad_mixing.sum(2, keepdim=True)
        grad_alpha = (grad_mixing * inter).sum().reshape(alpha.shape)
        # d tanh(x1_v - x2_w) = (1 - tanh²)·(dx1_v - dx2_w)
        grad_diff = grad_mixing.mul_(alpha).mul_(1 - inter * inter)
        grad_x1 = grad_diff.sum(-1)
        grad_x2 = grad_diff.sum(-2).neg_()
        return (grad_x, grad_pre_w, grad_pre_b, grad_w, grad_b, grad_shared, grad_x1, grad_x2, grad_alpha,
                grad_post_w, grad_post_b, None)


def _post_matmul(y_rows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, like: torch.Tensor, t: int,
                 v: int) -> torch.Tensor:
    """1×1 convolution of N×C×(T·V) rows, in the memory format of ``like``."""
    n = y_rows.shape[0]
    w = weight.view(weight.shape[0], -1)
    if _channels_last_like(like):
        out = torch.matmul(y_rows.transpose(1, 2), w.t()).add_(bias)       # N × TV × Cout
        return out.view(n, t, v, -1).permute(0, 3, 1, 2)
    return torch.matmul(w, y_rows).add_(bias.view(-1, 1)).view(n, -1, t, v)


def _tanh_diff(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    return (x1.unsqueeze(-1) - x2.unsqueeze(-2)).tanh_()


def graph_conv(x: torch.Tensor, pre: nn.Conv2d, bn: nn.BatchNorm2d, shared: torch.Tensor, x1: torch.Tensor,
               x2: torch.Tensor, alpha: torch.Tensor, post: nn.Conv2d) -> torch.Tensor:
    """Training-mode GCN core (see :class:`GCNUnit`): pre conv → BN → ReLU → joint mixing → post conv."""
    return _GraphConv.apply(x, pre.weight, pre.bias, bn.weight, bn.bias, shared, x1, x2, alpha, post.weight,
                            post.bias, BNGroup([bn]))


# -- multi-scale TCN: BN → ReLU → temporal convolutions / max-pool, per branch ----------------
class BranchSpec:
    """One BN'd branch of the multi-scale TCN: a temporal conv ``(weight, bias, dilation)`` or
    a max-pool ``kernel`` (weight None)."""

    def __init__(self, channels: int, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None,
                 dilation: int = 1, kernel: int = 3, pad: int = 1) -> None:
        self.channels = channels
        self.weight = weight
        self.bias = bias
        self.dilation = dilation
        self.kernel = kernel
        self.pad = pad


def _branch_forward(spec: BranchSpec, h: torch.Tensor, stride: int) -> torch.Tensor:
    if spec.weight is None:
        return F.max_pool2d(h, (spec.kernel, 1), (stride, 1), (spec.pad, 0))
    return F.conv2d(h, spec.weight, spec.bias, (stride, 1), (spec.pad, 0), (spec.dilation, 1))


class _BNReLUBranches(torch.autograd.Function):
    """Branch outputs ``[op_i(relu(bn(y))[:, block_i]) for i]`` concatenated over channels."""

    @staticmethod
    def forward(ctx, y, bn_weight, bn_bias, group, specs, stride, *branch_params):
        h, save_mean, save_invstd = group.forward_train(y, bn_weight, bn_bias)
        h.relu_()
        outs = [_branch_forward(spec, block, stride)
                for spec, block in zip(specs, h.split([s.channels for s in specs], 1))]
        del h
        out = torch.cat(outs, 1)
        ctx.save_for_backward(y, bn_weight, bn_bias, save_mean, save_invstd, *branch_params)
        ctx.specs = specs
        ctx.stride = stride
        ctx.eps = group.eps
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        y, bn_weight, bn_bias, save_mean, save_invstd = ctx.saved_tensors[:5]
        specs, stride = ctx.specs, ctx.stride
        h = _recompute_bn_relu(y, bn_weight, bn_bias, save_mean, save_invstd)
        channels = [s.channels for s in specs]
        grad_h = torch.empty_like(h)
        param_grads = []
        for spec, block, g_out, g_in in zip(specs, h.split(channels, 1), grad_out.split(channels, 1),
                                            grad_h.split(channels, 1)):
            if spec.weight is None:
                _, idx = F.max_pool2d(block, (spec.kernel, 1), (stride, 1), (spec.pad, 0), return_indices=True)
                g = torch.ops.aten.max_pool2d_with_indices_backward(
                    g_out, block, [spec.kernel, 1], [stride, 1], [spec.pad, 0], [1, 1], False, idx)
            else:
                g, gw, gb = torch.ops.aten.convolution_backward(
                    g_out, block, spec.weight, [spec.bias.shape[0]], [stride, 1], [spec.pad, 0],
                    [spec.dilation, 1], False, [0, 0], 1, [True, True, True])
                param_grads += [gw, gb]
            g_in.copy_(g)
        grad_h = torch.ops.aten.threshold_backward(grad_h, h, 0)
        del h
        grad_y, grad_w, grad_b = _bn_backward(grad_h, y, bn_weight, save_mean, save_invstd, ctx.eps)
        return (grad_y, grad_w, grad_b, None, None, None, *param_grads)


def bn_relu_branches(y: torch.Tensor, bns: Sequence[nn.BatchNorm2d], specs: Sequence[BranchSpec],
                     stride: int) -> torch.Tensor:
    """Training-mode ``cat([op_i(relu(bn_i(y_i)))])`` over the channel blocks ``y_i`` of ``y``."""
    group = BNGroup(bns)
    weight, bias = group.params()
    params = [t for s in specs if s.weight is not None for t in (s.weight, s.bias)]
    return _BNReLUBranches.apply(y, weight, bias, group, list(specs), stride, *params)


# -- BN → ReLU → convolution -------------------------------------------------------------------
class _BNReLUConv(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x, bn_weight, bn_bias, conv_weight, conv_bias, group):
        h, save_mean, save_invstd = group.forward_train(x, bn_weight, bn_bias)
        out = F.conv2d(h.relu_(), conv_weight, conv_bias)
        ctx.save_for_backward(x, bn_weight, bn_bias, save_mean, save_invstd, conv_weight, conv_bias)
        ctx.eps = group.eps
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        x, bn_weight, bn_bias, save_mean, save_invstd, conv_weight, conv_bias = ctx.saved_tensors
        h = _recompute_bn_relu(x, bn_weight, bn_bias, save_mean, save_invstd)
        grad_h, grad_cw, grad_cb = torch.ops.aten.convolution_backward(
            grad_out, h, conv_weight, [conv_bias.shape[0]], [1, 1], [0, 0], [1, 1], False, [0, 0], 1,
            [True, True, True])
        grad_h = torch.ops.aten.threshold_backward(grad_h, h, 0)
        del h
        grad_x, grad_w, grad_b = _bn_backward(grad_h, x, bn_weight, save_mean, save_invstd, ctx.eps)
        return grad_x, grad_w, grad_b, grad_cw, grad_cb, None


def bn_relu_conv(x: torch.Tensor, bn: nn.BatchNorm2d, conv: nn.Conv2d) -> torch.Tensor:
    """Training-mode ``conv(relu(bn(x)))`` for a 1×1 convolution."""
    return _BNReLUConv.apply(x, bn.weight, bn.bias, conv.weight, conv.bias, BNGroup([bn]))


# -- joint columns + weighted joint-mean column ----------------------------------------------
class _AddJointMean(torch.autograd.Function):
    """``out[..., :V] + out[..., V:] · coeff`` for an N×C×T×(V+1) tensor whose last column is
    the branch output of the joint mean; the gradient keeps ``out``'s memory layout."""

    @staticmethod
    def forward(ctx, out, coeff):
        v = out.shape[-1] - 1
        local, glob = out.split([v, 1], -1)
        glob = glob.contiguous()
        ctx.save_for_backward(glob, coeff)
        ctx.out_shape = out.shape
        ctx.channels_last = _channels_last_like(out)
        return torch.addcmul(local, glob, coeff)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        glob, coeff = ctx.saved_tensors
        v = coeff.shape[0]
        fmt = torch.channels_last if ctx.channels_last else torch.contiguous_format
        grad_out = torch.empty(ctx.out_shape, dtype=grad.dtype, device=grad.device, memory_format=fmt)
        grad_out[..., :v].copy_(grad)
        grad_out[..., v:].copy_((grad * coeff).sum(-1, keepdim=True))
        grad_coeff = (grad * glob).sum((0, 1, 2))
        return grad_out, grad_coeff


def add_joint_mean(out: torch.Tensor, coeff: torch.Tensor) -> torch.Tensor:
    """Joint columns plus the ``coeff``-weighted joint-mean column (official ``local + global``)."""
    return _AddJointMean.apply(out, coeff)


# -- temporal mean -------------------------------------------------------------------------------
class _TemporalMean(torch.autograd.Function):
    """``x.mean(2, keepdim=True)`` whose gradient stays a broadcast view (autograd's own
    materialises an N×C×T×V tensor in contiguous layout and adds it to a channels-last one)."""

    @staticmethod
    def forward(ctx, x):
        ctx.shape = x.shape
        return x.mean(2, keepdim=True)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        return (grad / ctx.shape[2]).expand(ctx.shape)


def temporal_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean over the frames (dim 2) of N×C×T×V, kept as N×C×1×V."""
    if not (torch.is_grad_enabled() and x.requires_grad):
        return x.mean(2, keepdim=True)
    return _TemporalMean.apply(x)
