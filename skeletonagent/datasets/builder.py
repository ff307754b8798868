"""Batching for skeleton datasets: collate, worker seeding, samplers, DataLoader building.

The engine configures its DataLoaders through mmengine, naming these by string::

    train_dataloader = dict(
        batch_size=16, num_workers=4,
        dataset=dict(type='PoseDataset', ...),
        sampler=dict(type='DefaultSampler', shuffle=True),   # or 'ClassSpecificSampler'
        collate_fn=dict(type='pose_collate'),
        worker_init_fn=dict(type='pose_worker_init_fn', num_workers=4, rank=0, seed=0))

:func:`build_dataloader` builds the same thing directly (PYSKL's signature) for tools,
benchmarks and tests that do not run an mmengine Runner.
"""
from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
import torch
from mmengine.dataset import DefaultSampler
from mmengine.dist import get_dist_info, sync_random_seed
from mmengine.registry import DATA_SAMPLERS, FUNCTIONS
from torch.utils.data import DataLoader, Dataset, Sampler

__all__ = ['pose_collate', 'worker_init_fn', 'ClassSpecificSampler', 'build_dataloader']


@FUNCTIONS.register_module(name='pose_collate')
def pose_collate(batch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack samples into ``dict(keypoint=Tensor N×nc×M×T×V×C, label=LongTensor N)``.

    ``label`` is stacked as a LongTensor (or, for multi-class one-hot tensors, stacked as
    they are). Any other key is stacked when every sample holds a same-shaped tensor or a
    number, and kept as a list otherwise.

    Raises:
        ValueError: on an empty batch, a sample without ``keypoint``, or keypoint shapes
            that differ (naming the samples' positions and shapes).
    """
    if not batch:
        raise ValueError('pose_collate got an empty batch')
    out: dict[str, Any] = {}
    for key in batch[0]:
        values = [sample[key] for sample in batch]
        if key == 'keypoint':
            out[key] = _stack_keypoints(values)
        elif key == 'label':
            out[key] = _stack_labels(values)
        elif all(isinstance(v, torch.Tensor) for v in values) and \
                len({tuple(v.shape) for v in values}) == 1:
            out[key] = torch.stack(values)
        elif all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                 for v in values):
            out[key] = torch.as_tensor(values)
        else:
            out[key] = values
    if 'keypoint' not in out:
        raise ValueError(f'pose_collate: samples have no keypoint (keys: {list(batch[0])})')
    return out


def _stack_keypoints(values: list[Any]) -> torch.Tensor:
    tensors = [torch.as_tensor(v) for v in values]
    shapes = [tuple(t.shape) for t in tensors]
    if len(set(shapes)) != 1:
        odd = next(i for i, s in enumerate(shapes) if s != shapes[0])
        raise ValueError(f'pose_collate: keypoint shapes differ within the batch: sample 0 has '
                         f'{shapes[0]}, sample {odd} has {shapes[odd]}')
    return torch.stack(tensors)


def _stack_labels(values: list[Any]) -> torch.Tensor:
    if all(isinstance(v, torch.Tensor) and v.dim() > 0 for v in values):
        return torch.stack(values)          # multi-class one-hot labels
    return torch.as_tensor([int(v) for v in values], dtype=torch.long)


@FUNCTIONS.register_module(name='pose_worker_init_fn')
def worker_init_fn(worker_id: int, num_workers: int, rank: int, seed: int) -> None:
    """Seed numpy and ``random`` in a DataLoader worker (PYSKL's scheme).

    Worker seeds are ``num_workers * rank + worker_id + seed``: distinct across workers and
    ranks, reproducible across runs. (torch's own RNG is seeded per worker by the DataLoader.)
    """
    worker_seed = num_workers * rank + worker_id + seed
    np.random.seed(worker_seed % 2**32)
    random.seed(worker_seed)


@DATA_SAMPLERS.register_module()
class ClassSpecificSampler(Sampler[int]):
    """Resample classes by multipliers (PYSKL's ``ClassSpecificDistributedSampler``).

    Each epoch, class ``c``'s samples appear ``floor(m_c)`` times plus a random
    ``frac(m_c)`` share of them once more (``m_c = class_prob[c]``, default 1). The list is
    shuffled, padded to a multiple of the world size and split across ranks. Deterministic
    given ``seed`` and the epoch (:meth:`set_epoch`); identical on every rank.

    Args:
        dataset: has ``labels`` (int array) and, unless given here, ``class_prob``; an
            mmengine ``RepeatDataset`` around one works (multipliers scale by ``times``).
        class_prob: ``{class: multiplier}`` or a per-class list; default the dataset's.
        shuffle: shuffle the epoch's indices.
        seed: shared seed; ``None`` draws one and syncs it across ranks.
    """

    def __init__(self, dataset: Dataset, class_prob: Mapping[int, float] | Sequence[float]
                 | None = None, shuffle: bool = True, seed: int | None = None) -> None:
        self.dataset = dataset
        self.rank, self.world_size = get_dist_info()
        self.shuffle = shuffle
        self.seed = sync_random_seed() if seed is None else int(seed)
        self.epoch = 0

        base, times = dataset, 1
        if not hasattr(dataset, 'labels') and hasattr(dataset, 'dataset'):
            base, times = dataset.dataset, int(getattr(dataset, 'times', 1))
        if class_prob is None:
            class_prob = getattr(base, 'class_prob', None) or {}
        if not isinstance(class_prob, Mapping):
            class_prob = dict(enumerate(class_prob))
        self.labels = np.asarray(base.labels, dtype=np.int64)
        self.class_prob = {int(c): float(m) * times for c, m in class_prob.items()}
        self.default_mult = float(times)
        classes = np.unique(self.labels)
        self._class_indices = {int(c): np.flatnonzero(self.labels == c) for c in classes}
        total = sum(self._count(c, len(idx)) for c, idx in self._class_indices.items())
        self.num_samples = math.ceil(total / self.world_size)
        self.total_size = self.num_samples * self.world_size

    def _count(self, cls: int, size: int) -> int:
        mult = self.class_prob.get(cls, self.default_mult)
        return int(mult) * size + int((mult % 1) * size)

    def _epoch_indices(self) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.epoch])
        parts = []
        for cls, idx in self._class_indices.items():
            mult = self.class_prob.get(cls, self.default_mult)
            parts.append(np.tile(idx, int(mult)))
            parts.append(rng.permutation(idx)[:int((mult % 1) * len(idx))])
        indices = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        if self.shuffle:
            indices = rng.permutation(indices)
        if len(indices) and len(indices) < self.total_size:
            indices = np.resize(indices, self.total_size)     # pad by wrapping around
        return indices[self.rank:self.total_size:self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self._epoch_indices().tolist())

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Use a fresh draw for ``epoch`` (mmengine's loops call this)."""
        self.epoch = epoch


def build_dataloader(dataset: Dataset,
                     videos_per_gpu: int,
                     workers_per_gpu: int,
                     shuffle: bool = True,
                     seed: int | None = None,
                     drop_last: bool = False,
                     pin_memory: bool = False,
                     persistent_workers: bool = False,
                     **kwargs: Any) -> DataLoader:
    """A DataLoader over ``dataset`` for this rank (PYSKL's ``build_dataloader``).

    Uses :class:`ClassSpecificSampler` when the dataset has ``class_prob``, else mmengine's
    ``DefaultSampler`` (distributed-aware); batches with :func:`pose_collate`; seeds workers
    with :func:`worker_init_fn` when ``seed`` is given.
    """
    rank, _ = get_dist_info()
    if getattr(dataset, 'class_prob', None):
        sampler: Sampler = ClassSpecificSampler(dataset, shuffle=shuffle, seed=seed)
    else:
        sampler = DefaultSampler(dataset, shuffle=shuffle, seed=seed)
    init_fn = (partial(worker_init_fn, num_workers=workers_per_gpu, rank=rank, seed=seed)
               if seed is not None else None)
    return DataLoader(
        dataset,
        batch_size=videos_per_gpu,
        sampler=sampler,
        num_workers=workers_per_gpu,
        collate_fn=pose_collate,
        pin_memory=pin_memory,
        worker_init_fn=init_fn,
        drop_last=drop_last,
        persistent_workers=persistent_workers and workers_per_gpu > 0,
        **kwargs)
