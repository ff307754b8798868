"""Data preparation: raw NTU RGB+D / UAV-Human skeletons → PYSKL pickles, and pickle checks.

Each dataset's module reads its raw files; :mod:`.runner` runs such a reader over every
file, in parallel and resumably. The command-line tools (``tools/data/ntu_preproc.py``,
``uav_preproc.py``, ``check.py``) are thin wrappers around :func:`prepare_ntu`,
:func:`prepare_uav` and :func:`check_annotation_file`.
"""
from .check import check_annotation_file, format_summary
from .ntu import (
    SkeletonFileError,
    default_missing_file,
    ntu_name_fields,
    ntu_sample,
    ntu_splits,
    parse_skeleton_text,
    prepare_ntu,
    read_missing_list,
    select_bodies,
)
from .runner import RunResult, SampleError, run_samples
from .uav import prepare_uav, uav_name_fields, uav_sample, uav_splits

__all__ = [
    'prepare_ntu', 'prepare_uav', 'check_annotation_file', 'format_summary',
    'parse_skeleton_text', 'select_bodies', 'ntu_sample', 'ntu_splits', 'ntu_name_fields',
    'uav_sample', 'uav_splits', 'uav_name_fields', 'read_missing_list', 'default_missing_file',
    'run_samples', 'RunResult', 'SampleError', 'SkeletonFileError',
]
