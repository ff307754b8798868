"""SkeletonAgent backbones ``GCN_Module_LLM`` and ``GCN_Module_LLM_K400``.

Same constructor arguments and state_dict as the official backbones, except:

* the per-class joint masks (``examplar``, Class×V×V) start at zero and are set from the agent
  state (:meth:`RecognizerGCN.set_agent_state`), not read from a ``.npy`` in the package;
* no text encoder lives in the backbone (the recognizer owns it, outside the state_dict);
  ``text_dim``/``text_key`` size and name the global projection ``linear_head[text_key]``;
* the channel count after the last stage is computed from the stage plan, so narrower and
  shallower variants work (the official hard-codes ``base_channels * 4``).

``forward(x)`` returns ``(features N×M×C×T×V, local_logits N×Class, global_embedding N×text_dim)``;
with ``compute_aux = False`` the last two are ``None`` (inference needs only the features).
"""
from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
from mmengine.runner import load_checkpoint

from skeletonagent.registry import MODELS
from skeletonagent.skeleton import Graph  # topology lives in skeleton/
from skeletonagent.skeleton.masks import MASK_STREAMS, row_weights

from .checkpointing import WithCp, check_with_cp, checkpoint_block
from .units import GCNUnit, MSTCNUnit, TemporalConv, fuse_backbone, refuse_training_if_fused

__all__ = ['GCN_Block', 'GCN_Module_LLM', 'GCN_Module_LLM_K400']

EPS = 1e-4
_COMMON_ARGS = ('act', 'norm', 'g1x1')


def _split_block_kwargs(kwargs: dict) -> tuple[dict, dict]:
    """Route ``gcn_*``/``tcn_*`` keyword arguments (and the common ``act``/``norm``/``g1x1``)."""
    kwargs = dict(kwargs)
    for arg in _COMMON_ARGS:
        if arg in kwargs:
            value = kwargs.pop(arg)
            kwargs['tcn_' + arg] = value
            kwargs['gcn_' + arg] = value
    gcn_kwargs = {k[4:]: v for k, v in kwargs.items() if k.startswith('gcn_')}
    tcn_kwargs = {k[4:]: v for k, v in kwargs.items() if k.startswith('tcn_')}
    unknown = sorted(k for k in kwargs if not (k.startswith('gcn_') or k.startswith('tcn_')))
    if unknown:
        raise TypeError(f'GCN_Block: unexpected keyword arguments {unknown}')
    # g1x1 is accepted by the official routing but used by no unit of this model
    gcn_kwargs.pop('g1x1', None)
    tcn_kwargs.pop('g1x1', None)
    return gcn_kwargs, tcn_kwargs


class GCN_Block(nn.Module):  # noqa: N801 - the official name
    """Dynamic GCN unit → multi-scale TCN, plus residual and ReLU (official ``GCN_Block``).

    ``with_cp`` (mmcv's name): in training, keep only the block's input for backward and
    recompute the block's forward there (``torch.utils.checkpoint``); ``'selective'`` also keeps
    the outputs of its convolutions and matrix products and recomputes only what lies between
    them (see ``checkpointing``). Batch-norm running statistics are updated once.
    """

    def __init__(self, in_channels: int, out_channels: int, A: torch.Tensor, stride: int = 1,
                 residual: bool = True, with_cp: WithCp = False, **kwargs: Any) -> None:
        super().__init__()
        gcn_kwargs, tcn_kwargs = _split_block_kwargs(kwargs)
        self.gcn = GCNUnit(in_channels, out_channels, A, **gcn_kwargs)
        self.tcn = MSTCNUnit(out_channels, out_channels, stride=stride, **tcn_kwargs)
        self.relu = nn.ReLU(inplace=True)       # on a fresh sum, or on the TCN's last norm output
        self.with_cp = check_with_cp(with_cp, 'GCN_Block')
        if not residual:
            self.residual_mode = 'none'
        elif in_channels == out_channels and stride == 1:
            self.residual_mode = 'identity'
        else:
            self.residual_mode = 'conv'
            self.residual = TemporalConv(in_channels, out_channels, kernel_size=1, stride=stride)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.tcn(self.gcn(x))              # a norm's (or dropout's) output: backward keeps neither
        if self.residual_mode == 'identity':
            out = out.add_(x)
        elif self.residual_mode == 'conv':
            out = out.add_(self.residual(x))
        return self.relu(out)

    def forward(self, x: torch.Tensor, A: torch.Tensor | None = None) -> torch.Tensor:
        if self.with_cp and self.training:
            return checkpoint_block(self, self._forward, x, selective=self.with_cp == 'selective')
        return self._forward(x)

    def fuse(self) -> None:
        """Fold conv + BN pairs for inference (see :meth:`GCNUnit.fuse`)."""
        self.gcn.fuse()
        self.tcn.fuse()
        if self.residual_mode == 'conv':
            self.residual.fuse()


