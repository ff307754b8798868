"""Compose: run a list of transforms, naming the transform and sample on failure."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from skeletonagent.registry import TRANSFORMS

from ...errors import SkeletonAgentError
from ._utils import sample_name

__all__ = ['Compose', 'PipelineError']


class PipelineError(SkeletonAgentError, ValueError):
    """A transform failed; the message names the transform and the sample's ``frame_dir``.

    The original exception is chained (``__cause__``).
    """


@TRANSFORMS.register_module()
class Compose:
    """Compose a pipeline from config dicts (built through ``TRANSFORMS``) or callables.

    Args:
        transforms: sequence of ``dict(type=..., ...)`` or callables taking and returning
            the results dict. A transform returning None stops the pipeline (None out).
    """

    def __init__(self, transforms: Sequence[dict | Callable[[Any], Any]]) -> None:
        if isinstance(transforms, (str, bytes)) or not isinstance(transforms, Sequence):
            raise TypeError(f'transforms must be a list, got {type(transforms).__name__}')
        self.transforms: list[Callable[[Any], Any]] = []
        for i, transform in enumerate(transforms):
            if isinstance(transform, dict):
                if 'type' not in transform:
                    raise TypeError(f'transform #{i} config has no "type": {transform}')
                transform = TRANSFORMS.build(dict(transform))
            elif not callable(transform):
                raise TypeError(f'transform #{i} must be callable or a dict, '
                                f'got {type(transform).__name__}')
            self.transforms.append(transform)

    def __call__(self, data: Any) -> Any:
        for transform in self.transforms:
            name = sample_name(data)
            try:
                data = transform(data)
            except PipelineError:
                raise
            except Exception as error:
                raise PipelineError(
                    f'{type(transform).__name__} failed on sample {name!r}: '
                    f'{type(error).__name__}: {error}') from error
            if data is None:
                return None
        return data

    def required_joints(self) -> tuple[int, str] | None:
        """How many joints the stored keypoints must have for this pipeline, and the
        transform that says so (``None`` when no transform fixes it).

        Layout-dependent transforms carry ``input_joints`` (the V they take). The first one
        decides: the transforms before it keep V (every built-in one does;
        ``Kinetics_Transform``, which adds joints, states the V it takes). The dataset checks
        it at load time, so a file of the wrong layout fails there, naming file and sample,
        rather than later inside a DataLoader worker.
        """
        for transform in self.transforms:
            if isinstance(transform, Compose):
                found = transform.required_joints()
                if found is not None:
                    return found
                continue
            joints = getattr(transform, 'input_joints', None)
            if joints is not None:
                dataset = getattr(transform, 'dataset', None)
                name = type(transform).__name__ + (f'(dataset={dataset!r})' if dataset else '')
                return int(joints), f'{name} in the pipeline'
        return None

    def __len__(self) -> int:
        return len(self.transforms)

    def __repr__(self) -> str:
        body = ''.join(f'\n    {t}' for t in self.transforms)
        return f'{type(self).__name__}({body}\n)'
