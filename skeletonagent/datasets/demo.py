"""The embedded demo's dataset: a :class:`PoseDataset` whose pickle is generated on first use."""
from __future__ import annotations

import os
from pathlib import Path

from ..registry import DATASETS
from .annotations import DATA_README
from .errors import DataError
from .pose_dataset import PoseDataset
from .synthetic import DEMO_ANN_FILE, DEMO_HARD_ANN_FILE, ensure_demo_data

#: The demo data's own places (relative to the working directory) and their variants.
DEMO_PATHS = {DEMO_ANN_FILE: 'standard', DEMO_HARD_ANN_FILE: 'hard'}


def demo_path_variant(path: str | os.PathLike) -> str | None:
    """The variant whose own place ``path`` is (a ``data/demo/demo_3danno.pkl`` or
    ``data/demo/demo_hard_3danno.pkl`` under any folder, usually the working directory), or
    None."""
    parts = Path(os.path.abspath(os.path.expanduser(os.fspath(path)))).parts
    for own, variant in DEMO_PATHS.items():
        if parts[-len(Path(own).parts):] == Path(own).parts:
            return variant
    return None


def is_demo_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` is one of the demo data's own places (:data:`DEMO_PATHS`)."""
    return demo_path_variant(path) is not None


@DATASETS.register_module()
class DemoPoseDataset(PoseDataset):
    """``PoseDataset`` over the synthetic demo pickle at ``ann_file``.

    When ``ann_file`` is the demo's own path (``data/demo/demo_3danno.pkl``, or
    ``data/demo/demo_hard_3danno.pkl`` for the hard variant) and does not exist, it is
    generated (deterministically, in about two seconds) and written
    atomically, so the demo config runs from a fresh clone with no download. Anywhere else a
    missing file is an error naming it: a mistyped ``ann_file`` never fills a new folder
    with synthetic data. An existing demo file is read as it is, whatever its size (so a
    config may point at a smaller demo file), unless ``demo_cfg`` asks for given sizes; one
    made by an older generator is regenerated in place.

    Args:
        demo_cfg: keyword arguments for :func:`ensure_demo_data` (sizes, seed, variant; the
            variant defaults to the one whose own path ``ann_file`` is, else 'standard').
    """

    def __init__(self, ann_file: str | os.PathLike, pipeline: list,
                 demo_cfg: dict | None = None, **kwargs) -> None:
        if not os.path.exists(os.path.expanduser(os.fspath(ann_file))) \
                and not is_demo_path(ann_file):
            raise DataError(f'annotation file not found; the demo data is generated only at '
                            f'{" or ".join(DEMO_PATHS)} (relative to the working '
                            f'directory), and {DATA_README}',
                            file=os.path.abspath(os.fspath(ann_file)))
        options = dict(demo_cfg or dict(any_size=True))
        options.setdefault('variant', demo_path_variant(ann_file) or 'standard')
        ensure_demo_data(ann_file, **options)
        super().__init__(ann_file=ann_file, pipeline=pipeline, **kwargs)
