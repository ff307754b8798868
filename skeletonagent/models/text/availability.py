"""Whether a text encoder's weights can be had now: checked before a run writes anything.

CLIP loads from ``model.text_encoder.pretrained`` (default the hub's ViT-B/32): a local
directory must exist; a hub id must be in the Hugging Face cache or downloadable now (offline
mode, or one failed request without retries, says it is not). MiniLM ships with the package.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import get_hf_file_metadata, hf_hub_url, try_to_load_from_cache

from ...errors import SkeletonAgentError
from ...registry import TEXT_ENCODERS
from .clip import CLIP, DEFAULT_CLIP

__all__ = ['TextEncoderUnavailable', 'check_text_encoder']


class TextEncoderUnavailable(SkeletonAgentError, RuntimeError):
    """The text encoder's weights are neither local nor downloadable now."""


def _offline() -> bool:
    def on(name: str) -> bool:
        return os.environ.get(name, '').strip().upper() in ('1', 'ON', 'YES', 'TRUE')
    return on('HF_HUB_OFFLINE') or on('TRANSFORMERS_OFFLINE')


def _cached(repo: str) -> bool:
    """Whether the hub repo's config is in the local Hugging Face cache."""
    try:
        found = try_to_load_from_cache(repo, 'config.json')
    except Exception:  # noqa: BLE001 - a malformed id or cache: not cached
        return False
    return isinstance(found, str)


def _hub_unreachable(repo: str, timeout: float = 5.0) -> str | None:
    """None when the hub answers for ``repo`` (one request, no retries); else why not."""
    try:
        get_hf_file_metadata(hf_hub_url(repo, 'config.json'), timeout=timeout,
                             retry_on_errors=False)
    except Exception as exc:  # noqa: BLE001 - any failure means: not downloadable now
        text = str(exc).strip().splitlines()
        return f'{type(exc).__name__}: {text[0][:160]}' if text else type(exc).__name__
    return None


def _switch_help(repo: str) -> str:
    return (f'\n  either give a local copy of {repo} (a directory with its weights and '
            'tokenizer, e.g. from `huggingface-cli download` on a machine with network):\n'
            '    --cfg-options model.text_encoder.pretrained=DIR\n'
            '  or switch to the offline MiniLM text encoder (shipped with the package):\n'
            '    --cfg-options model.text_encoder.type=MiniLM model.backbone.text_dim=384 '
            'model.backbone.text_key=MiniLM')


def check_text_encoder(text_encoder: Mapping[str, Any]) -> None:
    """The weights of the text encoder ``text_encoder`` (a ``model.text_encoder`` config) can
    be had now (see the module docstring).

    Raises:
        TextEncoderUnavailable: naming the directory or hub id and the two ways on.
    """
    text = dict(text_encoder)
    cls = TEXT_ENCODERS.get(text.get('type')) if isinstance(text.get('type'), str) else None
    if cls is None or not issubclass(cls, CLIP) or text.get('config') is not None:
        return
    pretrained = str(text.get('pretrained') or DEFAULT_CLIP)
    local = Path(pretrained).expanduser()
    if local.exists():
        return
    if local.is_absolute() or pretrained.startswith(('.', '~')) or pretrained.count('/') > 1:
        raise TextEncoderUnavailable(
            f'the CLIP text encoder directory {pretrained} (model.text_encoder.pretrained) '
            f'does not exist;{_switch_help(DEFAULT_CLIP)}')
    if _cached(pretrained):
        return
    why = 'offline mode is on (HF_HUB_OFFLINE)' if _offline() else _hub_unreachable(pretrained)
    if why:
        raise TextEncoderUnavailable(
            f'the CLIP text encoder weights ({pretrained}) are not in the Hugging Face cache '
            f'and cannot be downloaded: {why};{_switch_help(pretrained)}')
