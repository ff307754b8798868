"""``RecognizerGCN``: the SkeletonAgent recognizer as an mmengine ``BaseModel``.

Training (``mode='loss'``) doubles the batch with the body-part skeleton mixup, runs the
backbone once on both halves and returns the four weighted loss terms of the official model
(classification, mixup, joint constraint, text alignment). The text encoder belongs to the
recognizer and is built lazily by :meth:`init_text_encoder` (at training start), so building a
model or loading a checkpoint for testing needs no text weights. A frozen encoder never enters
the ``state_dict`` (its weights are the pretrained ones); one trained with the model (the
official recipe) does, under ``text_encoder.``, so that a resumed run continues with the text
tower it had (the official checkpoints hold it too, under ``backbone.model_text_dict.``). A
model without a built, trained encoder ignores those keys when loading.

A backbone without the agent branches (``local_logits`` / ``global_embedding``, e.g. PYSKL's
``STGCN``) is trained as PYSKL's recognizer trains it: classification loss only, no mixup and no
text encoder.

A zero loss weight turns its branch off (the ablations, ``configs/ablation/``):
``cls_head.weight_1=0`` drops the joint-constraint term (the masks are not used),
``cls_head.weight_2=0`` the text-alignment term (no text encoder is built, no description is
needed). The branch's weights are frozen (they would get no gradient), so a distributed run
needs no unused-parameter search, and its output is never computed.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.model import BaseModel

from skeletonagent.registry import MODELS, TEXT_ENCODERS
from skeletonagent.skeleton import get_layout

from ..text.cache import TextEmbeddingCache
from .mixup import skeleton_part_mix, split_mixed_batch

__all__ = ['RecognizerGCN', 'RecognizerGCN_Semi', 'average_clip', 'TrainPredictions',
           'StepLogVars', 'PREDICTIONS_KEY']

#: official behaviour when no text encoder is configured: CLIP ViT-B/32, trained
DEFAULT_TEXT_ENCODER = dict(type='CLIP', trainable=True)
#: state_dict prefixes never saved / ignored when loading
TEXT_ENCODER_PREFIX = 'text_encoder.'
OFFICIAL_TEXT_PREFIX = 'backbone.model_text_dict.'
#: clips per backbone call when testing on CPU (see RecognizerGCN._test_chunk)
DEFAULT_CPU_TEST_CHUNK = 5


#: Key of :class:`TrainPredictions` in the dict ``loss()`` returns (never logged, never summed).
PREDICTIONS_KEY = 'predictions'


class TrainPredictions(NamedTuple):
    """What a training step predicted on its clean (non-mixup) samples: the logits (N×Class,
    detached) and the labels (N). The agent's Questioner counts confusions from these."""

    logits: torch.Tensor
    labels: torch.Tensor


class StepLogVars(dict):
    """mmengine's log variables of one training step (what ``train_step`` returns and hooks
    receive as ``outputs``), with the step's :class:`TrainPredictions` as the attribute
    ``predictions`` rather than an item, so loggers never see it."""

    predictions: TrainPredictions | None = None


def average_clip(cls_score: torch.Tensor, mode: str | None = 'prob') -> torch.Tensor:
    """Average N×clips×Class scores over clips: 'prob' (softmax, then mean), 'score' (mean of
    logits) or None (N×clips×Class unchanged), as PYSKL's ``average_clip``."""
    if cls_score.dim() != 3:
        raise ValueError(f'average_clip: expected N×clips×Class scores, got {tuple(cls_score.shape)}')
    if mode is None:
        return cls_score
    if mode == 'prob':
        return F.softmax(cls_score, dim=2).mean(dim=1)
    if mode == 'score':
        return cls_score.mean(dim=1)
    raise ValueError(f"average_clips must be 'prob', 'score' or None, got {mode!r}")


