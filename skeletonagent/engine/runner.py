"""Build mmengine Runners from our configs, and the train / test entry points the tools call."""
from __future__ import annotations

import copy
import logging
import signal
import threading
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.dist import barrier, get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import BaseLoop, Runner

from ..evaluation.predictions import write_prediction_samples
from ..evaluation.report import write_report
from ..models.gcn import fuse_for_inference
from ..registry import MODELS, explain_unknown_types
from ..utils.cpu import cpu_line
from ..utils.malloc import malloc_line
from ..utils.parent_death import exit_soon_if_orphaned
from .checkpoint import (
    PlainCheckpointHook,
    check_checkpoint_config,
    find_resume_checkpoint,
    load_checkpoint_file,
    load_model_weights,
    register_checkpoint_globals,
    remove_stale_temp_files,
)
from .config import RunOptions
from .config_keys import explain_unexpected_arguments
from .failed_start import WorkDirSnapshot
from .hooks import ScheduleLengthHook, ValHistoryHook, read_val_history
from .logs import keep_off_console
from .memcached_server import serving_memcached
from .prebuilt import take_dataset
from .spec import RunSpec, as_spec
from .summary import format_block, summary_lines
from .threads import ThreadChoice, choose_workers, configure_threads
from .workdir_lock import LOCK_NAME, hold_work_dir_all_ranks


class SkeletonRunner(Runner):
    """mmengine's Runner whose console shows the run, not its environment, whole config and
    hook table: those go to the log file only (:func:`.logs.keep_off_console`)."""

    def build_logger(self, *args, **kwargs):
        logger = super().build_logger(*args, **kwargs)
        keep_off_console(logger)
        return logger


def build_model(cfg: Config, for_training: bool):
    """Build the recognizer; load the text encoder only when training needs it."""
    with explain_unexpected_arguments(cfg.model, 'model'):  # a key no class takes, by path
        model = MODELS.build(cfg.model)
    if for_training and hasattr(model, 'init_text_encoder'):
        model.init_text_encoder()
    return model


def compile_backbone(model) -> None:
    """``torch.compile`` the backbone's forward (the heavy, graph-friendly part).

    Compiling the bound method instead of wrapping the module keeps the state_dict keys (no
    ``_orig_mod.`` prefix), so checkpoints stay interchangeable with uncompiled runs. Mixup,
    losses and text lookups stay eager: they hold Python-side randomness and caches.
    """
    backbone = model.backbone
    backbone.forward = torch.compile(backbone.forward)
    print_log('compiled the backbone with torch.compile (the first iterations are slow)',
              logger='current')


def _log_resume(spec: RunSpec) -> None:
    """Say what ``--resume`` found, and remove the half-written files a killed run left
    (their temporary names) before anything writes."""
    if spec.mode != 'train' or not spec.resume_requested or get_rank() != 0:
        return
    work_dir = spec.cfg.work_dir
    if spec.resume_requested == 'auto':
        found = spec.options.resume
        print_log(f'resuming from {found}' if found else
                  f'--resume auto: no checkpoint in {work_dir}: starting a new run',
                  logger='current')
    stale = remove_stale_temp_files(work_dir)
    if stale:
        print_log(f'removed {len(stale)} temporary files a killed run left: '
                  + ', '.join(str(p) for p in stale[:5]), logger='current')


def build_runner(spec: RunSpec | Config, opts: RunOptions | None = None, mode: str = 'train',
                 workers: int | None = None) -> Runner:
    """An mmengine Runner for a resolved run (or a script's config, resolved first), with at
    most ``workers`` DataLoader workers per loader (None: as the config says)."""
    spec = as_spec(spec, opts, mode).with_plugins_resolved()   # done unless preflight was skipped
    opts = spec.options
    _log_resume(spec)
    if spec.mode == 'train' and opts.resume:  # refuse a checkpoint of another stream / dataset
        check_checkpoint_config(load_checkpoint_file(opts.resume), spec.cfg, opts.resume)
    kwargs = spec.new_runner_kwargs()
    _cap_workers(kwargs, workers)
    _use_checked_datasets(kwargs, spec.cfg)
    model = build_model(spec.cfg, for_training=(spec.mode == 'train'))
    if opts.compile:
        compile_backbone(model)
    if opts.launcher != 'none':
        # mmengine reads the wrapper settings from the config it is given (a copy: the spec's
        # config stays as resolved)
        kwargs['cfg'] = copy.deepcopy(spec.cfg)
        kwargs['cfg'].model_wrapper_cfg = dict(type='SkeletonDDP', broadcast_buffers=False,
                                               find_unused_parameters=False)
    register_checkpoint_globals()  # mmengine's loader reads PYSKL / official checkpoints
    runner = SkeletonRunner(model=model, **kwargs)
    runner.register_hook(PlainCheckpointHook())  # checkpoints any weights_only loader reads
    if spec.mode == 'train':
        runner.register_hook(ScheduleLengthHook())  # a resumed run follows its own length
        runner.register_hook(ValHistoryHook())      # the figures the summary names
    return runner


