"""CLIP text tower (ViT-B/32 by default) through ``transformers``."""
from __future__ import annotations

import os
from typing import Any, Callable

import torch

from skeletonagent.registry import TEXT_ENCODERS

from .base import TextEncoder

__all__ = ['CLIP']

DEFAULT_CLIP = 'openai/clip-vit-base-patch32'


@TEXT_ENCODERS.register_module()
class CLIP(TextEncoder):
    """CLIP text embeddings (the projected EOS state; 512-d for ViT-B/32).

    Args:
        pretrained: a local directory or hub id holding ``CLIPTextModelWithProjection`` weights
            and a ``CLIPTokenizer``; default 'openai/clip-vit-base-patch32'. Ignored when
            ``config`` is given.
        config: build a randomly initialised tower from this ``CLIPTextConfig`` dict instead
            (no weights needed; tests, benchmarks).
        tokenizer: a tokenizer object (called like a Hugging Face tokenizer) to use instead of
            loading ``CLIPTokenizer`` from ``pretrained`` (required with ``config``, unless
            ``pretrained`` is also given).
        trainable: fine-tune the tower (the official behaviour); default frozen.
        max_length: token limit; longer texts are truncated (CLIP's context is 77 tokens).
        key: name of the embedding space, 'ViT-B/32' as in the official checkpoints.
    """

    dim = 512

    def __init__(self, pretrained: str | os.PathLike | None = DEFAULT_CLIP, config: dict | None = None,
                 tokenizer: Callable[..., Any] | None = None, trainable: bool = False,
                 max_length: int = 77, key: str = 'ViT-B/32', batch_size: int = 64) -> None:
        super().__init__(trainable=trainable, batch_size=batch_size)
        # deferred: transformers' model classes are heavy, and only a built encoder needs them
        from transformers import CLIPTextConfig, CLIPTextModelWithProjection, CLIPTokenizer  # deferred: as above
        from transformers.utils import logging as hf_logging  # deferred: as above

        verbosity = hf_logging.get_verbosity()
        progress_bar = hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            if config is not None:
                self.model = CLIPTextModelWithProjection(CLIPTextConfig(**config))
            else:
                if pretrained is None:
                    raise ValueError('CLIP: give `pretrained` (a directory or hub id) or `config`')
                self.model = CLIPTextModelWithProjection.from_pretrained(str(pretrained))
            if tokenizer is None:
                if config is not None and pretrained in (None, DEFAULT_CLIP):
                    raise ValueError('CLIP: a randomly initialised tower needs a `tokenizer` '
                                     '(or an explicit `pretrained` tokenizer location)')
                tokenizer = CLIPTokenizer.from_pretrained(str(pretrained))
        finally:
            hf_logging.set_verbosity(verbosity)
            if progress_bar:
                hf_logging.enable_progress_bar()
        self.tokenizer = tokenizer
        self.key = key
        self.dim = int(self.model.config.projection_dim)
        self.max_length = min(int(max_length), int(self.model.config.max_position_embeddings))
        self._freeze()

    def _encode_batch(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                                return_tensors='pt')
        tokens = {k: v.to(self.device) for k, v in tokens.items() if k in ('input_ids', 'attention_mask')}
        return self.model(**tokens).text_embeds