def _to_blocks(x: torch.Tensor, nm: int, t: int, v: int, c: int) -> torch.Tensor:
    """N×M×T×V×C (any strides) → (N·M)×C×T×V in channels-last memory order, which the units
    keep throughout: their 1×1 convolutions of one input run as one product on it without
    copies (``units.pointwise_convs``; see the ``units`` docstring for the measured gain)."""
    return x.reshape(nm, t, v, c).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)


def _channels_last_params(blocks: nn.ModuleList) -> nn.ModuleList:
    """``blocks`` with their convolution weights in channels-last memory order, the layout in
    which oneDNN returns their gradients for channels-last activations. With contiguous weights
    each gradient came back with other strides than its parameter: DDP warned that they differ
    from its bucket views and copied them every step, and 2-process gloo runs sometimes aborted
    at exit (``bench/README.md``). Values, names and shapes are unchanged (checkpoints load
    either way)."""
    return blocks.to(memory_format=torch.channels_last)


def _features_out(x: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """(N·M)×C×T×V block output → N×M×C×T×V features."""
    return x.reshape((n, m) + x.shape[1:])


def _layer_kwargs(kwargs: dict, num_stages: int) -> list[dict]:
    """Per-stage keyword arguments: a tuple of length ``num_stages`` gives one value per stage."""
    per_stage = [copy.deepcopy(kwargs) for _ in range(num_stages)]
    for key, value in kwargs.items():
        if isinstance(value, tuple) and len(value) == num_stages:
            for i in range(num_stages):
                per_stage[i][key] = value[i]
    per_stage[0].pop('tcn_dropout', None)
    per_stage[0].pop('g1x1', None)
    per_stage[0].pop('gcn_g1x1', None)
    return per_stage


class _GCNModuleBase(nn.Module):
    """Shared parts: stage plan, local joint-constraint branch and global text branch."""

    def __init__(self, graph_cfg: dict, in_channels: int, base_channels: int, ch_ratio: float,
                 num_stages: int, inflate_stages: Sequence[int], down_stages: Sequence[int],
                 data_bn_type: str, num_person: int, pretrained: str | None, kwargs: dict) -> None:
        super().__init__()

        self.graph = Graph(**graph_cfg)
        A = self.adjacency()
        self.data_bn_type = data_bn_type
        self.llm_model = kwargs.pop('llm_model', 'gpt4o')
        modality = kwargs.pop('llm_modality', 'j')
        # motion streams share the masks of their static stream (official behaviour)
        self.llm_modality = MASK_STREAMS.get(modality, modality)
        self.num_classes = int(kwargs.pop('num_classes', 60))
        self.text_dim = int(kwargs.pop('text_dim', 512))
        self.text_key = str(kwargs.pop('text_key', 'ViT-B/32'))
        #: checkpoint every block in training (activation memory for recomputation, mmcv's
        #: name): False, True (all) or 'selective' (all but the products)
        self.with_cp = check_with_cp(kwargs.pop('with_cp', False), type(self).__name__)
        self.kwargs = kwargs
        self.in_channels = in_channels
        self.base_channels = base_channels
        self.ch_ratio = ch_ratio
        self.inflate_stages = list(inflate_stages)
        self.down_stages = list(down_stages)
        self.num_person = num_person
        self.pretrained = pretrained
        self.num_point = A.size(1)
        #: compute the local/global branches in forward (not needed for inference)
        self.compute_aux = True
        self._fused = False

    def adjacency(self) -> torch.Tensor:
        """The graph's initial adjacency subsets, float32 K×V×V."""
        return torch.tensor(self.graph.A, dtype=torch.float32)

    # -- construction helpers -----------------------------------------------------------------
    def _build_stages(self, A: torch.Tensor, num_stages: int, lw_kwargs: list[dict],
                      with_first: bool) -> tuple[list[nn.Module], int]:
        modules: list[nn.Module] = []
        base = self.base_channels
        if with_first:
            modules.append(GCN_Block(self.in_channels, base, A.clone(), 1, residual=False, with_cp=self.with_cp,
                                     **lw_kwargs[0]))
        inflate_times = 0
        channels = base
        for i in range(2, num_stages + 1):
            stride = 1 + (i in self.down_stages)
            in_ch = channels
            if i in self.inflate_stages:
                inflate_times += 1
            channels = int(self.base_channels * self.ch_ratio ** inflate_times + EPS)
            modules.append(GCN_Block(in_ch, channels, A.clone(), stride, with_cp=self.with_cp, **lw_kwargs[i - 1]))
        return modules, channels

    def _build_branches(self, out_channels: int) -> None:
        self.out_channels = out_channels
        # local joint constraints: Class × V × V masks (agent state, not trained)
        self.examplar = nn.Parameter(torch.zeros(self.num_classes, self.num_point, self.num_point),
                                     requires_grad=False)
        self.direct_fc = nn.Conv2d(out_channels, 1, 1, 1)
        # global semantics alignment: projection into the text embedding space
        self.linear_head = nn.ModuleDict()
        head = nn.Linear(out_channels, self.text_dim)
        nn.init.kaiming_normal_(head.weight, mode='fan_out')
        nn.init.constant_(head.bias, 0)
        self.linear_head[self.text_key] = head
        self.logit_scale = nn.Parameter(torch.ones(1, 1) * math.log(1 / 0.07))

    def init_weights(self) -> None:
        """Load ``pretrained`` (a checkpoint path) non-strictly, as the official backbone does."""
        if isinstance(self.pretrained, str):
            load_checkpoint(self, self.pretrained, map_location='cpu', strict=False)

    # -- inference ----------------------------------------------------------------------------
    @property
    def fused(self) -> bool:
        """Whether :meth:`fuse` has folded the batch norms (inference only from then on)."""
        return self._fused

    def fuse(self) -> _GCNModuleBase:
        """Fold every batch norm that follows a convolution into it, once, for inference
        (``torch.nn.utils.fusion.fuse_conv_bn_eval``; the forward is unchanged).

        Call after loading the weights and ``eval()``; outputs stay the same up to float
        rounding. The folded BN entries leave the state_dict, so a fused model can neither
        be trained (``train()`` raises) nor saved as a checkpoint. Returns ``self``."""
        return fuse_backbone(self)

    def train(self, mode: bool = True) -> _GCNModuleBase:
        refuse_training_if_fused(self, mode)
        return super().train(mode)

    # -- branches -----------------------------------------------------------------------------
    def local_logits(self, feat: torch.Tensor) -> torch.Tensor:
        """Class logits of the joint-constraint branch, N×Class, from features N×M×C×T×V.

        Official: ``direct_fc(einsum('nmv,cvu->nmcu', x.mean(T), examplar)).mean(u)``. The 1×1
        conv and the mean over ``u`` are linear, so they are applied before the class
        contraction: ``(w·x̄)[v] · mean_u(examplar[k, v, u]) + b``; no N×C×Class×V tensor.
        """
        n, m, c, _, v = feat.shape
        pooled = feat.mean(3)                                             # N M C V
        weight = self.direct_fc.weight.view(1, c)
        joint_score = torch.matmul(weight, pooled.reshape(n * m, c, v))   # NM 1 V
        mask_mean = row_weights(self.examplar)                            # Class V
        logits = torch.matmul(joint_score.squeeze(1), mask_mean.t()) + self.direct_fc.bias
        return logits.view(n, m, self.num_classes).mean(1)

    def global_embedding(self, feat: torch.Tensor) -> torch.Tensor:
        """Projection of the pooled features into the text space, N×text_dim."""
        n, m, c = feat.shape[:3]
        pooled = feat.reshape(n, m, c, -1).mean(3).mean(1)
        return self.linear_head[self.text_key](pooled)

    def extract_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor, with_aux: bool | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """x: N×M×T×V×C → (features N×M×C'×T'×V, local logits, global embedding); the branches
        are skipped (None) when ``with_aux`` is False (default: ``self.compute_aux``)."""
        feat = self.extract_features(x)
        if not (self.compute_aux if with_aux is None else with_aux):
            return feat, None, None
        return feat, self.local_logits(feat), self.global_embedding(feat)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 5:
            raise ValueError(f'{type(self).__name__}: expected keypoint N×M×T×V×C, got shape {tuple(x.shape)}')
        if x.shape[3] != self.num_point or x.shape[4] != self.in_channels:
            raise ValueError(f'{type(self).__name__}: expected V={self.num_point} joints and '
                             f'C={self.in_channels} channels, got shape {tuple(x.shape)}')


@MODELS.register_module()
class GCN_Module_LLM(_GCNModuleBase):  # noqa: N801 - the official name
    """Backbone of SkeletonAgent (NTU, UAV, FineGYM configs): joint embedding, positional
    embedding and data BN, then ``num_stages - 1`` GCN blocks (official ``GCN_Module_LLM``)."""

    def __init__(self, graph_cfg: dict, in_channels: int = 3, base_channels: int = 96, ch_ratio: float = 2,
                 num_stages: int = 10, inflate_stages: Sequence[int] = (5, 8),
                 down_stages: Sequence[int] = (5, 8), data_bn_type: str = 'MVC', num_person: int = 2,
                 pretrained: str | None = None, **kwargs: Any) -> None:
        super().__init__(graph_cfg, in_channels, base_channels, ch_ratio, num_stages, inflate_stages,
                         down_stages, data_bn_type, num_person, pretrained, kwargs)
        A, V = self.adjacency(), self.num_point
        if data_bn_type == 'MVC':
            self.data_bn = nn.BatchNorm1d(num_person * base_channels * V)
        elif data_bn_type == 'VC':
            self.data_bn = nn.BatchNorm1d(base_channels * V)
        else:
            self.data_bn = nn.Identity()
        lw_kwargs = _layer_kwargs(self.kwargs, num_stages)
        self.to_joint_embedding = nn.Linear(in_channels, base_channels)
        self.pos_embedding = nn.Parameter(torch.randn(1, V, base_channels))
        modules, out_channels = self._build_stages(A, num_stages, lw_kwargs, with_first=False)
        self._build_branches(out_channels)
        # Official quirk: with in_channels == base_channels it also skips the last block in
        # forward; here every built block always runs.
        self.num_stages = num_stages - 1 if in_channels == base_channels else num_stages
        self.gcn = _channels_last_params(nn.ModuleList(modules))

    def extract_features(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        n, m, t, v, _ = x.shape
        x = self.to_joint_embedding(x) + self.pos_embedding[0, :v]        # N M T V C
        c = x.shape[-1]
        if self.data_bn_type in ('MVC', 'VC'):
            # BN over (M,) V, C channels with statistics over N(, M) and T
            x = x.permute(0, 1, 3, 4, 2)                                  # N M V C T
            x = x.reshape(n, m * v * c, t) if self.data_bn_type == 'MVC' else x.reshape(n * m, v * c, t)
            x = self.data_bn(x).view(n, m, v, c, t).permute(0, 1, 4, 2, 3)  # N M T V C
        x = _to_blocks(x, n * m, t, v, c)
        for block in self.gcn:
            x = block(x)
        return _features_out(x, n, m)


@MODELS.register_module()
class GCN_Module_LLM_K400(_GCNModuleBase):  # noqa: N801 - the official name
    """Backbone for Kinetics-400 (2D COCO skeletons): data BN on the raw input, a first GCN
    block from the input channels, then the stages (official ``GCN_Module_LLM_K400``)."""

    def __init__(self, graph_cfg: dict, in_channels: int = 3, base_channels: int = 96, ch_ratio: float = 2,
                 num_stages: int = 10, inflate_stages: Sequence[int] = (5, 8),
                 down_stages: Sequence[int] = (5, 8), data_bn_type: str = 'VC', num_person: int = 2,
                 pretrained: str | None = None, **kwargs: Any) -> None:
        super().__init__(graph_cfg, in_channels, base_channels, ch_ratio, num_stages, inflate_stages,
                         down_stages, data_bn_type, num_person, pretrained, kwargs)
        A, V = self.adjacency(), self.num_point
        if data_bn_type == 'MVC':
            self.data_bn = nn.BatchNorm1d(num_person * in_channels * V)
        elif data_bn_type == 'VC':
            self.data_bn = nn.BatchNorm1d(in_channels * V)
        else:
            self.data_bn = nn.Identity()
        lw_kwargs = _layer_kwargs(self.kwargs, num_stages)
        modules, out_channels = self._build_stages(A, num_stages, lw_kwargs,
                                                   with_first=in_channels != base_channels)
        self._build_branches(out_channels)
        self.num_stages = len(modules)
        self.gcn = _channels_last_params(nn.ModuleList(modules))

    def extract_features(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        n, m, t, v, c = x.shape
        x = x.permute(0, 1, 3, 4, 2)                                      # N M V C T
        if self.data_bn_type == 'MVC':
            x = self.data_bn(x.reshape(n, m * v * c, t))
        elif self.data_bn_type == 'VC':
            x = self.data_bn(x.reshape(n * m, v * c, t))
        x = _to_blocks(x.reshape(n, m, v, c, t).permute(0, 1, 4, 2, 3), n * m, t, v, c)
        for block in self.gcn:
            x = block(x)
        return _features_out(x, n, m)