def _cap_workers(kwargs: dict, workers: int | None) -> None:
    """At most ``workers`` DataLoader workers in every loader (None: as the config says)."""
    if workers is None:
        return
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = kwargs.get(key)
        if isinstance(loader, dict) and int(loader.get('num_workers') or 0) > workers:
            loader['num_workers'] = workers
            if workers == 0:
                loader['persistent_workers'] = False


def _use_checked_datasets(kwargs: dict, cfg: Config) -> None:
    """The datasets the start checks built and checked (:func:`.preflight.check_datasets`)
    go to the loaders as they are, instead of being loaded a second time."""
    for split, key in (('train', 'train_dataloader'), ('val', 'val_dataloader'),
                       ('test', 'test_dataloader')):
        loader = kwargs.get(key)
        if isinstance(loader, dict):
            token = take_dataset(cfg, split)
            if token is not None:
                loader['dataset'] = token


def _workers(spec: RunSpec) -> int:
    """DataLoader workers per process the run's main loader asks for (the training loader,
    or the test loader of a test run)."""
    key = 'train_dataloader' if spec.mode == 'train' else 'test_dataloader'
    loader = spec.runner_kwargs.get(key) or {}
    return int(loader.get('num_workers', 0) or 0)


def set_threads(spec: RunSpec, threads: int | None = None
                ) -> tuple[ThreadChoice, int | None, str | None]:
    """Choose and set this process's CPU threads and its DataLoader workers per loader
    (``engine/threads.py`` has the rules): (thread choice, workers, how they were chosen).

    The processes of a distributed run meet at a barrier first: each then counts the busy
    CPUs while the others do the same (mostly asleep between readings), not while they are
    still busy starting up."""
    if get_world_size() > 1:
        barrier()
    workers, line = choose_workers(_workers(spec))
    return configure_threads(threads, workers=workers), workers, line


def _publish_machine(runner: Runner, choice: ThreadChoice, workers_line: str | None) -> None:
    """The thread choice and the CPU with the instruction set oneDNN runs its kernels with, in
    the log and in the start block (``run_info/machine``, so ``run_info.json`` says which
    kernels ran); the malloc settings (``skeletonagent.utils.malloc``) in the log."""
    cpu = cpu_line()
    machine = {'cpu': cpu, 'threads': choice.line()}
    if workers_line:
        machine['data workers'] = workers_line
    runner.message_hub.update_info('run_info/machine', machine)
    if get_rank() == 0:
        print_log(f'cpu: {cpu}', logger='current')
        print_log(f'threads: {choice.line()}', logger='current')
        if workers_line:
            print_log(f'data workers: {workers_line}', logger='current')
        print_log(f'malloc: {malloc_line()}', logger='current')


def _set_out_file(runner: Runner, out_file: str | None) -> None:
    for metric in runner.test_evaluator.metrics:
        if hasattr(metric, 'out_file'):
            metric.out_file = out_file


def run_test(runner: Runner, out_file: str | None) -> dict:
    """Test with the runner's current weights; dump per-sample scores to ``out_file``."""
    runner._test_loop = runner.build_test_loop(runner._test_loop)  # builds the evaluator
    _set_out_file(runner, out_file)
    metrics = runner.test()
    if get_rank() == 0 and out_file:      # which samples the file scores, in order
        write_prediction_samples(out_file, runner.test_dataloader.dataset)
    if get_rank() == 0:
        shown = ', '.join(f'{k}: {v:.4f}' for k, v in metrics.items()
                          if isinstance(v, (int, float)))
        print_log(f'test results ({out_file or "no dump"}): {shown}', logger='current',
                  level=logging.INFO)
    return metrics


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C (SIGINT) or SIGTERM; ``exit_status`` is 128 + the signal."""

    def __init__(self, signal_name: str = 'SIGINT') -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name
        number = getattr(signal, signal_name, signal.SIGINT)
        self.exit_status = 128 + int(number)


class _StopOnSignals:
    """While active (main thread only), Ctrl-C (SIGINT) and SIGTERM raise
    :class:`RunInterrupted` in the main thread, so a terminated run ends as a Ctrl-C'd one
    does: logged, files closed. A signal whose disposition is not the default (ignored, or
    another handler) is left alone.

    Python runs a signal handler between two bytecodes of the main thread; when that happens
    inside a ``__del__`` or a weakref callback (garbage collection), the exception is printed
    as "ignored" and the code goes on. :class:`_StopCheckHook` catches those: the handler also
    records the signal and the hook raises after the current iteration."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        self.received = signal.Signals(signum).name
        # a rank whose launcher died (its parent-death signal): the stop below may wait for a
        # peer that is gone; it ends within seconds whatever happens
        exit_soon_if_orphaned(128 + int(signum))
        raise RunInterrupted(self.received)

    def __enter__(self) -> _StopOnSignals:
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig, default in ((signal.SIGINT, signal.default_int_handler),
                             (signal.SIGTERM, signal.SIG_DFL)):
            if signal.getsignal(sig) is default:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}


