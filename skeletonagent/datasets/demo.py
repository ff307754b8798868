"""The embedded demo's dataset: a :class:`PoseDataset` whose pickle is generated on first use."""
from __future__ import annotations

import os
from pathlib import Path

from ..registry import DATASETS
from .errors import DataError
from .pose_dataset import DATA_README, PoseDataset
from .synthetic import DEMO_ANN_FILE, ensure_demo_data


def is_demo_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` is the demo data's own place: a ``data/demo/demo_3danno.pkl`` (the
    demo configs' ``ann_file``) under any folder, usually the working directory."""
    parts = Path(os.path.abspath(os.path.expanduser(os.fspath(path)))).parts
    return parts[-len(Path(DEMO_ANN_FILE).parts):] == Path(DEMO_ANN_FILE).parts


@DATASETS.register_module()
class DemoPoseDataset(PoseDataset):
    """``PoseDataset`` over the synthetic demo pickle at ``ann_file``.

    When ``ann_file`` is the demo's own path (``data/demo/demo_3danno.pkl``) and does not
    exist, it is generated (deterministically, in about two seconds) and written
    atomically, so the demo config runs from a fresh clone with no download. Anywhere else a
    missing file is an error naming it: a mistyped ``ann_file`` never fills a new folder
    with synthetic data. An existing demo file is read as it is, whatever its size (so a
    config may point at a smaller demo file), unless ``demo_cfg`` asks for given sizes; one
    made by an older generator is regenerated in place.

    Args:
        demo_cfg: keyword arguments for :func:`ensure_demo_data` (sizes, seed).
    """

    def __init__(self, ann_file: str | os.PathLike, pipeline: list,
                 demo_cfg: dict | None = None, **kwargs) -> None:
        if not os.path.exists(os.path.expanduser(os.fspath(ann_file))) \
                and not is_demo_path(ann_file):
            raise DataError(f'annotation file not found; the demo data is generated only at '
                            f'{DEMO_ANN_FILE} (relative to the working directory), and '
                            f'{DATA_README}', file=os.path.abspath(os.fspath(ann_file)))
        ensure_demo_data(ann_file, **(demo_cfg or dict(any_size=True)))
        super().__init__(ann_file=ann_file, pipeline=pipeline, **kwargs)
