"""SkeletonAgent: an LLM agent loop guiding a graph-convolutional skeleton action recognizer."""
from .version import __version__

__all__ = ['__version__']
