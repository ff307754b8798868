"""Label maps as the agent reads them (``docs/interfaces.md`` names this module).

The reader lives with the datasets (``skeletonagent.datasets.label_map``); this module only
re-exports it, so there is one implementation.
"""
from skeletonagent.datasets.label_map import LABEL_MAP_DIR, label_map_path, load_label_map

__all__ = ['LABEL_MAP_DIR', 'label_map_path', 'load_label_map', 'DEFAULT_LABEL_MAPS']

#: The label map used when the agent config names none, by number of classes.
DEFAULT_LABEL_MAPS = {60: 'ntu60', 120: 'ntu120', 400: 'k400', 99: 'finegym', 155: 'uav'}
