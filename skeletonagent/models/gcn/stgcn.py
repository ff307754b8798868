"""PYSKL's ST-GCN backbone (``STGCN``), the ST-GCN++ baseline.

Arguments, keyword routing and ``state_dict`` names follow PYSKL's ``pyskl/models/gcns/stgcn.py``
so PYSKL configs build unchanged and PYSKL checkpoints load without renaming:

* ``gcn_*`` keywords go to the graph unit (:class:`.pyskl_units.GraphConv`: ``gcn_adaptive``
  'init'|'offset'|'importance'|None, ``gcn_conv_pos``, ``gcn_with_res``, ``gcn_norm``,
  ``gcn_act``), ``tcn_*`` keywords to the temporal unit (``tcn_type`` 'unit_tcn'|'mstcn',
  ``tcn_dropout``, ``tcn_ms_cfg``, ``tcn_mid_channels``, ``tcn_norm`` for 'unit_tcn');
* a tuple of ``num_stages`` values gives one value per stage; the first stage never takes
  ``tcn_dropout``;
* ST-GCN++ is ``gcn_adaptive='init', gcn_with_res=True, tcn_type='mstcn'`` on the 'spatial'
  graph.

The input is N×M×T×V×C (persons, frames, joints, channels), like the SkeletonAgent backbones;
the output is the N×M×C'×T'×V feature map (PYSKL's), which ``GCNHead`` pools. The backbone has
no agent branches (no joint masks, no text projection); ``RecognizerGCN`` trains it with the
classification loss only.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
from mmengine.runner import load_checkpoint

from skeletonagent.registry import MODELS
from skeletonagent.skeleton import Graph  # topology lives in skeleton/

from .checkpointing import WithCp, check_with_cp, checkpoint_block
from .pyskl_units import GraphConv, MultiScaleTCN, TemporalConvUnit
from .units import fuse_backbone, refuse_training_if_fused

__all__ = ['STGCN', 'STGCNBlock']

EPS = 1e-4


class STGCNBlock(nn.Module):
    """Graph unit → temporal unit, plus residual, then ReLU (PYSKL ``STGCNBlock``).

    State dict: ``gcn.*``, ``tcn.*`` and, for a strided or widening block, ``residual.conv.*``
    and ``residual.bn.*``.
    """

    def __init__(self, in_channels: int, out_channels: int, A: torch.Tensor, stride: int = 1,
                 residual: bool = True, with_cp: WithCp = False, **kwargs: Any) -> None:
        super().__init__()
        self.with_cp = check_with_cp(with_cp, 'STGCNBlock')
        unknown = sorted(k for k in kwargs if not (k.startswith('gcn_') or k.startswith('tcn_')))
        if unknown:
            raise TypeError(f'STGCN: unexpected keyword arguments {unknown} (block arguments must '
                            "start with 'gcn_' or 'tcn_')")
        gcn_kwargs = {k[4:]: v for k, v in kwargs.items() if k.startswith('gcn_')}
        tcn_kwargs = {k[4:]: v for k, v in kwargs.items() if k.startswith('tcn_')}
        gcn_type = gcn_kwargs.pop('type', 'unit_gcn')
        if gcn_type != 'unit_gcn':
            raise ValueError(f"STGCN: gcn_type must be 'unit_gcn', got {gcn_type!r}")
        tcn_type = tcn_kwargs.pop('type', 'unit_tcn')
        if tcn_type not in ('unit_tcn', 'mstcn'):
            raise ValueError(f"STGCN: tcn_type must be 'unit_tcn' or 'mstcn', got {tcn_type!r}")

        self.gcn = GraphConv(in_channels, out_channels, A, **gcn_kwargs)
        if tcn_type == 'unit_tcn':
            self.tcn = TemporalConvUnit(out_channels, out_channels, 9, stride=stride, **tcn_kwargs)
        else:
            self.tcn = MultiScaleTCN(out_channels, out_channels, stride=stride, **tcn_kwargs)
        self.relu = nn.ReLU()
        if not residual:
            self.residual_mode = 'none'
        elif in_channels == out_channels and stride == 1:
            self.residual_mode = 'identity'
        else:
            self.residual_mode = 'conv'
            self.residual = TemporalConvUnit(in_channels, out_channels, kernel_size=1, stride=stride)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.tcn(self.gcn(x))
        if self.residual_mode == 'identity':
            out = out + x
        elif self.residual_mode == 'conv':
            out = out + self.residual(x)
        return self.relu(out)

    def forward(self, x: torch.Tensor, A: torch.Tensor | None = None) -> torch.Tensor:
        if self.with_cp and self.training:
            return checkpoint_block(self, self._forward, x, selective=self.with_cp == 'selective')
        return self._forward(x)

    def fuse(self) -> None:
        """Fold conv + BN pairs for inference."""
        self.gcn.fuse()
        self.tcn.fuse()
        if self.residual_mode == 'conv':
            self.residual.fuse()


def _stage_kwargs(kwargs: dict, num_stages: int) -> list[dict]:
    """One keyword dict per stage: a tuple of length ``num_stages`` is split over the stages."""
    per_stage = [copy.deepcopy(kwargs) for _ in range(num_stages)]
    for key, value in kwargs.items():
        if isinstance(value, tuple) and len(value) == num_stages:
            for i in range(num_stages):
                per_stage[i][key] = value[i]
    per_stage[0].pop('tcn_dropout', None)
    return per_stage


@MODELS.register_module()
class STGCN(nn.Module):
    """ST-GCN / ST-GCN++ backbone (PYSKL ``STGCN``).

    Args:
        graph_cfg: ``skeletonagent.skeleton.Graph`` arguments (``layout``, ``mode``, ...).
        in_channels: input channels C (3 for 3D joints, 2 for 2D).
        base_channels: channels of the first stage.
        data_bn_type: 'VC' (BatchNorm1d over V·C, statistics over N·M and T), 'MVC' (over
            M·V·C, needs ``num_person``) or anything else for none.
        ch_ratio: channel multiplier at every inflate stage.
        num_person: persons M (only used by 'MVC').
        num_stages: number of stages (blocks); stages are numbered from 1.
        inflate_stages: stages whose output channels are multiplied by ``ch_ratio``.
        down_stages: stages with temporal stride 2.
        pretrained: checkpoint path loaded (non-strictly) by :meth:`init_weights`.
        with_cp: checkpoint every block in training (``torch.utils.checkpoint``; see
            ``GCN_Block``): activation memory traded for a second forward in backward; True
            recomputes all of it, 'selective' all but the convolutions and matrix products.
        **kwargs: ``gcn_*`` / ``tcn_*`` block arguments (see the module docstring).

    As in PYSKL, when ``in_channels == base_channels`` there is no first (input) block and
    ``num_stages - 1`` blocks are built.
    """

    def __init__(self, graph_cfg: dict, in_channels: int = 3, base_channels: int = 64,
                 data_bn_type: str = 'VC', ch_ratio: float = 2, num_person: int = 2,
                 num_stages: int = 10, inflate_stages: Sequence[int] = (5, 8),
                 down_stages: Sequence[int] = (5, 8), pretrained: str | None = None,
                 with_cp: WithCp = False, **kwargs: Any) -> None:
        super().__init__()

        self.graph = Graph(**graph_cfg)
        A = torch.tensor(self.graph.A, dtype=torch.float32)
        num_joints = A.shape[1]
        self.data_bn_type = data_bn_type
        self.kwargs = kwargs
        self.in_channels = in_channels
        self.base_channels = base_channels
        self.ch_ratio = ch_ratio
        self.num_person = num_person
        self.inflate_stages = list(inflate_stages)
        self.down_stages = list(down_stages)
        self.num_point = num_joints
        self.pretrained = pretrained

        if data_bn_type == 'MVC':
            self.data_bn = nn.BatchNorm1d(num_person * in_channels * num_joints)
        elif data_bn_type == 'VC':
            self.data_bn = nn.BatchNorm1d(in_channels * num_joints)
        else:
            self.data_bn = nn.Identity()

        stage_kwargs = _stage_kwargs(kwargs, num_stages)
        modules: list[nn.Module] = []
        if in_channels != base_channels:
            modules.append(STGCNBlock(in_channels, base_channels, A.clone(), 1, residual=False,
                                      with_cp=with_cp, **stage_kwargs[0]))
        inflate_times = 0
        channels = base_channels
        for i in range(2, num_stages + 1):
            stride = 1 + (i in self.down_stages)
            if i in self.inflate_stages:
                inflate_times += 1
            out_channels = int(base_channels * ch_ratio ** inflate_times + EPS)
            modules.append(STGCNBlock(channels, out_channels, A.clone(), stride, with_cp=with_cp,
                                      **stage_kwargs[i - 1]))
            channels = out_channels
        self.gcn = nn.ModuleList(modules)
        self.num_stages = len(modules)
        #: channels of the output features (the head's ``in_channels``)
        self.out_channels = channels

    def init_weights(self) -> None:
        """Load ``pretrained`` (a checkpoint path) non-strictly, as PYSKL does."""
        if isinstance(self.pretrained, str):
            load_checkpoint(self, self.pretrained, map_location='cpu', strict=False)

    def fuse(self) -> STGCN:
        """Fold the batch norms that follow a convolution into it, once, for inference (see
        ``GCN_Module_LLM.fuse``). Returns ``self``."""
        return fuse_backbone(self)

    def train(self, mode: bool = True) -> STGCN:
        refuse_training_if_fused(self, mode)
        return super().train(mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: N×M×T×V×C → features N×M×C'×T'×V."""
        if x.dim() != 5:
            raise ValueError(f'STGCN: expected keypoint N×M×T×V×C, got shape {tuple(x.shape)}')
        n, m, t, v, c = x.shape
        if v != self.num_point or c != self.in_channels:
            raise ValueError(f'STGCN: expected V={self.num_point} joints and C={self.in_channels} '
                             f'channels, got shape {tuple(x.shape)}')
        x = x.permute(0, 1, 3, 4, 2).contiguous()                 # N M V C T
        if self.data_bn_type == 'MVC':
            x = self.data_bn(x.view(n, m * v * c, t))
        else:
            x = self.data_bn(x.view(n * m, v * c, t))
        x = x.view(n, m, v, c, t).permute(0, 1, 3, 4, 2).contiguous().view(n * m, c, t, v)
        for block in self.gcn:
            x = block(x)
        return x.reshape((n, m) + x.shape[1:])
