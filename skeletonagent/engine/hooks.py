"""Engine hooks that are about files and runs, not about models or agents."""
from __future__ import annotations

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
