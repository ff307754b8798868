"""Models: GCN backbones, heads, losses, recognizers and text encoders (registered on import)."""
from . import gcn, heads, losses, recognizers, text  # noqa: F401
from .gcn import GCN_Module_LLM, GCN_Module_LLM_K400
from .heads import SimpleHead
from .recognizers import RecognizerGCN

__all__ = ['GCN_Module_LLM', 'GCN_Module_LLM_K400', 'SimpleHead', 'RecognizerGCN']
