"""The plain eager reference of the benchmarks: the official SkeletonAgent model, as a user
running the official code would train it, with our state_dict.

It follows the structure of the official ``gcn_unit`` / ``mstcn_unit`` / ``base_tcn`` /
``GCN_Block`` / ``GCN_Module_LLM`` / ``SimpleHead`` / ``RecognizerGCN.forward_train`` /
``BaseHead.loss`` step by step, in plain torch, with none of our rewrites:

* the graph unit projects every frame with ``conv1``/``conv2`` and then averages over time;
  joint mixing is the official ``einsum`` over a N×K×C×V×V matrix; the TCN concatenates the
  joint-mean column and splits it off again;
* the local (mask) and global (text) branches run on the whole doubled batch (clean and
  mixed), and are chunked afterwards, as the official backbone and ``mix_chunk`` do;
* the text tower encodes the description of every label of the batch, once per sample
  (duplicates included), every step: the official ``get_text`` + ``model_text_dict``. The
  descriptions are tokenized once here (the official reads and tokenizes the 60 files every
  step; that file work is left out, it is not the model's). CLIP texts are padded to CLIP's
  77-token context with no padding mask (``clip.tokenize`` + ``encode_text``); a bidirectional
  encoder (MiniLM) gets its padding mask and mean pooling. A frozen encoder runs under
  ``no_grad``.

Parameter and buffer names are ours (``RecognizerGCN.state_dict()``): :func:`reference_from`
builds the reference of a built model and loads that model's weights into it, checking that
the two key sets are the same. The text tower is a copy of the model's encoder network.
"""
from __future__ import annotations

import copy
import math
import random
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['RefGCNUnit', 'RefMSTCN', 'RefTCN', 'RefBlock', 'RefBackbone', 'RefHead', 'RefRecognizer',
           'reference_from', 'official_mix']

EPS = 1e-4


