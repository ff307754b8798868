"""The Questioner: which classes the recognizer confuses, counted while training.

What is counted (the official ``BaseHead.update_statistics``, run on every training batch):

* **forward**: a sample of class ``i`` predicted as ``p != i`` adds 1 to ``(i, p)``;
* **reverse**: a sample of class ``j`` predicted as ``i != j`` adds to ``(i, j)``, once for
  every sample of class ``i`` in the same batch. The official code loops over the samples
  ``s`` of the batch and, for each, over the samples predicted as ``label[s]`` with another
  label, so the reverse count is weighted by how many samples of class ``i`` the batch holds
  (zero when the batch has none).

Correct predictions and the diagonal ``(i, i)`` are never counted. The prediction is the
arg-max of the logits (the first maximum on ties). Only the clean half of a training batch
is passed in (the step's ``outputs.predictions``, see ``AgentHook.after_train_iter``); the mixup half
has soft labels, as in the official head, which sees ``cls_score`` after ``mix_chunk``.

In a distributed run every rank counts its own batches. The official code only ever uses
rank 0's counts; :meth:`ConfusionCounter.all_reduce` sums them over the ranks instead
(``matrix()`` on rank 0 gives the official numbers).

:func:`select_confused` then picks, for each class, the classes it is most confused with.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Union

import numpy as np
import torch
import torch.distributed as dist

__all__ = ['ConfusionCounter', 'select_confused', 'REVERSE_WEIGHTS', 'OFFICIAL_SELECTION']

#: How :class:`ConfusionCounter` weights the reverse direction: ``'batch'`` (official: by
#: the number of samples of the row's class in the batch), ``'one'`` (each wrong
#: prediction once) or ``'none'`` (forward direction only).
REVERSE_WEIGHTS = ('batch', 'one', 'none')

#: :func:`select_confused` arguments that reproduce the official ``update_class_list``.
OFFICIAL_SELECTION: dict[str, Any] = dict(k=10, pad_to_k=True, include_self=True,
                                          order='index')

DeviceArg = Union[str, torch.device, None]


class ConfusionCounter:
    """A Class x Class int64 count of confusions, kept on the device of the logits.

    Args:
        num_classes: number of classes ``C``.
        device: where the counts start; they move to the logits' device on the first
            :meth:`update` (so a counter built before the model is placed follows it).
        reverse: weighting of the reverse direction, one of :data:`REVERSE_WEIGHTS`.

    :meth:`update` runs a few tensor ops on the device and never synchronises with the host.
    """

    def __init__(self, num_classes: int, device: DeviceArg = None, reverse: str = 'batch') -> None:
        if int(num_classes) < 1:
            raise ValueError(f'ConfusionCounter needs num_classes >= 1, got {num_classes}')
        if reverse not in REVERSE_WEIGHTS:
            raise ValueError(f'reverse must be one of {REVERSE_WEIGHTS}, got {reverse!r}')
        self.num_classes = int(num_classes)
        self.reverse = reverse
        # One buffer: C*C counts, then the number of samples seen (one collective reduces both).
        self._buffer = torch.zeros(self.num_classes ** 2 + 1, dtype=torch.int64,
                                   device=torch.device(device) if device is not None else 'cpu')

    # ------------------------------------------------------------------ counting
    @property
    def device(self) -> torch.device:
        return self._buffer.device

    def _counts(self) -> torch.Tensor:
        c = self.num_classes
        return self._buffer[:c * c].view(c, c)

    @torch.no_grad()
    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Count the confusions of one batch (see the module docstring for what counts).

        Args:
            logits: N x C scores of the clean (non-mixup) samples.
            labels: N integer labels (N x 1 is accepted).

        Raises:
            ValueError: when the shapes do not fit ``C`` or each other.
        """
        c = self.num_classes
        if logits.dim() != 2 or logits.shape[1] != c:
            raise ValueError(f'ConfusionCounter.update: logits must be N x {c}, got '
                             f'{tuple(logits.shape)}')
        if labels.dtype.is_floating_point or labels.dtype == torch.bool:
            raise ValueError(f'ConfusionCounter.update: labels must be integers, got '
                             f'{labels.dtype} (pass the clean labels, not mixup targets)')
        if labels.dim() == 2 and labels.shape[1] == 1:
            labels = labels.view(-1)
        if labels.dim() != 1 or labels.shape[0] != logits.shape[0]:
            raise ValueError(f'ConfusionCounter.update: {logits.shape[0]} logits but labels '
                             f'of shape {tuple(labels.shape)}')
        if self._buffer.device != logits.device:
            self._buffer = self._buffer.to(logits.device)
        n = logits.shape[0]
        if n == 0:
            return
        labels = labels.to(device=logits.device, dtype=torch.int64)
        pred = logits.detach().argmax(dim=1)
        # batch[a, b] = samples of class a predicted as b. index_add_ (unlike bincount)
        # needs no host sync to size its output.
        flat = labels * c + pred
        batch = torch.zeros(c * c, dtype=torch.int64, device=logits.device)
        batch.index_add_(0, flat, torch.ones_like(flat))
        batch = batch.view(c, c)
        per_class = batch.sum(dim=1)             # samples of each class in the batch
        wrong = batch.fill_diagonal_(0)          # forward confusions (i, p), p != i
        counts = self._counts()
        counts += wrong
        if self.reverse == 'batch':
            counts += per_class[:, None] * wrong.t()
        elif self.reverse == 'one':
            counts += wrong.t()
        self._buffer[-1] += n

    # ------------------------------------------------------------------ reading
    @property
    def num_samples(self) -> int:
        """Samples counted so far (synchronises with the device; not for every step)."""
        return int(self._buffer[-1].item())

    def matrix(self) -> np.ndarray:
        """This process's counts as a CPU int64 array (C x C), without reducing."""
        return self._counts().detach().cpu().numpy().copy()

    def all_reduce(self) -> np.ndarray:
        """Sum the counts over all ranks, in place, and return them as a CPU int64 array.

        A collective: every rank must call it (the same number of times). After it every
        rank holds the global counts, so call it once per round and :meth:`reset` after;
        a second call would count everything again. Without an initialised process group it
        is :meth:`matrix`.
        """
        if dist.is_available() and dist.is_initialized():
            backend = str(dist.get_backend()).lower()
            buffer = self._buffer
            if 'nccl' in backend and buffer.device.type != 'cuda':
                # A rank that never updated still holds its counts on the CPU.
                buffer = buffer.to(torch.device('cuda', torch.cuda.current_device()))
            elif 'nccl' not in backend and buffer.device.type == 'cuda':
                buffer = buffer.cpu()  # gloo reduces CPU tensors
            dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
            if buffer is not self._buffer:
                self._buffer.copy_(buffer)
        return self.matrix()

    def reset(self) -> None:
        """Zero the counts (the official code starts afresh every epoch)."""
        self._buffer.zero_()

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Plain form for checkpoints (``torch.load(weights_only=True)`` reads it)."""
        return {'num_classes': self.num_classes, 'reverse': self.reverse,
                'counts': self._counts().detach().cpu().clone(),
                'num_samples': self.num_samples}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output (the counts stay on this counter's device).

        Raises:
            ValueError: when the number of classes differs.
        """
        counts = torch.as_tensor(state['counts'], dtype=torch.int64)
        c = self.num_classes
        if int(state.get('num_classes', counts.shape[0])) != c or tuple(counts.shape) != (c, c):
            raise ValueError(f'confusion counter state is for {tuple(counts.shape)} counts, '
                             f'this counter has {c} classes')
        self._counts().copy_(counts.to(self.device))
        self._buffer[-1] = int(state.get('num_samples', 0))

    def __repr__(self) -> str:
        return (f'ConfusionCounter(num_classes={self.num_classes}, reverse={self.reverse!r}, '
                f'device={self.device})')


