"""Did an agent round help? Its asked pairs' validation confusions before and after it.

A round of the agent asks the LLM about pairs of classes, ``(true class, confused-with
class, count)``: class ``i``'s follow-up question names the classes ``j`` the training
confused it with. Here, for exactly those pairs, the validation confusions (samples of ``i``
predicted as ``j``, from the kept validation matrices,
:mod:`skeletonagent.evaluation.val_confusion`) are compared before and after the round's
texts and masks were installed, beside the same figures for every other pair of different
classes and per class.

Which validations (``F_r``: the epoch at whose end round ``r`` was installed; the state
takes part in training only, so a validation's model is the one the training epochs made):

* **before**: the last validation at or before ``F_r`` (its model never trained with the
  round's state);
* **after**: every validation after ``F_r`` up to and including ``F_{r+1}`` (the next
  round's install epoch; the models trained with this round's state), or up to the end for
  the last round. The figures a round's line gives are those of its last "after"
  validation; the round's JSON holds them all.

Rates: a pair's confusion rate is its count over the validation samples of its true class;
the rate of a set of pairs is their summed count over their summed true-class samples (the
mean per-pair rate, weighted by samples). The relative change (``-37 %``) compares counts
(the validation set is fixed, so it is the change of the rate too).

Both agent schedules fit: with ``agent.official=True`` a round is installed at the end of
the epoch it was asked after, in the default background loop at the first epoch boundary
after it finished.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .val_confusion import read_val_confusions

__all__ = ['RoundMark', 'PairFigures', 'RoundEffect', 'asked_pairs', 'pair_figures',
           'per_class_figures', 'round_effects', 'mark_from_report', 'read_round_reports',
           'work_dir_effects', 'effect_table', 'relative_change', 'format_change',
           'on_baseline', 'baseline_table', 'ROUNDS_SUBDIR']

#: Where, under the work dir, the agent writes its round reports (``round_NNN.json``).
ROUNDS_SUBDIR = Path('agent') / 'rounds'

Pair = tuple[int, int]


@dataclass(frozen=True)
class RoundMark:
    """What the effect of a round is measured from.

    Attributes:
        index: the round's number (1-based, as its report ``round_NNN``).
        pairs: the pairs its questions named, ``(true, confused-with, training count)``
            (the count None when unknown), each once, without a class paired with itself.
        installed_after: the epoch (1-based) at whose end its state was installed.
        asked_after: the epoch whose confusions it asked about (None when unknown).
        changed: whether the round changed the state (any description, joints or mask).
    """

    index: int
    pairs: tuple[tuple[int, int, int | None], ...]
    installed_after: int
    asked_after: int | None = None
    changed: bool = True

    @property
    def pair_set(self) -> set[Pair]:
        return {(i, j) for i, j, _ in self.pairs}


@dataclass(frozen=True)
class PairFigures:
    """One validation's confusions on a round's asked pairs and on every other pair.

    ``asked_samples`` / ``other_samples``: the summed validation samples of the pairs' true
    classes (the denominators of the rates)."""

    epoch: int
    asked: int
    asked_samples: int
    other: int
    other_samples: int
    errors: int
    samples: int

    @property
    def asked_rate(self) -> float:
        return self.asked / self.asked_samples if self.asked_samples else 0.0

    @property
    def other_rate(self) -> float:
        return self.other / self.other_samples if self.other_samples else 0.0

    @property
    def error_rate(self) -> float:
        return self.errors / self.samples if self.samples else 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(epoch=self.epoch, asked=self.asked, asked_samples=self.asked_samples,
                    asked_rate=round(self.asked_rate, 6), other=self.other,
                    other_samples=self.other_samples, other_rate=round(self.other_rate, 6),
                    errors=self.errors, samples=self.samples,
                    error_rate=round(self.error_rate, 6))


def asked_pairs(pairs: Iterable[Sequence]) -> tuple[tuple[int, int, int | None], ...]:
    """``(true, confused-with, count)`` each once (the first wins), in the given order,
    without self-pairs (the official selection may name a class itself)."""
    seen: set[Pair] = set()
    out = []
    for pair in pairs:
        i, j = int(pair[0]), int(pair[1])
        count = pair[2] if len(pair) > 2 else None
        if i == j or (i, j) in seen:
            continue
        seen.add((i, j))
        out.append((i, j, None if count is None else int(count)))
    return tuple(out)


def _check(matrix: np.ndarray, pairs: Iterable[Pair], epoch: int | None = None) -> np.ndarray:
    cm = np.asarray(matrix)
    where = f'the validation confusion of epoch {epoch}' if epoch is not None else 'the matrix'
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f'{where} must be square, got shape {cm.shape}')
    n = cm.shape[0]
    for i, j in pairs:
        if not (0 <= i < n and 0 <= j < n):
            raise ValueError(f'pair ({i}, {j}) names a class outside 0..{n - 1} of {where}')
    return cm.astype(np.int64)


def pair_figures(matrix: np.ndarray, pairs: Iterable[Pair], epoch: int = 0) -> PairFigures:
    """The confusions of ``pairs`` (``(true, predicted)``) and of every other off-diagonal
    pair in one validation matrix (rows true class, columns predicted)."""
    pairs = {(int(p[0]), int(p[1])) for p in pairs if int(p[0]) != int(p[1])}
    cm = _check(matrix, pairs, epoch)
    n = cm.shape[0]
    support = cm.sum(1)
    asked = sum(int(cm[i, j]) for i, j in pairs)
    asked_samples = sum(int(support[i]) for i, _ in pairs)
    off_total = int(cm.sum() - np.trace(cm))
    all_samples = int(support.sum()) * (n - 1)     # every off-diagonal pair's true class
    return PairFigures(epoch=int(epoch), asked=asked, asked_samples=asked_samples,
                       other=off_total - asked, other_samples=all_samples - asked_samples,
                       errors=off_total, samples=int(support.sum()))


def per_class_figures(before: np.ndarray | None, after: np.ndarray | None,
                      pairs: Iterable[Pair]) -> list[dict[str, Any]]:
    """Per class with validation samples: its errors and its confusions into the classes
    it was asked about, before and after (None where a matrix is missing)."""
    pairs = {(int(p[0]), int(p[1])) for p in pairs}
    reference = after if after is not None else before
    if reference is None:
        return []
    n = np.asarray(reference).shape[0]
    asked_of: dict[int, list[int]] = {}
    for i, j in sorted(pairs):
        asked_of.setdefault(i, []).append(j)

    def figures(cm: np.ndarray | None, cls: int) -> tuple[int | None, int | None]:
        if cm is None:
            return None, None
        row = np.asarray(cm)[cls]
        errors = int(row.sum() - row[cls])
        return errors, int(sum(int(row[j]) for j in asked_of.get(cls, [])))

    rows = []
    for cls in range(n):
        samples = int(np.asarray(reference)[cls].sum())
        if samples == 0:
            continue
        errors_before, asked_before = figures(before, cls)
        errors_after, asked_after = figures(after, cls)
        rows.append(dict(index=cls, samples=samples, asked=cls in asked_of,
                         errors_before=errors_before, errors_after=errors_after,
                         asked_confusions_before=asked_before,
                         asked_confusions_after=asked_after))
    return rows


def relative_change(before: int | float, after: int | float) -> float | None:
    """``(after - before) / before``; None when ``before`` is 0."""
    return None if not before else (after - before) / before


def format_change(before: int | float, after: int | float) -> str:
    """'−37 %', '+5 %', '±0 %' or 'n/a' (from zero)."""
    change = relative_change(before, after)
    if change is None:
        return 'n/a'
    percent = round(100 * change)
    if percent == 0:
        return '±0 %'
    return f'{"−" if percent < 0 else "+"}{abs(percent)} %'


@dataclass
class RoundEffect:
    """The effect of one round (see the module docstring).

    Attributes:
        mark: the round.
        before: the validation before it was installed (None when none ran).
        after: the validations after it, up to the next round's install (or the end).
        complete: every "after" validation is in (the next round was installed and
            validated, or the run ended).
        per_class: :func:`per_class_figures` of ``before`` and the last of ``after``.
    """

    mark: RoundMark
    before: PairFigures | None
    after: list[PairFigures] = field(default_factory=list)
    complete: bool = False
    per_class: list[dict[str, Any]] = field(default_factory=list)

    @property
    def last(self) -> PairFigures | None:
        return self.after[-1] if self.after else None

    def change(self, which: str) -> float | None:
        """Relative change of the ``'asked'`` or ``'other'`` confusions, before → last."""
        if self.before is None or self.last is None:
            return None
        return relative_change(getattr(self.before, which), getattr(self.last, which))

    def line(self) -> str:
        """The log line, e.g. ``round 3: asked 40 pairs; their confusions 112 → 71 (−37 %),
        other pairs 530 → 498 (−6 %) (validation after epoch 15 → 20)``."""
        mark = self.mark
        head = f'round {mark.index}: asked {len(mark.pairs)} pair{"s" if len(mark.pairs) != 1 else ""}'
        if not mark.changed:
            head += ' (the state did not change)'
        if self.before is None:
            return f'{head}; no validation before it was installed (after epoch ' \
                   f'{mark.installed_after}): effect not measured'
        last = self.last
        if last is None:
            return f'{head}; no validation after it was installed (after epoch ' \
                   f'{mark.installed_after}): effect not measured'
        b = self.before
        return (f'{head}; their confusions {b.asked} → {last.asked} '
                f'({format_change(b.asked, last.asked)}), other pairs {b.other} → '
                f'{last.other} ({format_change(b.other, last.other)}) '
                f'(validation after epoch {b.epoch} → {last.epoch})')

    def as_dict(self) -> dict[str, Any]:
        """The figures the round's JSON holds under ``effect``."""
        mark = self.mark
        asked, other = self.change('asked'), self.change('other')
        return dict(
            pairs=[dict(true=i, confused_with=j, count=c) for i, j, c in mark.pairs],
            installed_after_epoch=mark.installed_after, asked_after_epoch=mark.asked_after,
            state_changed=mark.changed, complete=self.complete,
            before=self.before.as_dict() if self.before is not None else None,
            after=[f.as_dict() for f in self.after],
            asked_change=None if asked is None else round(asked, 6),
            other_change=None if other is None else round(other, 6),
            per_class=self.per_class, line=self.line())


