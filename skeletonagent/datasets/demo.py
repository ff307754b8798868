"""The embedded demo's dataset: a :class:`PoseDataset` whose pickle is generated on first use."""
from __future__ import annotations

from ..registry import DATASETS
from .pose_dataset import PoseDataset
from .synthetic import ensure_demo_data


@DATASETS.register_module()
class DemoPoseDataset(PoseDataset):
    """``PoseDataset`` over the synthetic demo pickle at ``ann_file``.

    When ``ann_file`` does not exist (or was made by an older generator) it is generated
    (deterministically, in about a second) and written atomically, so the demo config runs
    from a fresh clone with no download. An existing demo file of any size is read as it is
    (so a config may point at a smaller demo file) unless ``demo_cfg`` asks for given sizes.

    Args:
        demo_cfg: keyword arguments for :func:`ensure_demo_data` (sizes, seed).
    """

    def __init__(self, ann_file: str, pipeline: list, demo_cfg: dict | None = None,
                 **kwargs) -> None:
        ensure_demo_data(ann_file, **(demo_cfg or dict(any_size=True)))
        super().__init__(ann_file=ann_file, pipeline=pipeline, **kwargs)
