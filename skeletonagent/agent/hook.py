"""The agent's only contact with mmengine: a hook that runs the agent loop during training.

Per training step the hook adds the step's clean (non-mixup) logits, which the recognizer
hands on with the step's outputs (``outputs.predictions``), to a confusion counter on the
device (no host sync). Every ``interval`` epochs it sums the counters of all ranks,
picks each class's most confused classes, and rank 0 starts a round in a background thread:
follow-up questions to the LLM, replies turned into descriptions (and, optionally, masks), a
report written. Training goes on meanwhile. At each later epoch boundary
rank 0 says whether the round is done; when it is, rank 0 encodes the new descriptions (a
frozen text encoder), writes the updated transcripts and broadcasts the new state, and every
rank installs the very same descriptions, masks and embeddings before the next epoch.
Checkpoints carry the state, so a resumed run continues with the text it had.

After every validation (rank 0) the hook measures what each installed round changed on the
validation confusions of the pairs it asked about, against every other pair
(:class:`~skeletonagent.agent.effect.EffectTracker`, with the figures of
:mod:`skeletonagent.evaluation.agent_effect`): scalars ``agent_effect/*`` per validation,
the figures under ``effect`` in the round's JSON, and one line per round in the log once the
next round is installed and validated (or the run ends).
"""
from __future__ import annotations

import io
import json
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.dist import broadcast_object_list, get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ..errors import SkeletonAgentError
from ..evaluation.val_confusion import confusion_of, read_val_confusions
from ..registry import HOOKS
from ..skeleton.masks import MaskFormat
from ..utils.fileio import atomic_write_bytes
from .effect import EffectTracker
from .initial import TRANSCRIPT_SUBDIR, build_initial_agent, max_words_of
from .llm import build_backend
from .questioner import ConfusionCounter
from .round import RoundQuestions, RoundReading, run_round, save_transcripts, write_round_report
from .schedule import OFFICIAL_ROUND_EPOCHS_BELOW, RoundSchedule, schedule_for
from .sources import AgentSources
from .state import AgentState

STATE_KEY = 'agent_state'
ROUNDS_KEY = 'agent_rounds'
#: Checkpoint key of the counts a run's last epoch would have asked a round with, had the run
#: been longer: ``dict(epoch=E, matrix=tensor)``. A run resumed with more epochs asks it.
HELD_COUNTS_KEY = 'agent_held_counts'
__all__ = ['AgentHook', 'STATE_KEY', 'ROUNDS_KEY', 'HELD_COUNTS_KEY', 'REPORT_SUBDIR',
           'OFFICIAL_ROUND_EPOCHS_BELOW']
#: Where, under the work dir, round reports go.
REPORT_SUBDIR = Path('agent') / 'rounds'

logger = logging.getLogger(__name__)


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


def _save_matrix(path: Path, matrix) -> None:
    """The confusion counts a round used (all ranks summed), next to its report."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(matrix))
    atomic_write_bytes(path, buffer.getvalue())


def _add_scalars(runner, scalars: dict, step: int) -> None:
    """Scalars to the runner's visualizer (TensorBoard, JSON scalars log). A visualizer
    failure is logged, never raised: training goes on."""
    visualizer = getattr(runner, 'visualizer', None)
    if visualizer is None:
        return
    try:
        visualizer.add_scalars(scalars, step=step)
    except Exception as exc:  # noqa: BLE001
        runner.logger.warning(f'agent: could not log to the visualizer: '
                              f'{type(exc).__name__}: {exc}')


def _add_round_scalars(runner, result, state) -> None:
    """The round's figures, at the current iteration."""
    if getattr(runner, 'visualizer', None) is None:
        return
    _add_scalars(runner, {'agent/requests': int(result.stats.requests),
                          'agent/failures': int(result.stats.num_failed),
                          'agent/seconds': float(result.seconds),
                          'agent/classes_updated': len(result.updated),
                          'agent/version': int(state.version)}, step=runner.iter)


class _Payload:
    """What rank 0 broadcasts at an epoch boundary: a new state, or an error at start."""

    def __init__(self, state=None, error: str | None = None, note: str = '') -> None:
        self.state, self.error, self.note = state, error, note