class RefTCN(nn.Module):
    """Official ``base_tcn``: k×1 temporal conv, BN (or identity), dropout."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 9, stride: int = 1, dilation: int = 1,
                 norm: bool = True) -> None:
        super().__init__()
        pad = (kernel_size + (kernel_size - 1) * (dilation - 1) - 1) // 2
        self.conv = nn.Conv2d(cin, cout, (kernel_size, 1), padding=(pad, 0), stride=(stride, 1),
                              dilation=(dilation, 1))
        self.bn = nn.BatchNorm2d(cout) if norm else nn.Identity()
        self.drop = nn.Dropout(0., inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.bn(self.conv(x)))


class RefGCNUnit(nn.Module):
    """Official ``gcn_unit`` (softmax intra, tanh inter, BN, ReLU)."""

    def __init__(self, cin: int, cout: int, A: torch.Tensor, ratio: float = 0.125) -> None:
        super().__init__()
        self.num_subsets = A.size(0)
        self.mid_channels = int(ratio * cout)
        mid = self.mid_channels * self.num_subsets
        self.A = nn.Parameter(A.clone())
        self.pre = nn.Sequential(nn.Conv2d(cin, mid, 1), nn.BatchNorm2d(mid), nn.ReLU())
        self.post = nn.Conv2d(mid, cout, 1)
        self.alpha = nn.Parameter(torch.zeros(self.num_subsets))
        self.beta = nn.Parameter(torch.zeros(self.num_subsets))
        self.conv1 = nn.Conv2d(cin, mid, 1)
        self.conv2 = nn.Conv2d(cin, mid, 1)
        self.down = nn.Sequential(nn.Conv2d(cin, cout, 1), nn.BatchNorm2d(cout)) if cin != cout else None
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, t, v = x.shape
        k, c = self.num_subsets, self.mid_channels
        res = x if self.down is None else self.down(x)
        A = self.A[None, :, None, None]                                          # 1 K 1 1 V V
        pre_x = self.pre(x).reshape(n, k, c, t, v)                               # N K C T V
        x1 = self.conv1(x).reshape(n, k, c, -1, v).mean(dim=-2, keepdim=True)   # N K C 1 V
        x2 = self.conv2(x).reshape(n, k, c, -1, v).mean(dim=-2, keepdim=True)
        A = torch.tanh(x1.unsqueeze(-1) - x2.unsqueeze(-2)) * self.alpha[0] + A  # N K C 1 V V
        intra = torch.einsum('nkctv,nkctw->nktvw', x1, x2)[:, :, None]           # N K 1 1 V V
        A = torch.softmax(intra, -2) * self.beta[0] + A
        y = torch.einsum('nkctv,nkcvw->nkctw', pre_x, A.squeeze(3)).contiguous()
        y = self.post(y.reshape(n, -1, t, v))
        return torch.relu(self.bn(y) + res)


class RefMSTCN(nn.Module):
    """Official ``mstcn_unit`` with the official branch plan."""

    def __init__(self, cin: int, cout: int, stride: int = 1, num_joints: int = 25,
                 ms_cfg: Sequence = ((3, 1), (3, 2), (3, 3), (3, 4), ('max', 3), '1x1')) -> None:
        super().__init__()
        nb = len(ms_cfg)
        mid = cout // nb
        rem = cout - mid * (nb - 1)
        self.add_coeff = nn.Parameter(torch.zeros(num_joints))
        branches = []
        for i, cfg in enumerate(ms_cfg):
            bc = rem if i == 0 else mid
            if cfg == '1x1':
                branches.append(nn.Conv2d(cin, bc, 1, stride=(stride, 1)))
            elif cfg[0] == 'max':
                branches.append(nn.Sequential(nn.Conv2d(cin, bc, 1), nn.BatchNorm2d(bc), nn.ReLU(),
                                              nn.MaxPool2d((cfg[1], 1), stride=(stride, 1), padding=(1, 0))))
            else:
                branches.append(nn.Sequential(nn.Conv2d(cin, bc, 1), nn.BatchNorm2d(bc), nn.ReLU(),
                                              RefTCN(bc, bc, cfg[0], stride, cfg[1], norm=False)))
        self.branches = nn.ModuleList(branches)
        tin = mid * (nb - 1) + rem
        self.transform = nn.Sequential(nn.BatchNorm2d(tin), nn.ReLU(), nn.Conv2d(tin, cout, 1))
        self.bn = nn.BatchNorm2d(cout)
        self.drop = nn.Dropout(0., inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x.shape[-1]
        x = torch.cat([x, x.mean(-1, keepdim=True)], -1)                        # N C T V+1
        out = torch.cat([branch(x) for branch in self.branches], dim=1)
        feat = out[..., :v] + torch.einsum('nct,v->nctv', out[..., v], self.add_coeff[:v])
        return self.drop(self.bn(self.transform(feat)))


class RefBlock(nn.Module):
    """Official ``GCN_Block``: gcn → tcn, plus the residual, ReLU."""

    def __init__(self, cin: int, cout: int, A: torch.Tensor, stride: int = 1, ms_cfg: Sequence | None = None) -> None:
        super().__init__()
        self.gcn = RefGCNUnit(cin, cout, A)
        self.tcn = RefMSTCN(cout, cout, stride=stride, **({'ms_cfg': ms_cfg} if ms_cfg else {}))
        self.relu = nn.ReLU()
        self.identity = cin == cout and stride == 1
        if not self.identity:
            self.residual = RefTCN(cin, cout, kernel_size=1, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = x if self.identity else self.residual(x)
        return self.relu(self.tcn(self.gcn(x)) + res)


class RefBackbone(nn.Module):
    """Official ``GCN_Module_LLM`` (data BN 'MVC'), text tower outside (see the recognizer)."""

    def __init__(self, A: torch.Tensor, num_classes: int, text_dim: int, text_key: str, in_channels: int = 3,
                 base_channels: int = 96, ch_ratio: float = 2, num_stages: int = 10,
                 inflate_stages: Sequence[int] = (5, 8), down_stages: Sequence[int] = (5, 8),
                 num_person: int = 2, ms_cfg: Sequence | None = None) -> None:
        super().__init__()
        V = A.size(1)
        self.num_classes, self.text_key = num_classes, text_key
        self.data_bn = nn.BatchNorm1d(num_person * base_channels * V)
        self.to_joint_embedding = nn.Linear(in_channels, base_channels)
        self.pos_embedding = nn.Parameter(torch.randn(1, V, base_channels))
        blocks, inflate, cin = [], 0, base_channels
        for i in range(2, num_stages + 1):
            inflate += i in inflate_stages
            cout = int(base_channels * ch_ratio ** inflate + EPS)
            blocks.append(RefBlock(cin, cout, A.clone(), 1 + (i in down_stages), ms_cfg))
            cin = cout
        self.gcn = nn.ModuleList(blocks)
        self.examplar = nn.Parameter(torch.zeros(num_classes, V, V), requires_grad=False)
        self.direct_fc = nn.Conv2d(cin, 1, 1, 1)
        self.linear_head = nn.ModuleDict({text_key: nn.Linear(cin, text_dim)})
        self.logit_scale = nn.Parameter(torch.ones(1, 1) * math.log(1 / 0.07))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        N, M, T, V, C = x.size()
        x = x.permute(0, 4, 2, 3, 1).contiguous()                                   # N C T V M
        x = x.permute(0, 4, 2, 3, 1).reshape(N * M * T, V, C)                      # (n m t) v c
        x = self.to_joint_embedding(x)
        C = x.shape[-1]
        x = x + self.pos_embedding[:, :V]
        x = x.reshape(N, M, T, V, C).permute(0, 1, 3, 4, 2).contiguous()            # n m v c t
        x = self.data_bn(x.view(N, M * V * C, T))
        x = x.view(N, M, V, C, T).permute(0, 1, 3, 4, 2).contiguous().view(N * M, C, T, V)
        for block in self.gcn:
            x = block(x)
        # local joint constraints: N*M C V x Class V V -> N*M C Class V -> N*M Class
        x_1 = torch.einsum('nmv,cvu->nmcu', x.mean(2), self.examplar)
        x_1 = self.direct_fc(x_1).squeeze(1).mean(2).reshape(N, M, self.num_classes).mean(dim=1)
        # global semantics alignment
        x_2 = self.linear_head[self.text_key](x.view(N, M, x.size(1), -1).mean(3).mean(1))
        return x.reshape((N, M) + x.shape[1:]), x_1, x_2


class RefHead(nn.Module):
    """Official ``SimpleHead`` forward: adaptive average pool, mean over persons, ``fc_cls``."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.fc_cls = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        N, M, C, T, V = x.shape
        x = nn.AdaptiveAvgPool2d(1)(x.reshape(N * M, C, T, V)).reshape(N, M, C).mean(dim=1)
        return self.fc_cls(x)


