"""Readable run logs: TensorBoard tags by phase, and no warnings about what mmengine does
internally on every run.

* :class:`PhaseLogProcessor` hands the visualizer ``train/loss``, ``val/acc/top1``, ...
  (the console lines stay as mmengine writes them) and :class:`PhaseVisualizer` gives
  TensorBoard those tags, so the training scalars (by iteration) and the validation scalars
  (by epoch) are separate series: ``time`` and ``data_time``, logged in both phases, no
  longer mix iteration and epoch steps in one curve. The JSON scalars log
  (``vis_data/scalars.json``) keeps its flat keys (``loss``, ``acc/top1``), one record per
  call, which the report reads.
* :class:`QuietLogsHook`: mmengine 0.10's CheckpointHook and checkpoint writer always build a
  ``FileClient`` they do not use (kept "until mmengine 1.0", its comment says), which logs two
  deprecation warnings on every run whatever the hook's arguments; the hook keeps exactly
  those two messages out of the run's log.
"""
from __future__ import annotations

import logging

from mmengine.dist import master_only
from mmengine.hooks import Hook
from mmengine.runner import LogProcessor
from mmengine.visualization import TensorboardVisBackend, Visualizer

from ..registry import HOOKS, LOG_PROCESSORS, VISUALIZERS

#: Metrics whose name ends so are confusion matrices, never printed in a log line.
CONFUSION_SUFFIX = 'acc/confusion'
#: The phases a record can belong to.
PHASES = ('train', 'val', 'test')
#: A training record's ``iter`` is its step.
_DROPPED_IN_TENSORBOARD = ('train/iter',)


def _phase_of(tags: dict) -> str | None:
    for key in tags:
        head = str(key).split('/', 1)[0]
        if head in PHASES and '/' in str(key):
            return head
    return None


def tensorboard_tags(tags: dict) -> dict:
    """Tags for TensorBoard: as logged, without a training record's ``train/iter`` (its step)."""
    return {k: v for k, v in tags.items() if k not in _DROPPED_IN_TENSORBOARD}


def flat_tags(tags: dict) -> dict:
    """Tags for the JSON scalars log: the phase prefix removed (the keys it always had)."""
    phase = _phase_of(tags)
    if phase is None:
        return dict(tags)
    prefix = f'{phase}/'
    return {(k[len(prefix):] if str(k).startswith(prefix) else k): v for k, v in tags.items()}


def with_phase(tags: dict, phase: str) -> dict:
    """Every key of a ``phase`` record under ``<phase>/``."""
    prefix = f'{phase}/'
    return {(k if str(k).startswith(prefix) else prefix + str(k)): v for k, v in tags.items()}


@LOG_PROCESSORS.register_module()
class PhaseLogProcessor(LogProcessor):
    """mmengine's LogProcessor whose training and validation records carry their phase
    (``train/loss``, ``val/acc/top1``) for the visualizer; the console lines are unchanged
    (mmengine's ``log_with_hierarchy`` would prefix those too), and so are the test records
    (mmengine dumps them to a file, not to the visualizer)."""

    def get_log_after_iter(self, runner, batch_idx: int, mode: str):
        tag, text = super().get_log_after_iter(runner, batch_idx, mode)
        return (with_phase(tag, mode) if mode in ('train', 'val') else tag), text

    def get_log_after_epoch(self, runner, batch_idx: int, mode: str,
                            with_non_scalar: bool = False):
        tag, text = super().get_log_after_epoch(runner, batch_idx, mode, with_non_scalar)
        return (with_phase(tag, mode) if mode in ('train', 'val') else tag), text

    def _collect_non_scalars(self, runner, mode: str) -> dict:
        """mmengine prints every non-scalar metric into the epoch's line; the validation's
        confusion matrix (kept in ``val_confusion/`` by ``ValHistoryHook``) stays out."""
        infos = super()._collect_non_scalars(runner, mode)
        return {k: v for k, v in infos.items() if not str(k).endswith(CONFUSION_SUFFIX)}


@VISUALIZERS.register_module()
class PhaseVisualizer(Visualizer):
    """mmengine's Visualizer; scalars go to TensorBoard under ``train/`` / ``val/`` tags
    and to the other backends (the JSON scalars log) with flat keys."""

    @master_only
    def add_scalars(self, scalar_dict: dict, step: int = 0, file_path: str | None = None,
                    **kwargs) -> None:
        for backend in self._vis_backends.values():
            tags = (tensorboard_tags(scalar_dict) if isinstance(backend, TensorboardVisBackend)
                    else flat_tags(scalar_dict))
            backend.add_scalars(tags, step, file_path, **kwargs)


#: What mmengine 0.10 logs each time it builds a FileClient it does not use: its
#: CheckpointHook does in ``before_train`` and ``mmengine.runner.checkpoint.save_checkpoint``
#: does for every checkpoint, whatever ``backend_args`` say (the FileClient itself, and the
#: 'disk' backend it picks).
UNUSED_FILE_CLIENT_NOTICES = ('"FileClient" will be deprecated',
                              '"HardDiskBackend" is the alias of "LocalBackend"')


class DropMessages(logging.Filter):
    """Drops log records whose message starts with one of ``starts``."""

    def __init__(self, starts: tuple[str, ...]) -> None:
        super().__init__()
        self.starts = tuple(starts)

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(self.starts)


#: What mmengine's Runner logs at start that belongs in the log file only: the environment
#: block, the whole config and the hook table (about 330 lines before the run's start block).
FILE_ONLY_MESSAGES = ('\n' + '-' * 60 + '\nSystem environment:', 'Config:\n',
                      'Hooks will be executed in the following order',
                      'Distributed training is not used, all SyncBatchNorm')


def keep_off_console(logger: logging.Logger, starts: tuple[str, ...] = FILE_ONLY_MESSAGES) -> None:
    """Drop the messages starting with ``starts`` from ``logger``'s console handlers (its
    file handlers still write them)."""
    for handler in logger.handlers:
        if isinstance(handler, logging.StreamHandler) and \
                not isinstance(handler, logging.FileHandler) and \
                not any(isinstance(f, DropMessages) and f.starts == starts
                        for f in handler.filters):
            handler.addFilter(DropMessages(starts))


@HOOKS.register_module()
class QuietLogsHook(Hook):
    """Keeps out of the run's log the deprecation notices mmengine 0.10 logs for a FileClient
    it builds and never uses (:data:`UNUSED_FILE_CLIENT_NOTICES`; no argument of ours avoids
    them), for the duration of the run. Every other message passes."""

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._filter = DropMessages(UNUSED_FILE_CLIENT_NOTICES)

    def before_run(self, runner) -> None:
        runner.logger.addFilter(self._filter)

    def after_run(self, runner) -> None:
        runner.logger.removeFilter(self._filter)