def round_effects(marks: Sequence[RoundMark], confusions: Mapping[int, np.ndarray],
                  finished: bool = False) -> list[RoundEffect]:
    """The effect of every round, from the validation matrices by epoch.

    Args:
        marks: the rounds, in install order.
        confusions: ``{epoch: matrix}`` of the validations so far.
        finished: the run is over (the last round's window is complete).
    """
    marks = sorted(marks, key=lambda m: (m.installed_after, m.index))
    epochs = sorted(int(e) for e in confusions)
    latest = epochs[-1] if epochs else None
    effects = []
    for k, mark in enumerate(marks):
        nxt = marks[k + 1].installed_after if k + 1 < len(marks) else None
        earlier = [e for e in epochs if e <= mark.installed_after]
        before_epoch = earlier[-1] if earlier else None
        after_epochs = [e for e in epochs if e > mark.installed_after and (nxt is None or e <= nxt)]
        complete = finished or (nxt is not None and latest is not None and latest >= nxt)
        pairs = [(i, j) for i, j, _ in mark.pairs]
        before = (pair_figures(confusions[before_epoch], pairs, before_epoch)
                  if before_epoch is not None else None)
        after = [pair_figures(confusions[e], pairs, e) for e in after_epochs]
        per_class = per_class_figures(
            confusions[before_epoch] if before_epoch is not None else None,
            confusions[after_epochs[-1]] if after_epochs else None, pairs)
        effects.append(RoundEffect(mark, before, after, complete, per_class))
    return effects