class _StopCheckHook(Hook):
    """Raises :class:`RunInterrupted` after an iteration when a signal arrived whose
    exception was swallowed (see :class:`_StopOnSignals`)."""

    priority = 'VERY_HIGH'

    def __init__(self, guard: _StopOnSignals) -> None:
        self.guard = guard

    def _check(self, *args, **kwargs) -> None:
        if self.guard.received:
            raise RunInterrupted(self.guard.received)

    after_train_iter = after_val_iter = after_test_iter = _check


class _FirstIterationHook(Hook):
    """Records that a training iteration completed (the run has started for good)."""

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self.done = False

    def after_train_iter(self, *args, **kwargs) -> None:
        self.done = True


def _close_writers(runner: Runner | None) -> None:
    """Close the visualizer's backends (TensorBoard's event file) of a run that failed."""
    backends = getattr(getattr(runner, 'visualizer', None), '_vis_backends', None) or {}
    for backend in backends.values():
        try:
            backend.close()
        except Exception:  # noqa: BLE001 - best effort, the run is ending
            pass


def _stop_workers(runner: Runner) -> None:
    """Shut down the DataLoader workers a loader keeps (``persistent_workers``) now: a worker
    killed by the same signal would otherwise make torch's SIGCHLD handler raise at exit."""
    for name in ('_train_loop', '_val_loop', '_test_loop'):
        loop = getattr(runner, name, None)
        loader = getattr(loop, 'dataloader', None) if isinstance(loop, BaseLoop) else None
        iterator = getattr(loader, '_iterator', None)
        if iterator is not None and hasattr(iterator, '_shutdown_workers'):
            try:
                iterator._shutdown_workers()
            except Exception:  # noqa: BLE001 - best effort, the run is ending
                pass


def _interrupted(runner: Runner | None, cfg: Config, exc: BaseException,
                 trained: bool) -> RunInterrupted:
    """Log one line for an interrupted run (what to run next) and end it cleanly."""
    stop = exc if isinstance(exc, RunInterrupted) else RunInterrupted('SIGINT')
    how = 'Ctrl-C' if stop.signal_name == 'SIGINT' else stop.signal_name
    if runner is not None:
        _stop_workers(runner)
        try:   # what an ended run does: close the log files and TensorBoard's writer
            runner.call_hook('after_run')
        except Exception:  # noqa: BLE001 - the line below matters more
            pass
    if get_rank() != 0:
        return stop
    if trained:
        line = (f'stopped by {how} while testing; training had finished: test a checkpoint '
                f'with tools/test.py {getattr(cfg, "filename", "CONFIG")} CHECKPOINT')
    else:
        started = runner is not None and isinstance(getattr(runner, '_train_loop', None), BaseLoop)
        where = f' in epoch {runner.epoch + 1}, iteration {runner.iter}' if started else ''
        found = find_resume_checkpoint(cfg.work_dir)
        resume = (f'the same command with --resume auto continues from {found}'
                  + (f' (the start of epoch {runner.epoch + 1})'
                     if runner is not None and found.name == f'epoch_{runner.epoch}.pth' else '')
                  if found else
                  'no checkpoint was saved yet: --resume auto would start a new run')
        line = f'stopped by {how}{where}: {resume}'
    print_log(line, logger='current', level=logging.WARNING)
    return stop