@MODELS.register_module()
class RecognizerGCN(BaseModel):
    """GCN recognizer with skeleton mixup, joint constraints and text alignment.

    Args:
        backbone: backbone config (``GCN_Module_LLM`` / ``GCN_Module_LLM_K400``, or a plain
            backbone such as ``STGCN``).
        cls_head: head config (``SimpleHead``; ``GCNHead`` for a plain backbone).
        train_cfg: unused (kept for official configs).
        test_cfg: ``average_clips`` ('prob' default, 'score' or None),
            ``max_testing_views`` (clips per backbone call; default 5 on CPU, all elsewhere),
            and PYSKL's feature extraction: ``feat_ext=True`` (backbone features) or
            ``score_ext=True`` (per-position class scores), pooled over ``pool_opt`` (see
            :meth:`extract_features`); test then dumps those instead of scoring.
        text_encoder: text encoder config (``TEXT_ENCODERS``); default
            ``dict(type='CLIP', trainable=True)``, the official behaviour.
        text_cache_dir: optional directory where frozen-encoder embedding tables are kept.
        data_preprocessor: mmengine data preprocessor (default moves tensors to the device).
    """

    #: Whether the model trains from fixed texts (no agent rounds); see :class:`RecognizerGCN_Semi`.
    fixed_texts: bool = False

    def __init__(self, backbone: dict, cls_head: dict, train_cfg: dict | None = None,
                 test_cfg: dict | None = None, text_encoder: dict | None = None,
                 text_cache_dir: str | None = None, data_preprocessor: dict | None = None,
                 init_cfg: dict | None = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.cls_head = MODELS.build(cls_head)
        self.train_cfg = dict(train_cfg or {})
        self.test_cfg = dict(test_cfg or {})
        out_channels = getattr(self.backbone, 'out_channels', None)
        if out_channels is not None and out_channels != self.cls_head.in_channels:
            raise ValueError(f'RecognizerGCN: backbone outputs {out_channels} channels but '
                             f'cls_head.in_channels is {self.cls_head.in_channels}')
        num_classes = getattr(self.backbone, 'num_classes', self.cls_head.num_classes)
        if num_classes != self.cls_head.num_classes:
            raise ValueError(f'RecognizerGCN: backbone num_classes {num_classes} != '
                             f'cls_head.num_classes {self.cls_head.num_classes}')
        #: the backbone has the SkeletonAgent branches (joint masks, text projection); without
        #: them (PYSKL's STGCN) the model trains with the classification loss only
        self.with_agent = all(callable(getattr(self.backbone, name, None))
                              for name in ('local_logits', 'global_embedding'))
        #: the joint-constraint term (masks) and the text-alignment term (descriptions) are on:
        #: their loss weight is not zero
        self.uses_masks = self.with_agent and float(getattr(self.cls_head, 'weight_1', 1.0)) != 0
        self.uses_texts = self.with_agent and float(getattr(self.cls_head, 'weight_2', 1.0)) != 0
        if self.with_agent:
            self._freeze_unused_branches()
        self.text_encoder_cfg = dict(text_encoder) if text_encoder is not None else dict(DEFAULT_TEXT_ENCODER)
        self.text_encoder = None
        self.text_cache = TextEmbeddingCache(text_cache_dir)
        self.descriptions: list[str] | None = None
        self._class_embeddings: torch.Tensor | None = None
        self.register_state_dict_post_hook(_drop_text_encoder_keys)
        self.register_load_state_dict_pre_hook(_drop_foreign_text_keys)
        self.register_load_state_dict_post_hook(_ignore_missing_text_encoder_keys)
        self.init_weights()

    # -- weights -----------------------------------------------------------------------------
    def init_weights(self) -> None:
        """Backbone (optional pretrained checkpoint) and head initialisation (PYSKL order)."""
        if hasattr(self.backbone, 'init_weights'):
            self.backbone.init_weights()
        if hasattr(self.cls_head, 'init_weights'):
            self.cls_head.init_weights()

    @property
    def num_classes(self) -> int:
        return int(self.cls_head.num_classes)

    def _freeze_unused_branches(self) -> None:
        """Freeze the weights of a branch whose loss weight is zero (never computed)."""
        if not self.uses_masks and hasattr(self.backbone, 'direct_fc'):
            self.backbone.direct_fc.requires_grad_(False)
        if not self.uses_texts:
            for name in ('linear_head', 'logit_scale'):
                part = getattr(self.backbone, name, None)
                if part is not None:
                    part.requires_grad_(False)

    def loss_terms(self) -> str:
        """The training loss in words, for the start block: which terms are on."""
        if not self.with_agent:
            return 'cross-entropy only (a backbone without the agent branches)'
        head = self.cls_head
        terms = ['cross-entropy', 'mixup']
        off = []
        if self.uses_masks:
            terms.append(f'{head.weight_1:g} x joint constraint (masks)')
        else:
            off.append('joint constraint (weight_1=0: masks unused)')
        if self.uses_texts:
            terms.append(f'{head.weight_2:g} x text alignment (descriptions)')
        else:
            off.append('text alignment (weight_2=0: no text encoder)')
        return ' + '.join(terms) + (f'; OFF: {", ".join(off)}' if off else '')

    # -- agent state and text ------------------------------------------------------------------
    def init_text_encoder(self, device: torch.device | str | None = None):
        """Build (once) the text encoder from ``text_encoder`` cfg, on ``device`` (default: the
        model's). Call before building the optimizer so a trainable encoder is optimised.
        A model without the agent branches, or without the text-alignment term
        (``weight_2=0``), has no text encoder: returns None."""
        if not self.uses_texts:
            return None
        if self.text_encoder is None:
            encoder = TEXT_ENCODERS.build(self.text_encoder_cfg)
            text_dim = getattr(self.backbone, 'text_dim', encoder.dim)
            if encoder.dim != text_dim:
                raise ValueError(f'RecognizerGCN: text encoder {type(encoder).__name__} gives {encoder.dim}-d '
                                 f'embeddings but backbone.text_dim is {text_dim}; set backbone '
                                 f'text_dim={encoder.dim}')
            text_key = getattr(self.backbone, 'text_key', encoder.key)
            if encoder.key != text_key:
                warnings.warn(f'RecognizerGCN: text encoder key {encoder.key!r} differs from the '
                              f'backbone text_key {text_key!r}', stacklevel=2)
            self.text_encoder = encoder
        if device is None:
            device = self._device()
        self.text_encoder.to(device)
        self._class_embeddings = None
        return self.text_encoder

    def _dtype(self) -> torch.dtype:
        """The floating dtype of the backbone's weights (inputs are cast to it)."""
        scale = getattr(self.backbone, 'logit_scale', None)
        if scale is not None:
            return scale.dtype
        return next((p.dtype for p in self.backbone.parameters() if p.is_floating_point()), torch.float32)

    def _device(self) -> torch.device:
        """The device the model's weights are on."""
        return self.backbone.logit_scale.device if hasattr(self.backbone, 'logit_scale') \
            else next(self.parameters()).device

    def set_agent_state(self, descriptions: Sequence[str] | None, masks: np.ndarray | torch.Tensor | None,
                        embeddings: torch.Tensor | None = None) -> None:
        """Install the agent's class descriptions (num_classes strings) and joint masks
        (num_classes×V×V, copied into ``backbone.examplar``); ``None`` keeps the current one.

        ``embeddings`` (num_classes×text_dim), when given with ``descriptions`` and a frozen
        text encoder, are the descriptions' embeddings computed beforehand (see
        :meth:`encode_descriptions`): they are used as they are, so installing a new state
        costs no encoder forward pass (and every rank uses the very same table)."""
        if not self.with_agent:
            raise RuntimeError(f'RecognizerGCN: the backbone {type(self.backbone).__name__} has no agent '
                               'branches (joint masks, text alignment); it takes no agent state')
        if masks is not None:
            examplar = self.backbone.examplar
            masks_t = torch.as_tensor(np.asarray(masks) if not torch.is_tensor(masks) else masks)
            if tuple(masks_t.shape) != tuple(examplar.shape):
                raise ValueError(f'set_agent_state: masks have shape {tuple(masks_t.shape)}, expected '
                                 f'{tuple(examplar.shape)} (num_classes×V×V)')
            if not torch.isfinite(masks_t.float()).all():
                raise ValueError('set_agent_state: masks contain NaN or infinite values')
            with torch.no_grad():
                examplar.copy_(masks_t.to(device=examplar.device, dtype=examplar.dtype))
        if descriptions is not None:
            if isinstance(descriptions, str) or len(descriptions) != self.num_classes:
                got = 'a single string' if isinstance(descriptions, str) else f'{len(descriptions)}'
                raise ValueError(f'set_agent_state: expected {self.num_classes} class descriptions, got {got}')
            new = [str(d) for d in descriptions]
            if new != self.descriptions:
                self.descriptions = new
                self._class_embeddings = None
            if embeddings is not None and (self.text_encoder is None or not self.text_encoder.trainable):
                if tuple(embeddings.shape[:1]) != (self.num_classes,) or embeddings.dim() != 2:
                    raise ValueError(f'set_agent_state: embeddings have shape {tuple(embeddings.shape)}, '
                                     f'expected ({self.num_classes}, text_dim)')
                self._class_embeddings = embeddings.detach().float().to(self._device())

    def encode_descriptions(self, descriptions: Sequence[str]) -> torch.Tensor | None:
        """Embeddings (num_classes×dim, CPU float32) of ``descriptions`` with the frozen text
        encoder, through the embedding cache; None when the encoder is trainable (its
        embeddings change every step) or not built yet. Safe to call from a background
        thread while training runs (no gradient, the cache is locked)."""
        encoder = self.text_encoder
        if encoder is None or encoder.trainable:
            return None
        return self.text_cache.get(encoder, [str(d) for d in descriptions], 'cpu')

    def _check_text_ready(self) -> None:
        if self.descriptions is None:
            raise RuntimeError('RecognizerGCN: no class descriptions set; call set_agent_state(descriptions, '
                               'masks) before training (the alignment loss needs them)')
        if self.text_encoder is None:
            self.init_text_encoder()

    def text_embeddings(self, labels: torch.Tensor) -> torch.Tensor:
        """Text embedding of the description of every label (N×dim), on the labels' device."""
        self._check_text_ready()
        labels = labels.reshape(-1)
        if self.text_encoder.trainable:
            unique, inverse = torch.unique(labels, return_inverse=True)
            texts = [self.descriptions[i] for i in unique.tolist()]
            emb = self.text_encoder.encode(texts).to(labels.device)
            return emb[inverse]
        if self._class_embeddings is None or self._class_embeddings.device != labels.device:
            self._class_embeddings = self.text_cache.get(self.text_encoder, self.descriptions, labels.device)
        return self._class_embeddings[labels]

    # -- forward ----------------------------------------------------------------------------------
    def forward(self, keypoint: torch.Tensor | Sequence[torch.Tensor], label: Any = None,
                mode: str = 'tensor', **kwargs: Any):
        """``mode``: 'loss' (dict of losses), 'predict' (list of dicts) or 'tensor'
        (N×Class clip-averaged scores). Extra keys of the data batch are ignored."""
        keypoint = _as_batch(keypoint, self._dtype())
        label = _as_labels(label, keypoint.device)
        if mode == 'loss':
            if label is None:
                raise ValueError("RecognizerGCN: mode='loss' needs labels")
            return self.loss(keypoint, label)
        if mode == 'predict' and self.feature_extraction:
            features = self.extract_features(keypoint)
            labels = [None] * len(features) if label is None else [int(x) for x in label.reshape(-1).tolist()]
            return [dict(feature=f, gt_label=g) for f, g in zip(features, labels)]
        if mode == 'predict':
            scores = self.predict_scores(keypoint).float().cpu()
            labels = [None] * len(scores) if label is None else [int(x) for x in label.reshape(-1).tolist()]
            return [dict(pred_score=s, gt_label=g) for s, g in zip(scores, labels)]
        if mode == 'tensor':
            return self.predict_scores(keypoint)
        raise ValueError(f"RecognizerGCN: unknown mode {mode!r} (use 'loss', 'predict' or 'tensor')")

    def loss(self, keypoint: torch.Tensor, label: torch.Tensor) -> dict[str, Any]:
        """keypoint N×1×M×T×V×C, label N → dict of weighted losses and accuracies, and the
        step's clean predictions under :data:`PREDICTIONS_KEY` (see :meth:`parse_losses`)."""
        if keypoint.dim() != 6 or keypoint.shape[1] != 1:
            raise ValueError(f'RecognizerGCN: training expects keypoint N×1×M×T×V×C, got {tuple(keypoint.shape)}')
        keypoint = keypoint[:, 0]
        label = label.reshape(-1)
        if label.numel() != keypoint.shape[0]:
            raise ValueError(f'RecognizerGCN: {label.numel()} labels for a batch of {keypoint.shape[0]}')
        if not self.with_agent:
            cls_score = self.cls_head(self.extract_feat(keypoint))
            losses = self.cls_head.loss(cls_score, label)
            losses[PREDICTIONS_KEY] = TrainPredictions(cls_score.detach(), label.detach())
            return losses
        if self.uses_texts:
            self._check_text_ready()   # fail before the (long) forward pass
        # random draws in the official order: mixup first, then anything the text encoder does
        mixed, mix_label, _ = skeleton_part_mix(keypoint, label, self.num_classes, self._mix_parts())
        feat = self.backbone(torch.cat([keypoint, mixed], dim=0), with_aux=False)[0]
        cls_score, mix_score = split_mixed_batch(self.cls_head(feat))
        clean_feat = feat[:keypoint.shape[0]]
        local = self.backbone.local_logits(clean_feat) if self.uses_masks else None
        glob = self.backbone.global_embedding(clean_feat) if self.uses_texts else None
        text_emb = self.text_embeddings(label) if self.uses_texts else None
        losses = self.cls_head.loss(cls_score, label, mix_score=mix_score, mix_label=mix_label,
                                    local_logits=local, global_embedding=glob, text_embedding=text_emb,
                                    logit_scale=self.backbone.logit_scale)
        losses[PREDICTIONS_KEY] = TrainPredictions(cls_score.detach(), label.detach())
        return losses

    def parse_losses(self, losses: dict) -> tuple[torch.Tensor, StepLogVars]:
        """mmengine's ``parse_losses`` (the sum of the ``loss*`` terms, and what to log), with
        the step's :class:`TrainPredictions` taken out of the losses and handed on as
        ``log_vars.predictions``: that is how hooks (the agent's confusion counting) receive
        them, through ``after_train_iter(outputs=...)``, with or without the DDP wrapper."""
        losses = dict(losses)
        predictions = losses.pop(PREDICTIONS_KEY, None)
        loss, log_vars = super().parse_losses(losses)
        out = StepLogVars(log_vars)
        out.predictions = predictions
        return loss, out

    def predict_scores(self, keypoint: torch.Tensor) -> torch.Tensor:
        """keypoint N×clips×M×T×V×C (or N×M×T×V×C) → clip-averaged scores (N×Class)."""
        if keypoint.dim() == 5:
            keypoint = keypoint[:, None]
        if keypoint.dim() != 6:
            raise ValueError(f'RecognizerGCN: test expects keypoint N×clips×M×T×V×C, got {tuple(keypoint.shape)}')
        bs, nc = keypoint.shape[:2]
        clips = keypoint.reshape((bs * nc,) + keypoint.shape[2:])
        chunk = self._test_chunk(clips)
        scores = [self.cls_head(self.extract_feat(part)) for part in clips.split(chunk)]
        cls_score = torch.cat(scores).reshape(bs, nc, -1)
        return average_clip(cls_score, self.test_cfg.get('average_clips', 'prob'))

    @property
    def feature_extraction(self) -> bool:
        """``test_cfg.feat_ext`` or ``test_cfg.score_ext``: test extracts instead of scoring."""
        return bool(self.test_cfg.get('feat_ext', False) or self.test_cfg.get('score_ext', False))

    def extract_features(self, keypoint: torch.Tensor) -> list[np.ndarray]:
        """PYSKL's ``feat_ext`` / ``score_ext`` test outputs, one float16 array per sample.

        The backbone features of a sample's clips (clips × M × C × T × V) are averaged over
        the dimensions ``test_cfg.pool_opt`` names: any of ``n`` (clips), ``m`` (persons),
        ``t`` (time), ``v`` (joints), kept as size 1; ``'all'`` (default) is ``'nmtv'``,
        ``'none'`` pools nothing. ``score_ext`` then applies the classifier at every position
        left: (1 × ...) × Class × T × V scores, with PYSKL's leading axis. PYSKL computes this
        for a batch of one sample; here every sample of the batch is pooled on its own, which is
        the same thing.

        Raises:
            ValueError: for a ``pool_opt`` with other letters.
        """
        pool_opt = self.test_cfg.get('pool_opt', 'all')
        if not isinstance(pool_opt, str):
            raise ValueError(f"test_cfg.pool_opt must be a string such as 'nmtv', got {pool_opt!r}")
        dims = {'all': 'nmtv', 'none': ''}.get(pool_opt, pool_opt)
        index = dict(n=0, m=1, t=3, v=4)
        bad = [d for d in dims if d not in index]
        if bad:
            raise ValueError(f"test_cfg.pool_opt={pool_opt!r}: unknown dimension(s) {bad}; use "
                             f"letters of 'nmtv' (clips, persons, time, joints), 'all' or 'none'")
        if keypoint.dim() == 5:
            keypoint = keypoint[:, None]
        bs, nc = keypoint.shape[:2]
        clips = keypoint.reshape((bs * nc,) + keypoint.shape[2:])
        chunk = self._test_chunk(clips)
        feat = torch.cat([self.extract_feat(part) for part in clips.split(chunk)])
        out = []
        for x in feat.reshape((bs, nc) + feat.shape[1:]):
            for d in dims:
                x = x.mean(index[d], keepdim=True)
            if self.test_cfg.get('score_ext', False):
                fc = self.cls_head.fc_cls
                x = torch.einsum('nmctv,oc->nmotv', x, fc.weight)
                if fc.bias is not None:
                    x = x + fc.bias[..., None, None]
                x = x[None]
            out.append(x.detach().float().cpu().numpy().astype(np.float16))
        return out

    def extract_feat(self, keypoint: torch.Tensor) -> torch.Tensor:
        """Backbone features N×M×C×T×V of keypoint N×M×T×V×C (agent branches skipped)."""
        if self.with_agent:
            return self.backbone(keypoint, with_aux=False)[0]
        feat = self.backbone(keypoint)
        return feat[0] if isinstance(feat, (tuple, list)) else feat

    def _test_chunk(self, clips: torch.Tensor) -> int:
        """Clips per backbone call at test time: ``test_cfg.max_testing_views`` (PYSKL's key), by
        default 5 on CPU (small activations stay in cache and in the allocator's reused memory;
        in eval mode every clip is computed independently, so chunking changes no result) and
        everything at once elsewhere."""
        limit = self.test_cfg.get('max_testing_views', DEFAULT_CPU_TEST_CHUNK if clips.device.type == 'cpu' else None)
        if limit is None or self.training:
            return max(1, clips.shape[0])
        return max(1, int(limit))

    def _mix_parts(self) -> tuple[tuple[int, ...], ...]:
        return get_layout(self.cls_head.joint_cfg).mix_parts


@MODELS.register_module()
class RecognizerGCN_Semi(RecognizerGCN):  # noqa: N801 - the official name
    """The official "semi" version (``RecognizerGCN_Semi``): the same model, trained from the
    fixed texts and masks it starts with (the official GPT-4o dialogues, no API needed) and
    never asking the LLM again. The engine reads :attr:`fixed_texts` and runs no agent rounds
    (``agent.interval=0``); everything else is :class:`RecognizerGCN`."""

    fixed_texts = True


# -- helpers ------------------------------------------------------------------------------------
def _as_batch(keypoint: Any, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A tensor of keypoints in ``dtype`` (the model's: float32, or float64 for numerics checks)."""
    if isinstance(keypoint, (list, tuple)):
        keypoint = torch.stack([torch.as_tensor(k) for k in keypoint])
    if not torch.is_tensor(keypoint):
        raise TypeError(f'RecognizerGCN: keypoint must be a tensor, got {type(keypoint).__name__}')
    return keypoint.to(dtype) if keypoint.dtype != dtype else keypoint


def _as_labels(label: Any, device: torch.device) -> torch.Tensor | None:
    if label is None:
        return None
    if isinstance(label, (list, tuple)):
        label = torch.as_tensor([int(x) for x in label])
    label = torch.as_tensor(label)
    return label.reshape(-1).long().to(device)


def _trained_encoder(module) -> bool:
    encoder = getattr(module, 'text_encoder', None)
    return encoder is not None and bool(getattr(encoder, 'trainable', False))


def _drop_text_encoder_keys(module, state_dict, prefix, local_metadata) -> None:
    """A frozen (pretrained) text encoder is not saved; a trained one is."""
    if _trained_encoder(module):
        return
    for key in [k for k in state_dict if k.startswith(prefix + TEXT_ENCODER_PREFIX)]:
        del state_dict[key]


def _drop_foreign_text_keys(module, state_dict, prefix, local_metadata, strict, missing_keys,
                            unexpected_keys, error_msgs) -> None:
    """Official checkpoints carry the CLIP text tower inside the backbone, in their own
    module names: ignored (testing does not need it). Our ``text_encoder.`` weights are loaded
    into a built, trained encoder and ignored otherwise (a test-time model has none)."""
    keep_ours = _trained_encoder(module)
    for key in [k for k in state_dict
                if k.startswith(prefix + OFFICIAL_TEXT_PREFIX)
                or (not keep_ours and k.startswith(prefix + TEXT_ENCODER_PREFIX))]:
        del state_dict[key]


def _ignore_missing_text_encoder_keys(module, incompatible_keys) -> None:
    """A checkpoint without text-encoder weights (a frozen encoder's, or an older one) leaves
    a trained encoder at its pretrained weights; that is said once, not raised."""
    missing = incompatible_keys.missing_keys
    dropped = [k for k in missing if k.startswith(TEXT_ENCODER_PREFIX)]
    if dropped and _trained_encoder(module):
        warnings.warn(f'RecognizerGCN: the checkpoint holds no weights of the trained text '
                      f'encoder ({len(dropped)} tensors); it keeps its pretrained weights', stacklevel=2)
    missing[:] = [k for k in missing if not k.startswith(TEXT_ENCODER_PREFIX)]