# ------------------------------------------------------------------ round reports on disk
def mark_from_report(report: Mapping[str, Any], source: str = 'round report'
                     ) -> RoundMark | None:
    """The :class:`RoundMark` of a round report (``round_NNN.json``), or None for a round
    that was never installed (no ``installed_after_epoch``: it finished after training).

    Raises:
        ValueError: naming ``source`` and the field, for a report without its round number
            or with a malformed pair.
    """
    installed = report.get('installed_after_epoch')
    if installed is None:
        return None
    try:
        index = int(report['round'])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f'{source}: field "round" missing or not a number') from None
    pairs = []
    for entry in report.get('classes') or []:
        try:
            cls = int(entry['index'])
            for other in entry.get('confused') or []:
                pairs.append((cls, int(other['index']), other.get('count')))
        except (KeyError, TypeError, ValueError):
            raise ValueError(f'{source}: class entry {entry.get("index", "?")}: field '
                             f'"confused" must list {{index, count}} dicts') from None
    asked = report.get('asked_after_epoch')
    changed = report.get('version_after') != report.get('version_before') \
        if 'version_after' in report else True
    return RoundMark(index=index, pairs=asked_pairs(pairs), installed_after=int(installed),
                     asked_after=None if asked is None else int(asked), changed=bool(changed))


