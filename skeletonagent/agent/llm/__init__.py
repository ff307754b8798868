"""LLM backends of the agent, registered in ``skeletonagent.registry.LLM_BACKENDS``."""
import inspect
import logging

from skeletonagent.registry import LLM_BACKENDS, UnknownTypeError, describe_unknown_type

from .base import LLMBackend, Message, check_messages
from .cache import ResponseCache
from .failures import LLMError, MissingAPIKeyError
from .offline import Offline
from .openai_chat import OpenAIChat
from .replay import TranscriptReplay
from .reply import checked, reply_problem
from .results import FAILURE_KINDS, ChatResult, RoundStats

__all__ = ["LLMBackend", "Message", "Offline", "check_messages", "build_backend", "ChatResult",
           "RoundStats", "FAILURE_KINDS", "OpenAIChat", "TranscriptReplay", "ResponseCache",
           "LLMError", "MissingAPIKeyError", "backend_arguments", "checked", "reply_problem"]


def backend_arguments(cfg: 'dict | None') -> 'tuple[type, dict]':
    """The backend class and the arguments ``build_backend(cfg)`` builds it with.

    Switching backend from the command line (``--cfg-options agent.llm.type=Offline``) keeps
    the other keys of the config's backend (``model``, ``api_key_env``, ...). Keys the chosen
    backend does not take are dropped with a warning that names them, instead of failing.
    Arguments the class needs and the config lacks raise ``TypeError`` (nothing is built).
    """
    cfg = dict(cfg or dict(type='Offline'))
    if 'type' not in cfg:
        raise KeyError(f"llm backend config needs a 'type' (one of "
                       f"{sorted(LLM_BACKENDS.module_dict)}), got {cfg}")
    cls = LLM_BACKENDS.get(cfg['type']) if isinstance(cfg['type'], str) else cfg['type']
    if cls is None:
        raise UnknownTypeError(describe_unknown_type(cfg['type'], LLM_BACKENDS.name))
    args = {k: v for k, v in cfg.items() if k != 'type'}
    signature = inspect.signature(cls.__init__)
    params = signature.parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(k for k in args if k not in params)
        if unknown:
            logging.getLogger(__name__).warning(
                'llm backend %s: ignoring settings it does not take: %s', cls.__name__,
                ', '.join(unknown))
            args = {k: v for k, v in args.items() if k not in unknown}
    signature.bind(None, **args)      # TypeError: a required argument is missing
    return cls, args


def build_backend(cfg: 'dict | LLMBackend | None') -> LLMBackend:
    """Build a backend from its config dict (``dict(type='Offline')`` when None), with the
    arguments :func:`backend_arguments` gives."""
    if isinstance(cfg, LLMBackend):
        return cfg
    cls, args = backend_arguments(cfg)
    return cls(**args)