class AgentSetupError(SkeletonAgentError, RuntimeError):
    """Rank 0 could not set the agent up (its own error says why); the other ranks stop with
    this one line."""


@HOOKS.register_module()
class AgentHook(Hook):
    """Run the Questioner → LLM → Selector loop during training and install its state.

    Args:
        interval: epochs between rounds (official: 5; Kinetics 50). 0 keeps the initial
            state for the whole run (no rounds).
        layout: skeleton layout name, for a model that does not say it; the layout of the
            model's graph (``backbone.graph_cfg.layout``) is used where there is one.
        modality: stream of the masks (``j``, ``b``, ``k`` or their motions), for a model
            that does not say it; the backbone's ``llm_modality`` is used where there is one.
        num_classes: number of classes (default: the head's).
        top_k: confused classes named per class in a follow-up question.
        pad_to_k: name k classes even where fewer were confused (the official behaviour).
        update_masks: also rebuild a class's mask from the joints its follow-up reply names
            (the official code keeps the initial masks).
        background: run rounds in a background thread (default). False runs each round in
            the step loop and installs it at once (deterministic, for debugging).
        final_wait: seconds to wait at the end of training for a round still in flight
            (its report and transcripts are completed; the model is not changed any more).
        round_nice: the round threads' CPU priority below the training steps': a nice
            increment (default 10; 0 keeps the training's priority), or 'idle' (Linux
            ``SCHED_IDLE``: they run only on cores the steps leave idle; more training
            throughput during a round where the training leaves some core time free, e.g. one
            process on a GPU machine, but a round can starve, and the next one be skipped,
            where the training processes keep every core busy).
        official: reproduce the official agent loop (``agent.official=True``, the paper
            configs): counts restart every epoch (a round sees only the last epoch's
            confusions) and only rank 0's counts are used (the official head counts its own
            shard); the official selection (k classes always, the class itself included,
            listed by index); the round runs synchronously at the end of epoch ``e`` (where
            the official code runs it, in the validation that follows) and its texts are used
            from epoch ``e + 1``; no round after epoch 149 (:data:`OFFICIAL_ROUND_EPOCHS_BELOW`);
            descriptions are the replies as written (``max_words`` 0 unless set). By default:
            counts of every rank summed over every epoch since the previous round, only
            confused classes named, the round in a background thread while training goes on
            (its texts used from epoch ``e + 2``), rounds until the end. The two loops are
            :class:`~.schedule.OfficialSchedule` and :class:`~.schedule.BackgroundSchedule`.
        sources: what ``transcripts``, ``masks`` and ``prompts`` name, resolved once by the
            run's checks (:class:`~.plugin.AgentPlugin`); None resolves them at the start.
        **agent_cfg: ``label_map``, ``transcripts``, ``masks``, ``llm``, ``prompts``,
            ``max_words``, ``row_index`` (see :func:`skeletonagent.agent.build_initial_agent`).
    """

    priority = 'NORMAL'

    def __init__(self, interval: int = 5, layout: str = 'nturgb+d', modality: str = 'j',
                 num_classes: int | None = None, top_k: int = 10, pad_to_k: bool = False,
                 update_masks: bool = False, background: bool = True, final_wait: float = 600.0,
                 official: bool = False, round_nice: int | str = 10,
                 sources: AgentSources | None = None, **agent_cfg: Any) -> None:
        if interval < 0:
            raise ValueError(f'AgentHook: interval must be >= 0 epochs, got {interval}')
        if top_k < 1:
            raise ValueError(f'AgentHook: top_k must be >= 1, got {top_k}')
        self.interval = int(interval)
        self.layout = layout
        self.modality = modality
        self.num_classes = num_classes
        self.top_k = int(top_k)
        self.pad_to_k = bool(pad_to_k)
        self.update_masks = bool(update_masks)
        self.final_wait = float(final_wait)
        if round_nice != 'idle' and (isinstance(round_nice, bool) or not isinstance(round_nice, int)):
            raise ValueError(f"agent.round_nice must be 'idle' or a nice increment (int), got {round_nice!r}")
        self.round_nice = round_nice
        #: when rounds are asked, from which counts, and how they run (chosen once)
        self.schedule: RoundSchedule = schedule_for(
            bool(official), self.interval, self.top_k, pad_to_k=self.pad_to_k,
            background=bool(background), round_nice=round_nice)
        self.official = self.schedule.official
        self.background = not self.schedule.blocking
        #: the run's mask format: the layout and stream of the built model (before_train)
        self.mask_format: MaskFormat | None = None
        self.steps_during_round = 0
        self.agent_cfg = agent_cfg
        self.state = None
        self.rounds_done = 0
        # rank 0 only
        self._transcripts: list | None = None
        self._class_names: list[str] | None = None
        self._backend = None
        self._prompts = None
        self._sources = sources
        self._executor: ThreadPoolExecutor | None = None
        self._future: Future | None = None
        self._counter = None
        # (epoch, counts) of a last epoch that is a round epoch of any longer run
        self._held: tuple[int, Any] | None = None
        # the effect of the rounds on the validation confusions (rank 0, agent/effect.py)
        self._effects = None

    # -- set-up ---------------------------------------------------------------------------------
    @property
    def live(self) -> bool:
        return self.interval > 0

    def _install(self, runner) -> None:
        state = self.state
        _unwrap(runner.model).set_agent_state(state.descriptions, state.masks,
                                              embeddings=state.embeddings)
        self._write_rank_digest(runner)

    def _write_rank_digest(self, runner) -> None:
        """Append to ``agent/ranks/rank<R>.jsonl`` what this rank now holds (digests of the
        descriptions, masks and embeddings), so anyone can check that the ranks agree."""
        rank = get_rank()
        record = dict(rank=rank, epoch=runner.epoch, rounds=self.rounds_done,
                      **self.state.digests())
        path = Path(runner.work_dir) / 'agent' / 'ranks' / f'rank{rank}.jsonl'
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, 'a', encoding='utf-8') as f:
            f.write(json.dumps(record) + '\n')

    @property
    def _settings(self) -> dict:
        """The agent settings the pure functions read (``official`` included)."""
        return dict(self.agent_cfg, official=self.schedule.official)

    def _mask_format_of(self, model, runner) -> MaskFormat:
        """The layout and stream of the masks and prompts: those of the built model (its
        graph's layout, its backbone's ``llm_modality``), the hook's own ``layout`` and
        ``modality`` only for a model that has none. A disagreement is logged: the model's
        features decide which joints the mask rows are."""
        backbone = getattr(model, 'backbone', None)
        model_layout = getattr(getattr(backbone, 'graph', None), 'layout', None)
        model_stream = getattr(backbone, 'llm_modality', None)
        given = MaskFormat(self.layout, self.modality, self.agent_cfg.get('row_index', 'pair'))
        layout = model_layout if model_layout is not None else given.layout
        modality = model_stream if model_stream is not None else self.modality
        found = MaskFormat(layout, modality, given.row_index)
        given_name = getattr(given.layout, 'name', given.layout)
        found_name = getattr(found.layout, 'name', found.layout)
        if given_name != found_name or given.stream != found.stream:
            runner.logger.warning(
                f"agent: layout {given_name!r} / modality {self.modality!r} (the head's "
                f"joint_cfg, or agent.layout / agent.modality) differ from the model's "
                f"{found_name!r} / {found.stream!r} (backbone graph_cfg.layout, llm_modality): "
                f'the masks and prompts follow the model')
        return found

    def _prepare_rank0(self, runner, num_classes: int):
        """Initial dialogue/state, transcripts and the LLM backend (rank 0 only)."""
        masks = self.mask_format
        initial = build_initial_agent(self._settings, num_classes, masks.layout, masks.modality,
                                      runner.work_dir, sources=self._sources)
        self._transcripts = initial.transcripts
        self._class_names = initial.class_names
        sources = initial.sources
        if self.live:
            # built now so that a missing API key stops the run before the first step
            self._prompts = sources.prompts
            self._backend = build_backend(self.agent_cfg.get('llm'))
            self._backend.configure(layout=masks.layout, prompts=self._prompts)
        self._sources = sources
        return initial.state

    def _publish_run_info(self, runner, state, sources) -> None:
        """What the agent starts from, for the run's start block (``RunInfoHook``) and the
        report: text, masks (with digest, checked against the import's manifest), prompts,
        LLM and the rounds schedule."""
        digest = state.digests()['masks']
        restored = f' (state v{state.version} from the checkpoint)' if state.version else ''
        imported = (sources.manifest.get('masks') or {}).get(self.mask_format.stream)
        check = ''
        if sources.masks is not None and imported and (state.version == 0 or not self.update_masks):
            check = ' (= the import manifest)' if imported == digest else \
                f' (DIFFERS from the import manifest {imported[:12]})'
            if imported != digest:
                runner.logger.warning(f'agent: the masks in {sources.masks} do not match the '
                                      f'digest in their manifest: import them again')
        llm = self._backend.describe() if self._backend is not None else 'none (no rounds)'
        info = {
            'agent texts': sources.text_source + restored,
            'agent masks': f'{sources.masks_source}, sha256 {digest[:12]}{check}',
            'agent prompts': sources.prompts_source,
            'agent LLM': llm,
            'agent rounds': self.schedule_text(runner.max_epochs)
            + (f', top {self.top_k} confused classes' if self.round_epochs(runner.max_epochs) else ''),
        }
        hub = getattr(runner, 'message_hub', None)
        if hub is not None:
            hub.update_info('run_info/agent', info)
        else:
            for key, value in info.items():
                runner.logger.info(f'{key}: {value}')

    # -- schedule -------------------------------------------------------------------------------
    def round_epochs(self, max_epochs: int) -> list[int]:
        """The epochs after which a round is asked (1-based), for a run of ``max_epochs``.

        None after the last epoch (its texts could not be used); with ``official=True`` none
        after epoch 149, as the official head."""
        return self.schedule.round_epochs(max_epochs)

    def schedule_text(self, max_epochs: int) -> str:
        """The rounds schedule in words, for the log and the report."""
        epochs = self.round_epochs(max_epochs)
        if not epochs:
            return 'no rounds (fixed texts and masks)'
        shown = ', '.join(map(str, epochs[:3])) + (f', ..., {epochs[-1]}' if len(epochs) > 3 else '')
        mode = self.schedule.mode
        count = f'{len(epochs)} round{"s" if len(epochs) > 1 else ""} after epoch{"s" if len(epochs) > 1 else ""}'
        return f'{count} {shown} ({mode})'

    def before_train(self, runner) -> None:
        model = _unwrap(runner.model)
        num_classes = self.num_classes or model.cls_head.num_classes
        self.mask_format = self._mask_format_of(model, runner)
        holder: list[Any] = [None]
        if get_rank() == 0:
            try:
                state = self._prepare_rank0(runner, num_classes)
                holder[0] = _Payload(state=None if self.state is not None else state)
            except Exception as exc:  # every rank must stop, not only rank 0
                holder[0] = _Payload(error=f'{type(exc).__name__}: {exc}')
                broadcast_object_list(holder, src=0)
                raise
        broadcast_object_list(holder, src=0)
        if holder[0].error is not None:
            raise AgentSetupError(f'agent set-up failed on rank 0: {holder[0].error}')
        if self.state is None:      # not restored from a checkpoint
            self.state = holder[0].state
        runner.logger.info(f'agent state v{self.state.version}: {len(self.state.descriptions)} '
                           f'class descriptions, masks {tuple(self.state.masks.shape)}')
        if get_rank() == 0:
            self._publish_run_info(runner, self.state, self._sources)
            self._start_effects(runner)
        self._install(runner)
        if self.live:
            self._counter = ConfusionCounter(num_classes)
            if get_rank() == 0:
                self._executor = self.schedule.executor()
        self._ask_held_round(runner)

    def _ask_held_round(self, runner) -> None:
        """A run resumed with more epochs than the one it continues: the epoch the shorter run
        ended with may now be a round epoch. Its counts were kept in the checkpoint
        (``HELD_COUNTS_KEY``); the round is asked now, as it would have been at that epoch's
        end (installed at the next epoch boundary, or at once with ``official=True``)."""
        held, self._held = self._held, None
        if held is None or not self.live:
            return
        epoch, matrix = held
        if epoch != runner.epoch or epoch not in self.round_epochs(runner.max_epochs):
            return
        if get_rank() == 0:
            runner.logger.info(f'agent: the run now has {runner.max_epochs} epochs: asking the '
                               f'round after epoch {epoch} that the shorter run did not ask '
                               f'(its counts were kept in the checkpoint)')
            self._start_round(runner, matrix, epoch)
        if self.schedule.blocking:
            self._swap_if_ready(runner, finished=runner.epoch)

    # -- per step -------------------------------------------------------------------------------
    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        """Count the step's confusions from ``outputs.predictions`` (the recognizer's
        :class:`~skeletonagent.models.recognizers.recognizer_gcn.TrainPredictions`, handed on
        by its ``parse_losses``)."""
        if self._counter is None:
            return
        predictions = getattr(outputs, 'predictions', None)
        if predictions is not None:
            self._counter.update(predictions.logits, predictions.labels)
        if self._future is not None and not self._future.done():
            self.steps_during_round += 1

    # -- epoch boundaries -----------------------------------------------------------------------
    def after_train_epoch(self, runner) -> None:
        if not self.live:
            return
        finished = runner.epoch + 1
        self._swap_if_ready(runner, finished=finished)
        if finished not in self.round_epochs(runner.max_epochs):
            if finished == runner.max_epochs and finished in self.round_epochs(finished + 1):
                # the last epoch: no round (its texts could not be used), but a run resumed
                # with more epochs asks it; its counts go into the checkpoint
                self._held = (finished, self.schedule.counts(self._counter))
            self.schedule.epoch_without_round(self._counter)
            return
        matrix = self.schedule.counts(self._counter)
        self._counter.reset()
        if get_rank() == 0:
            self._start_round(runner, matrix, finished)
        if self.schedule.blocking:                   # install at once, on every rank
            self._swap_if_ready(runner, finished=finished)

    def _start_round(self, runner, matrix, finished: int) -> None:
        if self._future is not None and not self._future.done():
            runner.logger.warning(f'agent: the previous round is still running at epoch '
                                  f'{finished}; skipping this round')
            return
        job = (self.state, list(self._transcripts), matrix, finished, Path(runner.work_dir))
        if self._executor is None:                   # background=False
            self._future = Future()
            try:
                self._future.set_result(self._run_round(*job))
            except Exception as exc:  # noqa: BLE001 - reported by _swap_if_ready
                self._future.set_exception(exc)
        else:
            self._future = self._executor.submit(self._run_round, *job)

    def _run_round(self, state, transcripts, matrix, epoch: int, work_dir: Path):
        """One round (rank 0, background thread): returns (RoundResult, new AgentState, epoch)."""
        start = time.perf_counter()
        asked = RoundQuestions(state, transcripts, self._class_names,
                               self.schedule.select(matrix), matrix=matrix,
                               prompts=self._prompts,
                               official_history=self.schedule.official_history)
        reading = RoundReading(update_masks=self.update_masks,
                               max_words=max_words_of(self._settings))
        result = run_round(self._backend, asked, self.mask_format, reading)
        new_state = result.state
        report = write_round_report(result, work_dir / REPORT_SUBDIR, self.rounds_done + 1,
                                    layout=self.mask_format.layout)
        _save_matrix(report.with_name(report.stem + '_confusion.npy'), matrix)
        logger.info('agent: round after epoch %d finished in %.1f s (%s); report %s',
                    epoch, time.perf_counter() - start, result.stats.summary(), report)
        return result, new_state, epoch, report.with_suffix('.json')

    def _swap_if_ready(self, runner, finished: int, broadcast: bool = True) -> None:
        """Install a finished round's state on every rank (a collective when ``broadcast``),
        at the end of epoch ``finished`` (1-based): the next epoch trains with it."""
        holder: list[Any] = [None]
        if get_rank() == 0 and self._future is not None and self._future.done():
            future, self._future = self._future, None
            try:
                result, new_state, epoch, report = future.result()
            except Exception as exc:  # noqa: BLE001 - a failed round keeps the old state
                runner.logger.error(f'agent: round failed ({type(exc).__name__}: {exc}); '
                                    f'keeping state v{self.state.version}')
            else:
                self._transcripts = result.transcripts
                # written when installed, not when the round ends: after a kill the transcript
                # folder never runs ahead of the state the checkpoints hold
                save_transcripts(result.transcripts, self._class_names,
                                 Path(runner.work_dir) / TRANSCRIPT_SUBDIR, classes=result.updated)
                if new_state is not self.state:
                    # encoded here, not in the round's thread: on a CPU the encoder's forward
                    # pass would take the cores from the training steps for the whole round
                    new_state = new_state.with_embeddings(
                        _unwrap(runner.model).encode_descriptions(new_state.descriptions))
                note = (f'agent: round {self.rounds_done + 1} (confusions up to epoch {epoch}) '
                        f'installed after epoch {finished}: state v{new_state.version}, '
                        f'{len(result.updated)} classes updated, {result.stats.summary()}; '
                        f'{self.steps_during_round} training steps ran during the round')
                self.steps_during_round = 0
                holder[0] = _Payload(state=new_state, note=note)
                _add_round_scalars(runner, result, new_state)
                warning = self._effects.installed(self.rounds_done + 1, result,
                                                  asked_after=epoch, installed_after=finished)
                if warning:
                    runner.logger.warning(f'agent: {warning}')
        if broadcast:
            broadcast_object_list(holder, src=0)
        payload = holder[0]
        if payload is None:
            return
        self.rounds_done += 1
        if payload.state is not self.state:
            self.state = payload.state
            self._install(runner)
        runner.logger.info(payload.note)

    # -- end and checkpoints ----------------------------------------------------------------------
    # -- the effect of the rounds on the validation confusions (rank 0) ------------------------
    def _start_effects(self, runner) -> None:
        """The record of the rounds' effect; a resumed run reads back the rounds installed
        before and the validation matrices kept up to the checkpoint's epoch."""
        self._effects = EffectTracker(Path(runner.work_dir) / REPORT_SUBDIR)
        if self.rounds_done:
            try:
                confusions = read_val_confusions(runner.work_dir, up_to=runner.epoch)
            except ValueError as exc:
                runner.logger.warning(f'agent: the effect of the earlier rounds is not '
                                      f'measured: {exc}')
                return
            warning = self._effects.resume(self.rounds_done, confusions)
            if warning:
                runner.logger.warning(f'agent: {warning}')

    def after_val_epoch(self, runner, metrics: dict | None = None) -> None:
        """Measure the installed rounds on the validation's confusion matrix (rank 0)."""
        if self._effects is None or getattr(runner, 'train_loop', True) is None:
            return
        matrix = confusion_of(metrics)
        if matrix is not None:
            self._log_effects(runner, self._effects.validated(int(runner.epoch), matrix))

    def _log_effects(self, runner, news) -> None:
        for warning in news.warnings:
            runner.logger.warning(f'agent: {warning}')
        for scalars, step in news.scalars:
            _add_scalars(runner, scalars, step=step)
        for line in news.lines:
            runner.logger.info(f'agent: {line}')

    def after_train(self, runner) -> None:
        if self._effects is not None and self._effects.has_rounds:
            if self._effects.has_validations:
                self._log_effects(runner, self._effects.finish())
            else:
                runner.logger.info('agent: the effect of the rounds on the validation '
                                   'confusions is not measured: no validation ran (train '
                                   'with --validate)')
        future, executor = self._future, self._executor
        self._future = self._executor = None
        if future is not None and not future.done():
            runner.logger.info(f'agent: waiting up to {self.final_wait:.0f} s for the last round')
            try:
                future.result(timeout=self.final_wait)
            except Exception as exc:  # noqa: BLE001
                runner.logger.warning(f'agent: last round not completed: {type(exc).__name__}: {exc}')
        if executor is not None:
            executor.shutdown(wait=False)
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        saved = checkpoint.get(STATE_KEY)
        if saved is None:
            return
        self.state = AgentState.from_state_dict(saved)
        self.rounds_done = int(checkpoint.get(ROUNDS_KEY, 0))
        held = checkpoint.get(HELD_COUNTS_KEY)
        if held is not None:
            self._held = (int(held['epoch']), np.asarray(held['matrix']))
        self._install(runner)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.state is not None:
            checkpoint[STATE_KEY] = self.state.state_dict()
            checkpoint[ROUNDS_KEY] = int(self.rounds_done)
        if self._held is not None:
            checkpoint[HELD_COUNTS_KEY] = dict(epoch=self._held[0],
                                               matrix=torch.as_tensor(self._held[1]))
