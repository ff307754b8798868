"""Classification heads."""
from .gcn_head import GCNHead
from .simple_head import SimpleHead, SimpleHead_Semi, top_k_accuracy

__all__ = ['GCNHead', 'SimpleHead', 'SimpleHead_Semi', 'top_k_accuracy']
