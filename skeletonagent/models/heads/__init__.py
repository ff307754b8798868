"""Classification heads."""
from .simple_head import SimpleHead, top_k_accuracy

__all__ = ['SimpleHead', 'top_k_accuracy']
