"""The single source of skeleton topology: layouts and graph adjacency."""
from .graph import Graph
from .layouts import LAYOUTS, Layout, get_layout

__all__ = ['Graph', 'LAYOUTS', 'Layout', 'get_layout']
