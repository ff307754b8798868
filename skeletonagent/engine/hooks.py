"""Engine hooks that are about files and runs, not about models or agents."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from mmengine.hooks import Hook

from ..registry import HOOKS
from .checkpoint import update_latest_link


@HOOKS.register_module()
class LatestCheckpointLinkHook(Hook):
    """Keep ``work_dir/latest.pth`` pointing at the newest complete checkpoint.

    Runs after mmengine's CheckpointHook (lowest priority), so the link only ever points at a
    file that has been written and renamed into place.
    """

    priority = 'LOWEST'

    def _relink(self, runner) -> None:
        if runner.rank != 0:
            return
        record = Path(runner.work_dir) / 'last_checkpoint'
        if not record.is_file():
            return
        target = Path(record.read_text().strip())
        if target.is_file():
            update_latest_link(runner.work_dir, target)

    def after_train_epoch(self, runner) -> None:
        self._relink(runner)

    def after_train(self, runner) -> None:
        self._relink(runner)


def progress_enabled(stream=None) -> bool:
    """Whether to show progress bars: ``SKELETONAGENT_PROGRESS=1`` forces them, ``=0`` turns
    them off; by default only when ``stream`` (stderr) is a terminal, so logs stay clean."""
    flag = os.environ.get('SKELETONAGENT_PROGRESS', '').strip().lower()
    if flag in ('1', 'true', 'yes', 'on'):
        return True
    if flag in ('0', 'false', 'no', 'off'):
        return False
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


@HOOKS.register_module()
class ProgressBarHook(Hook):
    """A tqdm bar over the validation and test iterations, on rank 0, on stderr.

    Shown when :func:`progress_enabled` (a terminal, or ``SKELETONAGENT_PROGRESS=1``); the
    mmengine log lines are left as they are.
    """

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self._bar = None

    def _open(self, runner, loader, desc: str) -> None:
        self._close()
        if runner.rank != 0 or not progress_enabled():
            return
        try:
            from tqdm import tqdm
            total = len(loader)
        except Exception:  # noqa: BLE001 - no bar rather than no run
            return
        self._bar = tqdm(total=total, desc=desc, unit='batch', leave=False, dynamic_ncols=True,
                         file=sys.stderr)

    def _step(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def _close(self) -> None:
        bar, self._bar = self._bar, None
        if bar is not None:
            bar.close()

    def before_val_epoch(self, runner) -> None:
        self._open(runner, runner.val_dataloader, 'val')

    def before_test_epoch(self, runner) -> None:
        self._open(runner, runner.test_dataloader, 'test')

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._step()

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._step()

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._close()

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._close()
