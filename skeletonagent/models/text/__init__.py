"""Text encoders (registered in ``TEXT_ENCODERS``) and the embedding cache."""
from .base import TextEncoder
from .cache import TextEmbeddingCache, texts_digest
from .clip import CLIP
from .minilm import MiniLM, minilm_model_path

__all__ = ['TextEncoder', 'TextEmbeddingCache', 'texts_digest', 'CLIP', 'MiniLM', 'minilm_model_path']
