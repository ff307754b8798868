"""The agent's only contact with mmengine: a hook that installs and checkpoints agent state.

In this release the state is static: descriptions and joint masks are built once before
training (from transcripts, or from the configured backend's initial dialogue) on rank 0,
broadcast so every rank holds the same state, and handed to the recognizer. Checkpoints carry
the state, so a resumed run continues with the text it had.
"""
from __future__ import annotations

from typing import Optional

from mmengine.dist import broadcast_object_list, get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from ..registry import HOOKS

STATE_KEY = 'agent_state'


def _unwrap(model):
    return model.module if is_model_wrapper(model) else model


@HOOKS.register_module()
class AgentHook(Hook):
    """Install the agent state into the recognizer and keep it in checkpoints.

    Args:
        interval: epochs between agent rounds (used by the live loop).
        layout: skeleton layout name (the head's ``joint_cfg``).
        modality: stream of the masks (``j``, ``b``, ``k`` or their motions).
        num_classes: number of classes.
        **agent_cfg: passed to :func:`skeletonagent.agent.build_initial_state`
            (``label_map``, ``transcripts``, ``masks``, ``llm``, ``prompts``).
    """

    priority = 'NORMAL'

    def __init__(self, interval: int = 5, layout: str = 'nturgb+d', modality: str = 'j',
                 num_classes: Optional[int] = None, **agent_cfg) -> None:
        self.interval = interval
        self.layout = layout
        self.modality = modality
        self.num_classes = num_classes
        self.agent_cfg = agent_cfg
        self.state = None

    def _install(self, runner) -> None:
        _unwrap(runner.model).set_agent_state(self.state.descriptions, self.state.masks)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        saved = checkpoint.get(STATE_KEY)
        if saved is None:
            return
        from .state import AgentState
        self.state = AgentState.from_state_dict(saved)
        self._install(runner)

    def before_train(self, runner) -> None:
        if self.state is None:
            from . import build_initial_state
            model = _unwrap(runner.model)
            num_classes = self.num_classes or model.cls_head.num_classes
            holder = [None]
            if get_rank() == 0:
                holder[0] = build_initial_state(self.agent_cfg, num_classes, self.layout,
                                                self.modality, runner.work_dir)
            broadcast_object_list(holder, src=0)
            self.state = holder[0]
            runner.logger.info(f'agent state v{self.state.version}: '
                               f'{len(self.state.descriptions)} class descriptions, '
                               f'masks {tuple(self.state.masks.shape)}')
        self._install(runner)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self.state is not None:
            checkpoint[STATE_KEY] = self.state.state_dict()
