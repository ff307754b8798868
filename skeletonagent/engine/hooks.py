"""Engine hooks that are about files and runs, not about models or agents."""
from __future__ import annotations

import copy
import json
import os
import random
import sys
import warnings
from typing import Any

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import Hook
from tqdm import tqdm

from ..evaluation.val_confusion import CONFUSION_METRIC, confusion_of, drop_val_confusions, save_val_confusion
from ..registry import HOOKS
from ..utils.fileio import atomic_write_text
from .checkpoint import find_resume_checkpoint, state_digest, update_latest_link

#: Checkpoint key of the random state of every rank (a list indexed by rank).
RANDOM_STATE_KEY = 'random_state'


def get_random_state() -> dict:
    """This process's torch / numpy / python random state, as data ``weights_only`` loads."""
    keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)[1:]
    version, internal, gauss_next = random.getstate()
    state = dict(torch=torch.get_rng_state(),
                 numpy=dict(keys=torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                            pos=int(pos), has_gauss=int(has_gauss), gauss=float(gauss)),
                 python=dict(version=int(version), internal=[int(v) for v in internal],
                             gauss_next=gauss_next))
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state()
    return state


def set_random_state(state: dict) -> None:
    """Inverse of :func:`get_random_state`."""
    torch.set_rng_state(state['torch'])
    npy = state['numpy']
    np.random.set_state(('MT19937', np.asarray(npy['keys'], dtype=np.uint32), int(npy['pos']),
                         int(npy['has_gauss']), float(npy['gauss'])))
    py = state['python']
    random.setstate((int(py['version']), tuple(int(v) for v in py['internal']), py['gauss_next']))
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state['cuda'])


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Checkpoints carry the random state of every rank; a resumed run continues with it.

    mmengine only reseeds a resumed run with the run's seed, so it would replay the random
    numbers of the first epochs (augmentation, mixup, dropout). Here every checkpoint holds
    each rank's torch / numpy / python state as it was when the checkpoint was saved, and a
    run resumed from it restores them just before its first step (a run started with another
    number of processes keeps its seeding for the ranks the checkpoint lacks). The resumed
    run logs digests of what it holds (random state, optimizer, LR schedulers), to compare
    with the checkpoint's (:func:`resume_digests`).
    """

    # after the agent hook's epoch-end swap (NORMAL), before CheckpointHook (VERY_LOW)
    priority = 'LOW'

    def __init__(self) -> None:
        self._pending: list | None = None
        self._gathered: tuple[int, list] | None = None

    def after_train_epoch(self, runner) -> None:
        # Only rank 0 saves (``Runner.save_checkpoint`` is master-only), so the states of all
        # ranks are gathered here, where every rank passes, just before CheckpointHook saves.
        mine = get_random_state()
        states = all_gather_object(mine) if get_world_size() > 1 else [mine]
        self._gathered = (runner.iter, states)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._gathered is not None and self._gathered[0] == runner.iter:
            states = self._gathered[1]
        else:   # a checkpoint saved within an epoch (iteration-based): rank 0's state only
            states = [get_random_state()]
        checkpoint[RANDOM_STATE_KEY] = states

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if getattr(runner, '_resume', False) and RANDOM_STATE_KEY in checkpoint:
            self._pending = list(checkpoint[RANDOM_STATE_KEY])

    def before_train(self, runner) -> None:
        states, self._pending = self._pending, None
        if states is None:
            return
        rank = get_rank()
        if rank < len(states):
            set_random_state(states[rank])
            note = f'random state of rank {rank} restored'
        else:
            note = (f'the checkpoint holds the random state of {len(states)} ranks; rank {rank} '
                    'keeps its seeding')
        schedulers: Any = runner.param_schedulers or []
        if isinstance(schedulers, dict):
            schedulers = {k: [s.state_dict() for s in v] for k, v in schedulers.items()}
        else:
            schedulers = [s.state_dict() for s in schedulers]
        digests = resume_digests(dict(random_state=states,
                                      optimizer=runner.optim_wrapper.state_dict(),
                                      param_schedulers=schedulers), rank=rank)
        runner.logger.info(f'resumed at epoch {runner.epoch}, iter {runner.iter}: {note}; '
                           + ', '.join(f'{k} {v}' for k, v in digests.items()))


def resume_digests(checkpoint: dict, rank: int = 0) -> dict[str, Any]:
    """Digests a resumed run logs (see :class:`RandomStateHook`), computed from a checkpoint."""
    states = checkpoint.get(RANDOM_STATE_KEY) or []
    out: dict[str, Any] = {}
    if rank < len(states):
        out['random_state'] = state_digest(states[rank])
    out['optimizer'] = state_digest(checkpoint.get('optimizer'))
    out['param_schedulers'] = state_digest(checkpoint.get('param_schedulers'))
    return out


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
        # the newest complete checkpoint, not only mmengine's record: a run killed after
        # saving but before the record and the link moved, then resumed at its last epoch,
        # trains no more epochs and writes no record
        target = find_resume_checkpoint(runner.work_dir)
        if target is not None and target.is_file():
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


#: Where a run writes what it used (the start block), for the report.
RUN_INFO_FILE = 'run_info.json'


def _lr_line(runner) -> tuple[str, dict]:
    """Effective batch and learning rate, with how the lr was scaled from the config."""
    loader = runner.train_dataloader
    per_process = int(getattr(loader, 'batch_size', 0) or 0)
    world = int(getattr(runner, 'world_size', 1) or 1)
    total = per_process * world
    groups = runner.optim_wrapper.optimizer.param_groups
    lr = float(groups[0].get('initial_lr', groups[0]['lr']))
    cfg = getattr(runner, 'cfg', None)
    written = None
    if cfg is not None:
        written = (cfg.get('optimizer') or cfg.get('optim_wrapper', {}).get('optimizer') or {}).get('lr')
    scale = dict(getattr(runner, 'auto_scale_lr', None) or {})
    text = f'{per_process} per process x {world} process{"es" if world > 1 else ""} = {total}; lr {lr:g}'
    if written is not None:
        if scale.get('enable') and scale.get('base_batch_size'):
            text += (f' (config lr {written:g} for a batch of {scale["base_batch_size"]}, '
                     f'scaled by {total / scale["base_batch_size"]:g})')
        elif abs(lr - float(written)) > 1e-12:
            text += f' (config lr {written:g})'
        else:
            text += ' (as the config writes it; auto_scale_lr off)'
    return text, dict(batch_per_process=per_process, processes=world, total_batch=total, lr=lr)


@HOOKS.register_module()
class RunInfoHook(Hook):
    """At the start of training, one block in the log saying what this run uses: data, the
    effective batch and learning rate, the schedule, the model's text encoder, and what other
    hooks publish under the message hub's ``run_info/*`` keys (the agent: its texts, masks and
    their digest, prompts, LLM and rounds). The block also goes to ``work_dir/run_info.json``,
    which the evaluation report shows."""

    priority = 'LOW'   # after the agent hook (NORMAL) has published its part

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        # what the run that saved the checkpoint used is not what this run uses: drop its
        # run_info/* keys before mmengine restores the message hub from the checkpoint (from
        # its resumed keys too: a key listed there without a value makes mmengine warn
        # "resumed key ... is not defined in message_hub" on every resume)
        hub_state = checkpoint.get('message_hub') or {}
        for part in ('runtime_info', 'resumed_keys'):
            table = hub_state.get(part) if isinstance(hub_state, dict) else None
            if isinstance(table, dict):
                for key in [k for k in table if str(k).startswith('run_info/')]:
                    table.pop(key)

    def before_train(self, runner) -> None:
        batch_text, numbers = _lr_line(runner)
        model = runner.model.module if hasattr(runner.model, 'module') else runner.model
        lines: dict[str, str] = {'config': str(getattr(runner.cfg, 'filename', None) or '-'),
                                 'work_dir': str(runner.work_dir)}
        dataset = getattr(runner.train_dataloader, 'dataset', None)
        if dataset is not None:
            lines['train data'] = (f'{len(dataset)} samples from '
                                   f'{getattr(dataset, "ann_file", "?")}'
                                   + (f" (split {dataset.split})" if getattr(dataset, 'split', None) else ''))
        lines['batch and lr'] = batch_text
        lines['schedule'] = f'{runner.max_epochs} epochs, {len(runner.train_dataloader)} iterations each'
        lines['seed'] = str(getattr(runner, 'seed', None))
        ablation = getattr(runner, 'cfg', None) and runner.cfg.get('ablation')
        if ablation:
            lines['ablation'] = str(ablation)
        if hasattr(model, 'loss_terms'):
            lines['losses'] = model.loss_terms()
        encoder = getattr(model, 'text_encoder_cfg', None)
        if encoder and getattr(model, 'uses_texts', False):
            lines['text encoder'] = (f"{encoder.get('type')}"
                                     + (f" ({encoder['pretrained']})" if encoder.get('pretrained') else '')
                                     + (', trained with the model' if encoder.get('trainable')
                                        else ', frozen'))
        hub = runner.message_hub
        for key, value in sorted(hub.runtime_info.items()):
            if key.startswith('run_info/') and isinstance(value, dict):
                lines.update({str(k): str(v) for k, v in value.items()})
        if getattr(model, 'with_agent', False) and 'agent texts' not in lines:
            lines['agent'] = 'OFF: no texts, masks or LLM rounds (agent=None)'
        if runner.rank != 0:
            return
        width = max(len(k) for k in lines)
        runner.logger.info('this run uses:\n' + '\n'.join(f'  {k:<{width}}  {v}'
                                                          for k, v in lines.items()))
        atomic_write_text(os.path.join(runner.work_dir, RUN_INFO_FILE),
                          json.dumps(dict(lines=lines, **numbers), indent=1) + '\n')


# -- a resumed run of another length ------------------------------------------------------------
#: Scheduler state entries that say where a schedule stands, not what it is.
_SCHEDULER_POSITION = ('last_step', '_global_step', '_last_value', 'base_values', 'verbose')


def _scheduler_list(schedulers: Any) -> list:
    if schedulers is None:
        return []
    if isinstance(schedulers, dict):
        return [s for group in schedulers.values() for s in group]
    return list(schedulers)


def _schedule_shape(state: dict) -> dict:
    """What a scheduler state dict says about the schedule itself (its length, T_max,
    milestones...), without its position."""
    return {k: v for k, v in state.items() if k not in _SCHEDULER_POSITION}


class _ScratchOptimizer:
    """Stands in for an optimizer while schedulers are replayed: only ``param_groups``."""

    def __init__(self, param_groups: list) -> None:
        self.param_groups = [{k: v for k, v in g.items() if k != 'params'} for g in param_groups]
        self._global_step = 0
        self.step = lambda: None
        self.step._with_counter = True  # what mmengine's schedulers check before stepping


def replay_schedulers(schedulers: list, iters: int, epochs: int) -> None:
    """Move freshly built mmengine schedulers (and their optimizers' values) to where they
    stand after ``iters`` iterations and ``epochs`` epochs of a run, by stepping copies of them
    as mmengine's ``ParamSchedulerHook`` steps them (iteration-based ones after every
    iteration, epoch-based ones after every epoch), on scratch copies of the optimizers'
    parameter groups starting from their initial values. Works for every scheduler type,
    chained ones (warm-up then cosine) included."""
    scratch: dict[int, _ScratchOptimizer] = {}
    copies = []
    for scheduler in schedulers:
        real = scheduler.optimizer
        if id(real) not in scratch:
            scratch[id(real)] = _ScratchOptimizer(real.param_groups)
        fake = scratch[id(real)]
        name = scheduler.param_name
        for group in fake.param_groups:      # a fresh run starts from the initial values
            group[name] = group.get(f'initial_{name}', group[name])
        twin = copy.copy(scheduler)
        twin.optimizer = fake
        twin.last_step = twin._global_step = -1   # as before its constructor's first step
        copies.append(twin)
    per_epoch = iters // epochs if epochs else iters
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        for twin in copies:                      # the first step each constructor takes
            twin.step()
        for i in range(iters):
            for twin in copies:
                if not twin.by_epoch:
                    twin.step()
            if per_epoch and (i + 1) % per_epoch == 0 and (i + 1) // per_epoch <= epochs:
                for twin in copies:
                    if twin.by_epoch:
                        twin.step()
    for scheduler, twin in zip(schedulers, copies):
        scheduler.load_state_dict(twin.state_dict())
        name = scheduler.param_name
        for group, fake_group in zip(scheduler.optimizer.param_groups,
                                     scratch[id(scheduler.optimizer)].param_groups):
            group[name] = fake_group[name]


def describe_schedule(schedulers: list, epoch_length: int) -> str:
    """The learning-rate schedule in words, e.g. 'anneals to 0 at epoch 6'."""
    parts = []
    for s in schedulers:
        if getattr(s, 'param_name', 'lr') != 'lr':
            continue
        end = s.end if s.by_epoch else s.end / max(epoch_length, 1)
        end_text = f'{end:g}' if end < 1e8 else 'the end'
        kind = type(s).__name__
        if kind.startswith('Cosine'):
            floor = (f'{s.eta_min:g}' if s.eta_min is not None
                     else f'{s.eta_min_ratio:g} x the initial lr')
            parts.append(f'anneals to {floor} at epoch {end_text}')
        elif kind.startswith('MultiStep'):
            steps = [m if s.by_epoch else m / max(epoch_length, 1) for m in sorted(s.milestones)]
            parts.append(f'is multiplied by {s.gamma:g} at epoch'
                         f'{"s" if len(steps) > 1 else ""} ' + ', '.join(f'{m:g}' for m in steps))
        elif kind.startswith('Linear') and not s.by_epoch:
            parts.append(f'warms up linearly over iterations {s.begin}-{s.end}')
        else:
            parts.append(f'{kind} until epoch {end_text}')
    return ', then '.join(parts) if parts else 'constant'


@HOOKS.register_module()
class ScheduleLengthHook(Hook):
    """A resumed run follows the schedule of its own config, not the checkpoint's.

    mmengine restores the parameter schedulers' state on resume, and that state holds the
    schedule's length (``T_max``, ``end``): ``--resume auto --cfg-options total_epochs=6``
    after a 4-epoch run kept annealing over 4 epochs and then held the last lr. Here, when the
    checkpoint's schedule differs from the one the config builds (another ``total_epochs``,
    or another ``lr_config``), the checkpoint's scheduler state is set aside and the fresh
    schedulers are moved to the resumed iteration (:func:`replay_schedulers`): the lr is the
    one a run of the new length has at that iteration (PYSKL computes its lr from
    ``iter / max_iters`` the same way), and the log says so. A resume with the same schedule
    is mmengine's.
    """

    priority = 'ABOVE_NORMAL'   # before RandomStateHook's digests and the start block (LOW)

    def __init__(self) -> None:
        self._changed: dict | None = None
        self.note: str | None = None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not getattr(runner, '_resume', False):
            return
        fresh = _scheduler_list(runner.param_schedulers)
        saved = checkpoint.get('param_schedulers')
        saved_list = (_scheduler_list(saved) if saved is not None else [])
        info = (checkpoint.get('message_hub') or {}).get('runtime_info') or {}
        old_epochs = info.get('max_epochs')
        same = (len(saved_list) == len(fresh)
                and all(_schedule_shape(s) == _schedule_shape(f.state_dict())
                        for s, f in zip(saved_list, fresh)))
        if same or not fresh or saved is None:
            return
        checkpoint.pop('param_schedulers')          # mmengine then keeps the fresh ones
        old_lr = None
        try:
            old_lr = float(checkpoint['optimizer']['param_groups'][0]['lr'])
        except (KeyError, IndexError, TypeError, ValueError):
            pass
        self._changed = dict(old_epochs=old_epochs, old_lr=old_lr)

    def before_train(self, runner) -> None:
        if getattr(runner, '_resume', False) and runner.epoch >= runner.max_epochs \
                and runner.rank == 0:
            runner.logger.warning(f'the checkpoint is at epoch {runner.epoch} and the run has '
                                  f'{runner.max_epochs} epochs: nothing is left to train')
        changed, self._changed = self._changed, None
        if changed is None:
            return
        schedulers = _scheduler_list(runner.param_schedulers)
        replay_schedulers(schedulers, runner.iter, runner.epoch)
        epoch_length = len(runner.train_dataloader)
        old, new = changed['old_epochs'], runner.max_epochs
        if old is not None and int(old) != new:
            head = f'{"extended" if new > int(old) else "shortened"} from {old} to {new} epochs'
        else:
            head = 'the config\'s lr schedule differs from the checkpoint\'s'
        lr = float(runner.optim_wrapper.param_groups[0]['lr'])
        self.note = (f'{head}: the lr schedule now {describe_schedule(schedulers, epoch_length)}'
                     f'; lr {lr:.4g} at iteration {runner.iter}, as a {new}-epoch run has it'
                     + (f' (the checkpoint\'s schedule: {changed["old_lr"]:.4g})'
                        if changed['old_lr'] is not None else ''))
        if runner.rank == 0:
            runner.logger.info(self.note)
            runner.message_hub.update_info('run_info/schedule', {'schedule change': self.note})


# -- validation history, for the summary a run ends with ----------------------------------------
#: Where a training run keeps its validation figures, one record per validation.
VAL_HISTORY_FILE = 'val_history.json'


def read_val_history(work_dir: str | os.PathLike) -> list[dict]:
    """The records of ``work_dir/val_history.json`` (``[{'epoch': 1, 'acc/top1': ...}]``),
    or ``[]``."""
    path = os.path.join(work_dir, VAL_HISTORY_FILE)
    try:
        with open(path, encoding='utf-8') as f:
            records = json.load(f)
    except (OSError, ValueError):
        return []
    return [r for r in records if isinstance(r, dict) and 'epoch' in r] \
        if isinstance(records, list) else []


@HOOKS.register_module()
class ValHistoryHook(Hook):
    """Keeps every validation's figures of a training run in ``work_dir/val_history.json``
    and its confusion matrix in ``work_dir/val_confusion/epoch_NNN.npy`` (rank 0), across
    resumes: a resumed run keeps the records up to the epoch it resumes from, a new run
    starts empty. The summary a run ends with reads the best epoch's top-1, top-5 and mean
    class accuracy from the history; the agent measures the effect of its rounds on the
    matrices (:mod:`skeletonagent.evaluation.agent_effect`)."""

    priority = 'LOW'

    def __init__(self) -> None:
        self.records: list[dict] = []

    def before_train(self, runner) -> None:
        resumed = getattr(runner, '_resume', False)
        if resumed:
            self.records = [r for r in read_val_history(runner.work_dir)
                            if int(r['epoch']) <= runner.epoch]
        else:
            self.records = []
        if runner.rank == 0:
            drop_val_confusions(runner.work_dir, after=runner.epoch if resumed else None)
        self._write(runner)

    def after_val_epoch(self, runner, metrics: dict | None = None) -> None:
        if runner.train_loop is None or not metrics or runner.rank != 0:
            return
        epoch = int(runner.epoch)
        record = {'epoch': epoch}
        for key, value in metrics.items():
            if key == CONFUSION_METRIC:
                continue
            try:
                record[str(key)] = float(value)
            except (TypeError, ValueError):
                continue
        self.records = [r for r in self.records if int(r['epoch']) != epoch] + [record]
        self._write(runner)
        matrix = confusion_of(metrics)
        if matrix is not None:
            save_val_confusion(runner.work_dir, epoch, matrix)

    def _write(self, runner) -> None:
        if runner.rank != 0:
            return
        rows = ',\n '.join(json.dumps(r) for r in self.records)
        atomic_write_text(os.path.join(runner.work_dir, VAL_HISTORY_FILE), f'[{rows}]\n')
