"""Rank 0's record of what each installed round changed on the validation confusions.

:class:`EffectTracker` keeps the installed rounds (the pairs they asked about, the epochs
they were asked after and installed after) and the validation matrices a round not yet
reported still needs, writes the figures into each round's JSON (``effect``), and hands the
hook what to log: one line per round once its measure is complete, and the scalars of each
validation. The figures themselves are :mod:`skeletonagent.evaluation.agent_effect`'s.
It knows nothing of mmengine: the hook passes epochs and matrices in and logs what comes out.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..evaluation.agent_effect import (
    RoundMark,
    asked_pairs,
    mark_from_report,
    read_round_reports,
    round_effects,
)
from ..utils.fileio import atomic_write_text

__all__ = ['EffectTracker', 'EffectNews', 'update_round_json']


def update_round_json(path: Path, **fields: Any) -> None:
    """Add ``fields`` to the JSON object in ``path`` (a round report), atomically."""
    report = json.loads(path.read_text(encoding='utf-8'))
    report.update(fields)
    atomic_write_text(path, json.dumps(report, indent=2, ensure_ascii=False) + '\n')


@dataclass
class EffectNews:
    """What the hook logs after a validation or at the end: ``lines`` (one per round whose
    measure is complete), ``scalars`` (``(dict, step)`` for the visualizer), ``warnings``."""

    lines: list[str] = field(default_factory=list)
    scalars: list[tuple[dict[str, float], int]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class EffectTracker:
    """The rounds installed so far and the validations they are measured on (rank 0).

    Args:
        rounds_dir: where the round reports (``round_NNN.json``) are.
    """

    def __init__(self, rounds_dir: Path) -> None:
        self.rounds_dir = Path(rounds_dir)
        self.marks: list[RoundMark] = []
        self.confusions: dict[int, np.ndarray] = {}
        self.reported: set[int] = set()

    @property
    def has_rounds(self) -> bool:
        return bool(self.marks)

    @property
    def has_validations(self) -> bool:
        return bool(self.confusions)

    def _path(self, index: int) -> Path:
        return self.rounds_dir / f'round_{index:03d}.json'

    def resume(self, rounds_done: int, confusions: dict[int, np.ndarray]) -> str | None:
        """A resumed run: the reports of the rounds installed before (those whose line was
        logged stay reported) and the validation matrices kept on disk up to the checkpoint.
        Returns a warning when the reports cannot be read (nothing is measured then)."""
        self.marks, self.confusions, self.reported = [], {}, set()
        if not rounds_done:
            return None
        try:
            for path, report in read_round_reports(self.rounds_dir, up_to=rounds_done):
                mark = mark_from_report(report, str(path))
                if mark is not None:
                    self.marks.append(mark)
                    if (report.get('effect') or {}).get('complete'):
                        self.reported.add(mark.index)
        except ValueError as exc:
            self.marks = []
            return f'the effect of the earlier rounds is not measured: {exc}'
        self.confusions = dict(confusions)
        return None

    def installed(self, index: int, result, asked_after: int, installed_after: int) -> str | None:
        """Round ``index`` (a ``RoundResult``) was installed at the end of epoch
        ``installed_after``; a round that asked nothing is not measured. Returns a warning
        when its report cannot be updated."""
        pairs = asked_pairs((c.index, o, count) for c in result.classes
                            for o, _, count in c.confused)
        if not pairs:              # nothing was asked (no confusions): nothing to measure
            return None
        self.marks.append(RoundMark(index=index, pairs=pairs, installed_after=installed_after,
                                    asked_after=asked_after, changed=result.changed))
        try:
            update_round_json(self._path(index), asked_after_epoch=asked_after,
                              installed_after_epoch=installed_after)
        except (OSError, ValueError) as exc:
            return f'could not note the install in {self._path(index)}: {exc}'
        return None

    def validated(self, epoch: int, matrix: np.ndarray) -> EffectNews:
        """The validation after ``epoch`` gave ``matrix``."""
        self.confusions[int(epoch)] = np.asarray(matrix)
        return self._measure(finished=False, epoch=int(epoch))

    def finish(self) -> EffectNews:
        """Training ended: every round's measure is complete."""
        return self._measure(finished=True)

    def _measure(self, finished: bool, epoch: int | None = None) -> EffectNews:
        news = EffectNews()
        # the rounds whose line is logged are a prefix (a round's window closes when the next
        # one is installed and validated): measure from the first one left on
        pending = [k for k, mark in enumerate(self.marks) if mark.index not in self.reported]
        if not pending:
            self._drop_unneeded()
            return news
        try:
            effects = round_effects(self.marks[pending[0]:], self.confusions, finished=finished)
        except ValueError as exc:            # another number of classes, say: not fatal
            news.warnings.append(f'the effect of the rounds is not measured: {exc}')
            return news
        for effect in effects:
            index = effect.mark.index
            touched = finished or any(f.epoch == epoch for f in effect.after) or (
                effect.before is not None and effect.before.epoch == epoch)
            newly_complete = effect.complete and index not in self.reported
            if epoch is not None and effect.after and effect.after[-1].epoch == epoch:
                last = effect.after[-1]
                news.scalars.append(({'agent_effect/round': index,
                                      'agent_effect/asked_confusions': last.asked,
                                      'agent_effect/other_confusions': last.other,
                                      'agent_effect/asked_rate': last.asked_rate,
                                      'agent_effect/other_rate': last.other_rate}, epoch))
            if touched or newly_complete:
                try:
                    update_round_json(self._path(index), effect=effect.as_dict())
                except (OSError, ValueError) as exc:
                    news.warnings.append(f'could not write the effect into '
                                         f'{self._path(index)}: {exc}')
            if newly_complete:
                self.reported.add(index)
                news.lines.append(effect.line())
                changes = {f'agent_effect/{which}_change': effect.change(which)
                           for which in ('asked', 'other')}
                changes = {k: float(v) for k, v in changes.items() if v is not None}
                if changes and effect.last is not None:
                    news.scalars.append((changes, effect.last.epoch))
        self._drop_unneeded()
        return news

    def _drop_unneeded(self) -> None:
        """Keep only the matrices a round not yet reported may still use: from the last
        validation at or before its install on (or the latest, for a round to come)."""
        pending = [m for m in self.marks if m.index not in self.reported]
        epochs = sorted(self.confusions)
        if not epochs:
            return
        if pending:
            earlier = [e for e in epochs if e <= pending[0].installed_after]
            keep_from = earlier[-1] if earlier else epochs[0]
        else:
            keep_from = epochs[-1]
        for epoch in epochs:
            if epoch < keep_from:
                del self.confusions[epoch]
