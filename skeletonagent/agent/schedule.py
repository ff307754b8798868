"""When the agent asks, from which counts, and how the round runs: the two schedules.

:class:`OfficialSchedule` reproduces the official agent loop (``agent.official=True``, the
paper configs); :class:`BackgroundSchedule` is ours. The hook picks one at construction
(:func:`schedule_for`) and asks it, never a flag, so that each schedule's rules are read in
one place:

=====================  ==========================================  ==========================================
                       official                                    background (ours)
=====================  ==========================================  ==========================================
rounds after epochs    ``interval``, ``2·interval``, ... below     ``interval``, ``2·interval``, ... before
                       :data:`OFFICIAL_ROUND_EPOCHS_BELOW`         the last epoch
counts                 rank 0's own (the official head counts its  every rank's, summed (a collective)
                       shard), restarted every epoch               since the previous round
confused classes       the official selection (k always, the       only confused ones (``pad_to_k`` to
                       class itself included, listed by index)     name k)
follow-up history      as the official code reads its file back    as stored
the round              synchronous at the epoch's end, installed   a background thread, installed at a
                       at once                                     later epoch boundary (``background``)
=====================  ==========================================  ==========================================
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import numpy as np

from ..utils.threads import lower_thread_priority
from .questioner import OFFICIAL_SELECTION, select_confused

__all__ = ['RoundSchedule', 'OfficialSchedule', 'BackgroundSchedule', 'schedule_for',
           'OFFICIAL_ROUND_EPOCHS_BELOW']

#: The official head asks only after the epochs in ``range(1, 150)`` (a hard-coded
#: ``check_list``): with ``official=True`` no round follows a later epoch (UAV CSv1 trains 300
#: epochs and stops asking after epoch 145).
OFFICIAL_ROUND_EPOCHS_BELOW = 150


class Counts(Protocol):
    """What a schedule needs of the confusion counter (:class:`.questioner.ConfusionCounter`)."""

    def matrix(self) -> np.ndarray: ...

    def all_reduce(self) -> np.ndarray: ...

    def reset(self) -> None: ...


class RoundSchedule:
    """The rules of one agent loop (see the module docstring); subclasses set them.

    Attributes:
        official: the official loop (its settings' defaults follow, e.g. ``max_words`` 0).
        blocking: a round runs in the step loop and is installed at once.
        official_history: follow-ups replay the initial dialogue as the official code reads it.
        mode: the schedule in words, for the log and the report.
    """

    official: bool = False
    blocking: bool = False
    official_history: bool = False
    mode: str = ''

    def __init__(self, interval: int, top_k: int) -> None:
        self.interval = int(interval)
        self.top_k = int(top_k)

    def last_round_epoch(self, max_epochs: int) -> int:
        """The last epoch a round may follow: none after the run's last epoch (its texts
        could not be used)."""
        return max_epochs - 1

    def round_epochs(self, max_epochs: int) -> list[int]:
        """The epochs after which a round is asked (1-based), for a run of ``max_epochs``."""
        if self.interval <= 0:
            return []
        return list(range(self.interval, self.last_round_epoch(max_epochs) + 1, self.interval))

    def counts(self, counter: Counts) -> np.ndarray:  # pragma: no cover - abstract
        """The confusion counts a round is asked with (may be a collective)."""
        raise NotImplementedError

    def epoch_without_round(self, counter: Counts) -> None:
        """What the counts do at the end of an epoch no round follows (nothing by default)."""

    def select(self, matrix: np.ndarray) -> dict[int, list[int]]:  # pragma: no cover
        """Each class's confused classes to ask about."""
        raise NotImplementedError

    def executor(self) -> ThreadPoolExecutor | None:
        """The thread the rounds run on (rank 0), or None to run them in the step loop."""
        return None


class OfficialSchedule(RoundSchedule):
    """The official agent loop: a synchronous round at the end of an epoch, from rank 0's
    counts of that epoch, its texts used from the next epoch; none after epoch 149."""

    official = True
    blocking = True
    official_history = True
    mode = ("official: synchronous, rank 0's counts of the last epoch, texts used from the "
            'next epoch')

    def last_round_epoch(self, max_epochs: int) -> int:
        return min(max_epochs - 1, OFFICIAL_ROUND_EPOCHS_BELOW - 1)

    def counts(self, counter: Counts) -> np.ndarray:
        return counter.matrix()            # the official head counts its own shard

    def epoch_without_round(self, counter: Counts) -> None:
        counter.reset()                    # a round sees only the last epoch's confusions

    def select(self, matrix: np.ndarray) -> dict[int, list[int]]:
        return select_confused(matrix, **dict(OFFICIAL_SELECTION, k=self.top_k))


class BackgroundSchedule(RoundSchedule):
    """Our loop: counts of every rank since the previous round, only confused classes named,
    the round in a background thread while training goes on (its texts used from the epoch
    after the next); ``background=False`` runs it in the step loop instead (deterministic,
    for debugging)."""

    mode = ('background, counts of all ranks since the previous round, texts used from the '
            'epoch after the next')

    def __init__(self, interval: int, top_k: int, pad_to_k: bool = False,
                 background: bool = True, round_nice: int | str = 10) -> None:
        super().__init__(interval, top_k)
        self.pad_to_k = bool(pad_to_k)
        self.blocking = not background
        self.round_nice = round_nice

    def counts(self, counter: Counts) -> np.ndarray:
        return counter.all_reduce()        # collective: every rank takes part

    def select(self, matrix: np.ndarray) -> dict[int, list[int]]:
        return select_confused(matrix, k=self.top_k, pad_to_k=self.pad_to_k)

    def executor(self) -> ThreadPoolExecutor | None:
        if self.blocking:
            return None
        # the round's thread (and the request threads it starts) yield the cores to the
        # training steps
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix='agent-round',
                                  initializer=lower_thread_priority, initargs=(self.round_nice,))


def schedule_for(official: bool, interval: int, top_k: int, pad_to_k: bool = False,
                 background: bool = True, round_nice: int | str = 10) -> RoundSchedule:
    """The schedule the hook's arguments ask for (``official`` wins over ``background``:
    the official round blocks, at the epoch's end)."""
    if official:
        return OfficialSchedule(interval, top_k)
    return BackgroundSchedule(interval, top_k, pad_to_k=pad_to_k, background=background,
                              round_nice=round_nice)