def select_confused(matrix: np.ndarray | torch.Tensor, k: int = 10,
                    pad_to_k: bool = False, include_self: bool = False,
                    order: str = 'count') -> dict[int, list[int]]:
    """For each class, the classes it is most confused with.

    Row ``i`` of ``matrix`` ranks the other classes by count, highest first, ties broken by
    the lower index, and keeps the first ``k``.

    Args:
        matrix: C x C counts (:meth:`ConfusionCounter.all_reduce` output).
        k: how many classes to keep per class (fewer when fewer exist).
        pad_to_k: also keep classes with a zero count, lowest index first, until there are
            ``k`` (the official ``update_class_list`` sorts the whole row, zeros included).
            Without it zero counts are left out, and a class with none at all is absent
            from the result.
        include_self: let class ``i`` rank in its own row by its diagonal count. The
            official code does (the diagonal is always 0 there, so a class can name itself
            when its row has fewer than ``k`` non-zero counts and it is padded).
        order: ``'count'`` (the ranking order) or ``'index'`` (the kept classes by index,
            the official order, in which its follow-up prompt names them).

    :data:`OFFICIAL_SELECTION` holds the arguments that reproduce the official choice.

    Raises:
        ValueError: for a non-square matrix, ``k < 0`` or an unknown ``order``.
    """
    if isinstance(matrix, torch.Tensor):
        matrix = matrix.detach().cpu().numpy()
    counts = np.asarray(matrix)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f'select_confused needs a square C x C matrix, got shape {counts.shape}')
    if k < 0:
        raise ValueError(f'select_confused needs k >= 0, got {k}')
    if order not in ('count', 'index'):
        raise ValueError(f"order must be 'count' or 'index', got {order!r}")
    num_classes = counts.shape[0]
    # Stable sort on the negated counts: descending count, lower index first on ties.
    ranking = np.argsort(-counts, axis=1, kind='stable')
    selected: dict[int, list[int]] = {}
    for cls in range(num_classes):
        row = counts[cls]
        kept = [int(o) for o in ranking[cls]
                if (include_self or o != cls) and (pad_to_k or row[o] > 0)][:k]
        if order == 'index':
            kept.sort()
        if kept:
            selected[cls] = kept
    return selected
