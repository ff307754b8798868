"""Fine-tuning: start training from the weights of another checkpoint (``load_from``).

A PYSKL / mmcv config's ``load_from`` means: initialise the model from these weights, then
train from epoch 1 with a fresh optimizer and schedule (``resume_from`` / ``--resume`` is the
other thing: continue a run). The weights usually come from another dataset or class count
(NTU-120 → NTU-60, a classifier of another size), so the load is partial: every weight whose
name and shape fit is loaded, the rest stay as initialised, and the log says which.

The load goes through the engine's one weight-loading path
(:func:`~skeletonagent.engine.checkpoint.load_model_weights`, strict): the weights that fit
are merged into the model's own state and that whole state is loaded, so the model's
``load_state_dict`` hooks apply as for any other checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ..registry import HOOKS
from .checkpoint import checkpoint_state_dict, load_checkpoint_file, load_model_weights
from .config import ConfigError

#: How many names of each kind the summary lists (the counts are always given).
SHOWN = 3


@dataclass
class PretrainedLoad:
    """What a partial load did: ``loaded`` model weights, and the ones it could not take."""
    source: str
    loaded: list[str] = field(default_factory=list)
    # (key, shape in the file, shape in the model)
    shape_mismatch: list[tuple[str, tuple, tuple]] = field(default_factory=list)
    not_in_checkpoint: list[str] = field(default_factory=list)   # model keys left as initialised
    unused: list[str] = field(default_factory=list)              # checkpoint keys the model lacks

    @property
    def complete(self) -> bool:
        return not (self.shape_mismatch or self.not_in_checkpoint)

    def summary(self) -> str:
        """One line: counts, and the first few names of each kind."""
        total = len(self.loaded) + len(self.shape_mismatch) + len(self.not_in_checkpoint)
        parts = [f'fine-tuning from {self.source}: {len(self.loaded)} of {total} model '
                 'weights loaded']

        def some(names: list[str]) -> str:
            more = f', ... ({len(names) - SHOWN} more)' if len(names) > SHOWN else ''
            return ', '.join(names[:SHOWN]) + more
        if self.shape_mismatch:
            parts.append(f'{len(self.shape_mismatch)} left as initialised, of another shape in the '
                         'checkpoint (' + some([f'{k} {list(a)} vs {list(b)}' for k, a, b in
                                                self.shape_mismatch]) + ')')
        if self.not_in_checkpoint:
            parts.append(f'{len(self.not_in_checkpoint)} left as initialised, not in the '
                         f'checkpoint ({some(self.not_in_checkpoint)})')
        if self.unused:
            parts.append(f'{len(self.unused)} checkpoint weights not used ({some(self.unused)})')
        return '; '.join(parts)


def load_pretrained(model: torch.nn.Module, checkpoint: str | Path) -> PretrainedLoad:
    """Load every weight of ``checkpoint`` whose name and shape fit ``model``; the others stay
    as they are. Raises :class:`ConfigError` when nothing fits (not a checkpoint of this kind
    of model), and the checkpoint module's errors for a file that is not a checkpoint."""
    source = str(checkpoint)
    if not Path(checkpoint).is_file():
        raise ConfigError(f'load_from: checkpoint not found: {source}')
    state = checkpoint_state_dict(load_checkpoint_file(checkpoint))
    own = model.state_dict()
    result = PretrainedLoad(source)
    fits = {}
    for key, value in state.items():
        if key not in own:
            result.unused.append(key)
        elif not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(own[key].shape):
            result.shape_mismatch.append((key, tuple(getattr(value, 'shape', ())),
                                          tuple(own[key].shape)))
        else:
            fits[key] = value
    mismatched = {k for k, _, _ in result.shape_mismatch}
    result.not_in_checkpoint = [k for k in own if k not in fits and k not in mismatched]
    result.loaded = [k for k in own if k in fits]
    if not fits:
        raise ConfigError(f'load_from: none of the {len(state)} weights of {source} fits the '
                          f'model ({type(model).__name__} built from the config); is it a '
                          'checkpoint of this backbone?')
    merged = dict(own)
    merged.update(fits)
    load_model_weights(model, {'state_dict': merged}, name=source)
    return result


@HOOKS.register_module()
class LoadPretrainedHook(Hook):
    """Loads ``checkpoint`` with :func:`load_pretrained` when training starts.

    It runs first among the ``before_train`` hooks: after mmengine initialised the weights
    (``init_weights``, which would overwrite an earlier load) and before the agent's hook
    installs its masks and the run-info block is written (which shows the summary).
    Translation adds it for ``load_from`` unless the run resumes."""

    priority = 'VERY_HIGH'

    def __init__(self, checkpoint: str) -> None:
        self.checkpoint = str(checkpoint)
        self.result: PretrainedLoad | None = None

    def before_train(self, runner) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self.result = load_pretrained(model, self.checkpoint)
        line = self.result.summary()
        if self.result.complete and not self.result.unused:
            runner.logger.info(line)
        else:
            runner.logger.warning(line)
        runner.message_hub.update_info('run_info/weights', {'weights': line})
