"""LLM backends of the agent, registered in ``skeletonagent.registry.LLM_BACKENDS``."""
from .base import FAILURE_KINDS, ChatResult, LLMBackend, Message, RoundStats, check_messages
from .cache import ResponseCache
from .offline import Offline
from .openai_chat import LLMError, MissingAPIKeyError, OpenAIChat
from .replay import TranscriptReplay

__all__ = ["LLMBackend", "Message", "Offline", "check_messages", "build_backend", "ChatResult",
           "RoundStats", "FAILURE_KINDS", "OpenAIChat", "TranscriptReplay", "ResponseCache",
           "LLMError", "MissingAPIKeyError"]


def build_backend(cfg: 'dict | LLMBackend | None') -> LLMBackend:
    """Build a backend from its config dict (``dict(type='Offline')`` when None)."""
    from skeletonagent.registry import LLM_BACKENDS
    if isinstance(cfg, LLMBackend):
        return cfg
    cfg = dict(cfg or dict(type='Offline'))
    if 'type' not in cfg:
        raise KeyError(f"llm backend config needs a 'type' (one of "
                       f"{sorted(LLM_BACKENDS.module_dict)}), got {cfg}")
    return LLM_BACKENDS.build(cfg)
