"""Datasets: PoseDataset (PYSKL pickles), batching, synthetic demo data, label maps."""
from . import synthetic
from .annotations import load_annotation_file, validate_annotation
from .builder import ClassSpecificSampler, build_dataloader, pose_collate, worker_init_fn
from .errors import DataError
from .label_map import load_label_map
from .pose_dataset import PoseDataset
from .synthetic import DEMO_CLASSES, ensure_demo_data, make_demo_annotations

__all__ = [
    'PoseDataset', 'DataError', 'load_annotation_file', 'validate_annotation',
    'build_dataloader', 'pose_collate', 'worker_init_fn', 'ClassSpecificSampler',
    'load_label_map', 'synthetic', 'DEMO_CLASSES', 'ensure_demo_data', 'make_demo_annotations',
]