def official_mix(keypoint: torch.Tensor, label: torch.Tensor, num_classes: int,
                 parts: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """The official ``skeleton_mix`` / ``ske_swap_randscale`` (same random draws, same order)."""
    x = keypoint.permute(0, 4, 2, 3, 1).contiguous()                              # N C T V M
    N, C, T, V, M = x.size()
    idx = torch.arange(N)
    randidx = (idx + torch.randint(1, N - 1, (1,))) % N if N > 2 else idx
    spa_idx: list[int] = []
    for part in random.sample([list(p) for p in parts], random.randint(2, 3)):
        spa_idx += part
    spa_idx.sort()
    Ct = random.randint(13, 20)
    tem_idx = random.randint(0, T // 4 - Ct)
    rt = Ct * 4
    xst = x.clone()
    if random.random() > 0.25:
        Ct_2 = random.randint(Ct, 25)
        tem_idx_2 = random.randint(0, T // 4 - Ct_2)
        tmp = xst[:, :, tem_idx_2 * 4: tem_idx_2 * 4 + Ct_2 * 4].permute(0, 4, 3, 1, 2).contiguous()
        tmp = F.interpolate(tmp.view(N * M, V * C, -1), size=rt).view(N, M, V, C, rt)
        tmp = tmp.permute(0, 3, 4, 2, 1).contiguous()
        xst[:, :, tem_idx * 4: tem_idx * 4 + rt, spa_idx, :] = tmp[randidx][:, :, :, spa_idx, :]
        mask = torch.zeros(T // 4, V)
        mask[tem_idx:tem_idx + Ct, spa_idx] = 1
    else:
        lamb = random.random()
        xst = xst * (1 - lamb) + xst[randidx] * lamb
        mask = torch.zeros(T // 4, V) + lamb
    lamb = mask.mean()
    onehot = torch.zeros(N, num_classes, device=keypoint.device)
    onehot.scatter_(1, label.unsqueeze(-1), 1)
    mix_label = onehot * (1 - lamb) + onehot[randidx.to(keypoint.device)] * lamb
    return xst.permute(0, 4, 2, 3, 1).contiguous(), mix_label


def _kl(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Official ``KLLoss``: KLDivLoss(sum)(log_softmax(pred), softmax(10·target)) / columns."""
    return F.kl_div(F.log_softmax(prediction, 1), F.softmax(target * 10, 1), reduction='sum') / prediction.shape[1]


class RefRecognizer(nn.Module):
    """Official ``RecognizerGCN.forward_train`` + ``BaseHead.loss``; ``forward_test`` for inference.

    ``text_model`` is the text network (a copy of our encoder's ``model``); ``tokens`` holds
    every class's token ids (Class×L) and ``token_mask`` their attention mask, or None for CLIP
    (causal attention only, as the official ``encode_text``). ``pooling`` is 'clip' (the
    projected EOS state) or 'mean' (masked mean, L2-normalised: MiniLM).
    """

    def __init__(self, backbone: RefBackbone, head: RefHead, text_model: nn.Module, tokens: torch.Tensor,
                 token_mask: torch.Tensor | None, pooling: str, trainable: bool, parts: Sequence[Sequence[int]],
                 weight_1: float = 0.2, weight_2: float = 0.5) -> None:
        super().__init__()
        self.backbone, self.cls_head = backbone, head
        self.text_encoder = nn.Module()
        self.text_encoder.model = text_model
        self.register_buffer('tokens', tokens, persistent=False)
        self.register_buffer('token_mask', token_mask, persistent=False)
        self.pooling, self.trainable, self.parts = pooling, trainable, [list(p) for p in parts]
        self.weight_1, self.weight_2 = weight_1, weight_2
        text_model.requires_grad_(trainable)
        if not trainable:
            text_model.eval()

    def train(self, mode: bool = True) -> RefRecognizer:
        super().train(mode)
        if not self.trainable:
            self.text_encoder.model.eval()
        return self

    def get_text(self, label: torch.Tensor) -> torch.Tensor:
        """Text embedding of every label, one text per sample (N×D)."""
        ids = self.tokens[label]
        with torch.set_grad_enabled(self.trainable and torch.is_grad_enabled()):
            if self.pooling == 'clip':
                return self.text_encoder.model(input_ids=ids).text_embeds.float()
            mask = self.token_mask[label]
            states = self.text_encoder.model(input_ids=ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(states.dtype)
            return F.normalize((states * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=1).float()

    def forward_train(self, keypoint: torch.Tensor, label: torch.Tensor) -> dict[str, torch.Tensor]:
        """keypoint N×1×M×T×V×C → dict(loss=the official total, and its four terms)."""
        keypoint = keypoint[:, 0]
        num_classes = self.cls_head.fc_cls.out_features
        mix_data, mix_label = official_mix(keypoint, label, num_classes, self.parts)
        x, x_1, x_2 = self.backbone(torch.cat([keypoint, mix_data], dim=0))
        cls_score = self.cls_head(x)
        # mix_chunk
        cls_score, mix_output = torch.chunk(cls_score, 2, dim=0)
        cls_mix = -torch.mean(torch.sum(F.log_softmax(mix_output, dim=1) * mix_label, dim=1))
        x_1, _ = torch.chunk(x_1, 2, dim=0)
        x_2, _ = torch.chunk(x_2, 2, dim=0)
        # BaseHead.loss
        loss_cls = F.cross_entropy(cls_score, label)
        loss_con = F.cross_entropy(x_1, label)
        text = self.get_text(label).to(x_2.dtype)
        scale = self.backbone.logit_scale[:, 0].mean()
        s = x_2 / x_2.norm(dim=-1, keepdim=True)
        t = text / text.norm(dim=-1, keepdim=True)
        gt = (label[:, None] == label[None, :]).to(x_2.dtype)
        loss_align = (_kl(scale * s @ t.t(), gt) + _kl(scale * t @ s.t(), gt)) / 2
        total = loss_cls + cls_mix + self.weight_1 * loss_con + self.weight_2 * loss_align
        return dict(loss=total, loss_cls=loss_cls, loss_mix=cls_mix, loss_constraint=self.weight_1 * loss_con,
                    loss_align=self.weight_2 * loss_align)

    def forward_test(self, keypoint: torch.Tensor) -> torch.Tensor:
        """keypoint N×clips×M×T×V×C → softmax scores averaged over the clips (N×Class); the
        backbone runs on all N·clips at once and computes its branches, as the official one."""
        bs, nc = keypoint.shape[:2]
        x, _, _ = self.backbone(keypoint.reshape((bs * nc,) + keypoint.shape[2:]))
        score = self.cls_head(x).reshape(bs, nc, -1)
        return F.softmax(score, dim=2).mean(dim=1)


def reference_from(model: nn.Module) -> RefRecognizer:
    """The reference of a built ``RecognizerGCN`` (``GCN_Module_LLM``, official unit settings,
    text encoder built, descriptions set), holding a copy of its weights and text network.

    Raises:
        ValueError: when the two state_dicts do not have the same keys and shapes.
    """
    from skeletonagent.skeleton import get_layout

    bb = model.backbone
    A = bb.gcn[0].gcn.A.detach().clone()
    ms_cfg = bb.gcn[0].tcn.ms_cfg
    backbone = RefBackbone(A, bb.num_classes, bb.text_dim, bb.text_key, bb.in_channels, bb.base_channels,
                           bb.ch_ratio, len(bb.gcn) + 1, bb.inflate_stages, bb.down_stages, bb.num_person, ms_cfg)
    head = RefHead(model.cls_head.in_channels, model.num_classes)
    encoder = model.text_encoder
    if encoder is None:
        raise ValueError('reference_from: build the text encoder first (model.init_text_encoder())')
    text_model = copy.deepcopy(encoder.model)
    is_clip = type(encoder).__name__ == 'CLIP'
    if is_clip:   # clip.tokenize: padded to the 77-token context, no padding mask
        tok = encoder.tokenizer(model.descriptions, padding='max_length', truncation=True,
                                max_length=encoder.max_length, return_tensors='pt')
        if tok['input_ids'].shape[1] < encoder.max_length:       # a tokenizer that pads to the longest
            pad = encoder.max_length - tok['input_ids'].shape[1]
            tok['input_ids'] = F.pad(tok['input_ids'], (0, pad))
        tokens, mask = tok['input_ids'], None
    else:
        tok = encoder.tokenizer(model.descriptions, padding=True, truncation=True,
                                max_length=encoder.max_length, return_tensors='pt')
        tokens, mask = tok['input_ids'], tok['attention_mask']
    ref = RefRecognizer(backbone, head, text_model, tokens, mask, 'clip' if is_clip else 'mean',
                        encoder.trainable, get_layout(model.cls_head.joint_cfg).mix_parts,
                        model.cls_head.weight_1, model.cls_head.weight_2)
    ours = model.state_dict()
    theirs = ref.state_dict()
    if not encoder.trainable:        # a frozen encoder is not in our state_dict
        theirs = {k: v for k, v in theirs.items() if not k.startswith('text_encoder.')}
    shapes = {k: tuple(v.shape) for k, v in ours.items()}
    ref_shapes = {k: tuple(v.shape) for k, v in theirs.items()}
    if shapes != ref_shapes:
        only_ours = sorted(set(shapes) - set(ref_shapes))[:5]
        only_ref = sorted(set(ref_shapes) - set(shapes))[:5]
        wrong = sorted(k for k in set(shapes) & set(ref_shapes) if shapes[k] != ref_shapes[k])[:5]
        raise ValueError(f'reference_from: state_dicts differ: only ours {only_ours}, only the '
                         f'reference {only_ref}, shapes {wrong}')
    ref.load_state_dict(ours, strict=encoder.trainable)
    return ref.to(bb.logit_scale.device)
