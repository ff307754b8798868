"""The agent's state: what the recognizer receives from the agent (and checkpoints keep)."""
from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from dataclasses import replace as _dc_replace
from typing import Any

import numpy as np
import torch

__all__ = ['AgentState', 'masks_digest']


def masks_digest(masks: Any) -> str:
    """SHA-256 of a Class x V x V mask array as float32 bytes: the digest the agent logs,
    the importer records and the checks compare (equal digests, equal masks)."""
    array = np.ascontiguousarray(np.asarray(masks, dtype=np.float32))
    return hashlib.sha256(array.tobytes()).hexdigest()


@dataclass
class AgentState:
    """Class descriptions and critical-joint masks, with a version bumped on every update.

    Attributes:
        descriptions: one text per class (for text alignment).
        masks: Class x V x V float32 masks (the backbone's local branch).
        version: 0 for the initial state, +1 per accepted agent round.
        critical_joints: 0-based critical joints per class as the dialogues name them (the
            masks are built from them unless a masks file overrides them); may be empty.
        embeddings: the descriptions' text embeddings (Class x dim, CPU float32) when the
            text encoder is frozen, computed once by rank 0 and broadcast with the state;
            None otherwise. Not kept in checkpoints (recomputed from the descriptions).
    """

    descriptions: list[str]
    masks: np.ndarray
    version: int = 0
    critical_joints: list[list[int]] = field(default_factory=list)
    embeddings: torch.Tensor | None = None

    def __post_init__(self) -> None:
        self.descriptions = [str(d) for d in self.descriptions]
        masks = self.masks
        if isinstance(masks, torch.Tensor):
            masks = masks.detach().cpu().numpy()
        self.masks = np.ascontiguousarray(np.asarray(masks, dtype=np.float32))
        self.version = int(self.version)
        self.critical_joints = [[int(j) for j in joints] for joints in self.critical_joints]
        if self.masks.ndim != 3 or self.masks.shape[1] != self.masks.shape[2]:
            raise ValueError(f'agent state masks must be (C, V, V), got {self.masks.shape}')
        if self.masks.shape[0] != len(self.descriptions):
            raise ValueError(f'agent state has {len(self.descriptions)} descriptions but '
                             f'masks for {self.masks.shape[0]} classes')
        if self.embeddings is not None:
            self.embeddings = torch.as_tensor(self.embeddings).detach().float().cpu()
            if self.embeddings.dim() != 2 or self.embeddings.shape[0] != len(self.descriptions):
                raise ValueError(f'agent state embeddings must be ({len(self.descriptions)}, dim), '
                                 f'got {tuple(self.embeddings.shape)}')
        if self.critical_joints and len(self.critical_joints) != len(self.descriptions):
            raise ValueError(f'agent state has {len(self.descriptions)} descriptions but '
                             f'critical joints for {len(self.critical_joints)} classes')

    @property
    def num_classes(self) -> int:
        return len(self.descriptions)

    def state_dict(self) -> dict[str, Any]:
        """Checkpoint form: python lists/ints/strs and a float32 tensor for the masks, so
        ``torch.load(..., weights_only=True)`` reads it back."""
        return {
            'descriptions': list(self.descriptions),
            'masks': torch.from_numpy(self.masks.copy()),
            'version': int(self.version),
            'critical_joints': [list(j) for j in self.critical_joints],
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> AgentState:
        """Inverse of :meth:`state_dict` (masks may be a tensor, an array or nested lists).

        Raises:
            KeyError: naming the missing entry.
        """
        for key in ('descriptions', 'masks'):
            if key not in state:
                raise KeyError(f'agent state dict lacks {key!r} (has {sorted(state)})')
        return cls(descriptions=list(state['descriptions']), masks=state['masks'],
                   version=int(state.get('version', 0)),
                   critical_joints=list(state.get('critical_joints') or []))

    def replace(self, descriptions: Sequence[str] | None = None,
                masks: np.ndarray | None = None,
                critical_joints: Sequence[Sequence[int]] | None = None) -> AgentState:
        """A new state with the given parts replaced and the version bumped by one (without
        embeddings: they belong to the old descriptions)."""
        if descriptions is None:
            descriptions = self.descriptions
        if critical_joints is None:
            critical_joints = self.critical_joints
        return AgentState(descriptions=list(descriptions),
                          masks=masks if masks is not None else self.masks.copy(),
                          version=self.version + 1,
                          critical_joints=[list(j) for j in critical_joints])

    def with_embeddings(self, embeddings: torch.Tensor | None) -> AgentState:
        """The same state (same version) carrying ``embeddings`` of its descriptions."""
        return _dc_replace(self, embeddings=embeddings)

    def digests(self) -> dict[str, Any]:
        """SHA-256 digests of descriptions, masks and embeddings (and the version): equal
        digests on two ranks mean the ranks hold the very same state."""
        def sha(data: bytes) -> str:
            return hashlib.sha256(data).hexdigest()
        text = '\x00'.join(self.descriptions).encode('utf-8')
        emb = None if self.embeddings is None else sha(self.embeddings.numpy().tobytes())
        return dict(version=self.version, descriptions=sha(text), masks=masks_digest(self.masks),
                    embeddings=emb)
