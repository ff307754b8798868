"""The single source of skeleton topology: layouts, graph adjacency, and rest-pose geometry."""
from .geometry import LAYOUT_BY_JOINTS, REST_POSES, LayoutTree, infer_layout, layout_tree, rest_pose
from .graph import Graph
from .layouts import LAYOUTS, Layout, get_layout

__all__ = ['Graph', 'LAYOUTS', 'Layout', 'get_layout', 'REST_POSES', 'LAYOUT_BY_JOINTS',
           'LayoutTree', 'infer_layout', 'layout_tree', 'rest_pose']