def read_round_reports(rounds_dir: str | Path, up_to: int | None = None
                       ) -> list[tuple[Path, dict]]:
    """``(path, report)`` of the round reports in ``rounds_dir`` (a work dir's
    :data:`ROUNDS_SUBDIR`), in round order (only rounds ``<= up_to`` when given).

    Raises:
        ValueError: naming the file, for a report that is not JSON.
    """
    out = []
    for path in sorted(Path(rounds_dir).glob('round_[0-9][0-9][0-9].json')):
        try:
            report = json.loads(path.read_text(encoding='utf-8'))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f'{path}: not a round report ({exc})') from exc
        if not isinstance(report, dict):
            raise ValueError(f'{path}: not a round report (a JSON object expected)')
        if up_to is not None and int(report.get('round', 0)) > up_to:
            continue
        out.append((path, report))
    return out


def work_dir_effects(work_dir: str | Path, finished: bool = True) -> list[RoundEffect]:
    """The effect of every installed round of a run, from its round reports and its kept
    validation matrices."""
    reports = read_round_reports(Path(work_dir) / ROUNDS_SUBDIR)
    marks = [m for m in (mark_from_report(r, str(p)) for p, r in reports) if m is not None]
    return round_effects(marks, read_val_confusions(work_dir), finished=finished)


def on_baseline(effect: RoundEffect, confusions: Mapping[int, np.ndarray]
                ) -> tuple[PairFigures | None, PairFigures | None]:
    """The round's asked pairs in another run (a baseline, e.g. the same config without the
    agent) at the same two validations (the round's before and last after); None where
    the baseline has no validation of that epoch."""
    pairs = [(i, j) for i, j, _ in effect.mark.pairs]

    def at(figures: PairFigures | None) -> PairFigures | None:
        if figures is None or figures.epoch not in confusions:
            return None
        return pair_figures(confusions[figures.epoch], pairs, figures.epoch)

    return at(effect.before), at(effect.last)


def baseline_table(effects: Sequence[RoundEffect], confusions: Mapping[int, np.ndarray]) -> str:
    """Per round: its asked pairs' confusions in this run and, at the same validations, in
    the baseline run."""
    header = ('round', 'pairs', 'val', 'this run', 'change', 'baseline', 'change')
    rows = [header]
    for effect in effects:
        b, a = effect.before, effect.last
        base_b, base_a = on_baseline(effect, confusions)
        rows.append((
            str(effect.mark.index), str(len(effect.mark.pairs)),
            f'{b.epoch} → {a.epoch}' if b and a else '-',
            f'{b.asked} → {a.asked}' if b and a else '-',
            format_change(b.asked, a.asked) if b and a else '-',
            f'{base_b.asked} → {base_a.asked}' if base_b and base_a else '-',
            format_change(base_b.asked, base_a.asked) if base_b and base_a else '-'))
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    lines = ['  '.join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.insert(1, '  '.join('-' * w for w in widths))
    return '\n'.join(lines)


def _pct(value: float | None) -> str:
    return '-' if value is None else f'{100 * value:.1f}'


def effect_table(effects: Sequence[RoundEffect]) -> str:
    """A plain-text table: one row per round (counts, rates in %, changes)."""
    header = ('round', 'installed', 'pairs', 'val before', 'val after', 'asked before',
              'asked after', 'change', 'asked rate %', 'other before', 'other after', 'change',
              'other rate %')
    rows = [header]
    for effect in effects:
        b, a = effect.before, effect.last
        rows.append((
            str(effect.mark.index) + ('' if effect.mark.changed else '*'),
            f'after {effect.mark.installed_after}', str(len(effect.mark.pairs)),
            '-' if b is None else str(b.epoch), '-' if a is None else str(a.epoch),
            '-' if b is None else str(b.asked), '-' if a is None else str(a.asked),
            format_change(b.asked, a.asked) if b and a else '-',
            f'{_pct(b.asked_rate if b else None)} → {_pct(a.asked_rate if a else None)}',
            '-' if b is None else str(b.other), '-' if a is None else str(a.other),
            format_change(b.other, a.other) if b and a else '-',
            f'{_pct(b.other_rate if b else None)} → {_pct(a.other_rate if a else None)}'))
    widths = [max(len(r[c]) for r in rows) for c in range(len(header))]
    lines = ['  '.join(cell.rjust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.insert(1, '  '.join('-' * w for w in widths))
    if any(not e.mark.changed for e in effects):
        lines.append('* the round did not change the state')
    return '\n'.join(lines)