@explain_unknown_types()  # an unknown config type names the close registered ones
@serving_memcached  # memcached=True: start / fill / stop the server around the run
def train(spec: RunSpec | Config, opts: RunOptions | None = None, test_last: bool = False,
          test_best: bool = False, threads: int | None = None) -> dict:
    """Train a resolved run (or a script's config with its options, resolved first);
    optionally test the last and the best checkpoint. Returns the test metrics.

    ``threads``: ``--threads N`` (None: :func:`~.threads.choose_threads`). The run ends with
    a summary (:mod:`.summary`); Ctrl-C and SIGTERM end it with one line saying how to
    resume, raising :class:`RunInterrupted`."""
    spec = as_spec(spec, opts, 'train')
    cfg = spec.cfg
    # this run owns its work dir until the process ends (a second run there is refused)
    hold_work_dir_all_ranks(spec.work_dir)
    choice, workers, workers_line = set_threads(spec, threads)
    runner: Runner | None = None
    trained = False
    snapshot = WorkDirSnapshot(spec.work_dir) if get_rank() == 0 else None
    first_iter = _FirstIterationHook()
    with _StopOnSignals() as guard:
        try:
            runner = build_runner(spec, workers=workers)
            runner.register_hook(_StopCheckHook(guard))
            runner.register_hook(first_iter)
            _publish_machine(runner, choice, workers_line)
            runner.train()
            trained = True
            results, report = _test_after_training(runner, spec, test_last, test_best)
        except KeyboardInterrupt as exc:
            raise _interrupted(runner, cfg, exc, trained) from None
        except Exception as exc:
            if guard.received:   # a signal to the process group: a DataLoader worker died first
                raise _interrupted(runner, cfg, RunInterrupted(guard.received),
                                   trained) from exc
            if snapshot is not None and not first_iter.done:   # a failed start: its log only
                _close_writers(runner)
                snapshot.restore(getattr(runner, 'log_dir', None), keep=(LOCK_NAME,))
            raise
    if get_rank() == 0:
        _log_summary(runner, cfg, results, report)
    return results


def _test_after_training(runner: Runner, spec: RunSpec, test_last: bool,
                         test_best: bool) -> tuple[dict, Path | None]:
    results: dict = {}
    work_dir = Path(runner.work_dir)
    if test_last:
        results['last'] = run_test(runner, str(work_dir / 'last_pred.pkl'))
    if test_best:
        best = runner.message_hub.get_info('best_ckpt')
        if best and Path(best).is_file():
            runner.load_checkpoint(best)
            results['best'] = run_test(runner, str(work_dir / 'best_pred.pkl'))
        elif get_rank() == 0:
            print_log('--test-best: no best checkpoint was kept (train with --validate); '
                      'skipping', logger='current', level=logging.WARNING)
    report = None
    if results and get_rank() == 0:
        report = write_report_safely(spec, work_dir, work_dir / ('best_pred.pkl' if 'best' in results
                                                                 else 'last_pred.pkl'))
    return results, report


def _log_summary(runner: Runner, cfg: Config, results: dict, report: Path | None) -> None:
    """The summary block (:func:`.summary.summary_lines`) in the log."""
    backends = getattr(runner.visualizer, '_vis_backends', {}) or {}
    lines = summary_lines(cfg, runner.work_dir, runner.max_epochs,
                          read_val_history(runner.work_dir), results,
                          best_ckpt=runner.message_hub.get_info('best_ckpt'), report=report,
                          tensorboard=any('Tensorboard' in type(b).__name__
                                          for b in backends.values()))
    runner.logger.info(format_block('run summary:', lines))


def report_settings(spec: RunSpec) -> dict:
    """What the report takes from the run: its class names and layout (when known)."""
    return dict(class_names=list(spec.class_names.names) if spec.class_names else None,
                layout=spec.layout)


def write_report_safely(spec: RunSpec, work_dir: Path, pred: Path) -> Path | None:
    """The evaluation report (``work_dir/report/index.html``) with the run's class names;
    a failure is logged as a warning and never ends the run."""
    try:
        index = write_report(work_dir, pred=pred, **report_settings(spec))
    except Exception as exc:  # noqa: BLE001 - the run's results are already saved
        print_log(f'could not write the evaluation report: {type(exc).__name__}: {exc}',
                  logger='current', level=logging.WARNING)
        return None
    print_log(f'evaluation report: {index}', logger='current')
    return index


@explain_unknown_types()  # an unknown config type names the close registered ones
@serving_memcached  # memcached=True: start / fill / stop the server around the run
def test(spec: RunSpec | Config, checkpoint: str, opts: RunOptions | None = None,
         out_file: str | None = None, threads: int | None = None) -> dict:
    """Evaluate ``checkpoint`` on the test split of a resolved run (or a script's config with
    its options, resolved first); ``threads``: as :func:`train`.

    The weights are loaded strictly (mmengine's ``load_from`` only warns about missing keys):
    a checkpoint that does not fit the config's model raises
    :class:`~.checkpoint.CheckpointMismatchError` listing the missing and unexpected keys."""
    spec = as_spec(spec, opts, 'test')
    out_file = out_file or spec.options.out_file
    ckpt = load_checkpoint_file(checkpoint)  # clear error for a missing / truncated / unsafe file
    check_checkpoint_config(ckpt, spec.cfg, checkpoint)  # another stream / dataset
    choice, workers, workers_line = set_threads(spec, threads)
    runner = build_runner(spec, workers=workers)
    _publish_machine(runner, choice, workers_line)
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    load_model_weights(model, ckpt, name=checkpoint)
    if get_rank() == 0:
        print_log(f'loaded checkpoint {checkpoint}', logger='current')
    fuse_for_inference(model)   # conv + BN folded once; this runner only tests
    return run_test(runner, out_file)
