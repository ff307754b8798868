"""Classification heads."""
from .gcn_head import GCNHead
from .simple_head import SimpleHead, top_k_accuracy

__all__ = ['GCNHead', 'SimpleHead', 'top_k_accuracy']
