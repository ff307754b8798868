"""Body-part skeleton mixup of the official recognizer (``skeleton_mix`` / ``ske_swap_randscale``).

With probability 0.75 a random 2–3 of the five body parts of every sample are replaced, over a
random window of frames, by the same parts of another sample of the batch (whose own window
is resampled to length by nearest-neighbour interpolation); otherwise the whole skeletons are
blended with a random weight. The soft label mixes the two one-hot labels by the replaced
fraction of (frame block × joint) cells.

Random numbers are drawn in the official order (``torch.randint`` for the partner shift, then
Python's ``random``), so a run seeded like the official one mixes identically. Clips shorter
than 100 frames scale the official window lengths (13–20 of 25 four-frame blocks) down.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ['MixInfo', 'skeleton_part_mix', 'split_mixed_batch']

#: frames per temporal block of the official window arithmetic
BLOCK_FRAMES = 4
#: number of blocks of a 100-frame clip, for which the official window bounds are written
REFERENCE_BLOCKS = 25


@dataclass
class MixInfo:
    """What one call of :func:`skeleton_part_mix` did (for tests and debugging)."""
    partner: torch.Tensor          # N, index of the sample mixed into each sample
    swapped: bool                  # True: body parts swapped; False: whole-skeleton blend
    joints: list[int]              # joints replaced (sorted); all joints for a blend
    dst_frames: torch.Tensor       # frames of the mixed sample that were replaced
    src_frames: torch.Tensor       # frames of the partner they were taken from
    lam: torch.Tensor              # 0-dim float32, weight of the partner's label


def _window_bounds(num_blocks: int, tem_range: tuple[int, int]) -> tuple[int, int, int]:
    """(min, max) blocks of the replaced window and the max blocks of the source window."""
    lo, hi = tem_range
    if num_blocks >= REFERENCE_BLOCKS:
        return lo, hi, REFERENCE_BLOCKS
    if num_blocks < 1:
        raise ValueError(f'skeleton mixup needs clips of at least {BLOCK_FRAMES} frames')
    lo_s = max(1, lo * num_blocks // REFERENCE_BLOCKS)
    hi_s = max(lo_s, hi * num_blocks // REFERENCE_BLOCKS)
    return lo_s, hi_s, num_blocks


@torch.no_grad()
def skeleton_part_mix(keypoint: torch.Tensor, label: torch.Tensor, num_classes: int,
                      parts: Sequence[Sequence[int]], spa_range: tuple[int, int] = (2, 3),
                      tem_range: tuple[int, int] = (13, 20), p: float | None = None,
                      ) -> tuple[torch.Tensor, torch.Tensor, MixInfo]:
    """Mix a batch of skeletons N×M×T×V×C; returns (mixed batch, soft labels N×Class, info).

    Args:
        keypoint: N×M×T×V×C skeletons (not modified).
        label: N class indices.
        num_classes: size of the soft labels.
        parts: the body-part joint groups (``layout.mix_parts``).
        spa_range: how many parts to swap (inclusive bounds).
        tem_range: window length in 4-frame blocks (inclusive bounds, for 100-frame clips).
        p: the branch draw; None draws it (official), >0.25 swaps parts, else blends.
    """
    if keypoint.dim() != 5:
        raise ValueError(f'skeleton_part_mix: expected keypoint N×M×T×V×C, got {tuple(keypoint.shape)}')
    n, m, t, v, c = keypoint.shape
    device = keypoint.device
    label = label.reshape(-1).long()
    if label.numel() != n:
        raise ValueError(f'skeleton_part_mix: {label.numel()} labels for a batch of {n}')
    if int(label.min()) < 0 or int(label.max()) >= num_classes:
        raise ValueError(f'skeleton_part_mix: labels must lie in [0, {num_classes}), '
                         f'got [{int(label.min())}, {int(label.max())}]')
    parts = [list(part) for part in parts]

    # partner of every sample: a cyclic shift of the batch by 1..N-2 (torch RNG, as official)
    idx = torch.arange(n)
    if n > 2:
        shift = torch.randint(1, n - 1, (1,))
        partner = (idx + shift) % n
    else:
        partner = idx
    num_blocks = t // BLOCK_FRAMES
    lo, hi, top = _window_bounds(num_blocks, tem_range)

    num_parts = random.randint(*spa_range)
    joints = sorted(j for part in random.sample(parts, num_parts) for j in part)
    ct = random.randint(lo, hi)
    block_start = random.randint(0, num_blocks - ct)
    window = ct * BLOCK_FRAMES
    if p is None:
        p = random.random()
    mask = torch.zeros(num_blocks, v)
    partner_dev = partner.to(device)
    if p > 0.25:
        ct2 = random.randint(ct, top)
        src_block = random.randint(0, num_blocks - ct2)
        src_len = ct2 * BLOCK_FRAMES
        # nearest-neighbour resampling of the source window to the target window length
        src_pos = F.interpolate(torch.arange(src_len, dtype=torch.float32).view(1, 1, -1), size=window)
        src_frames = src_pos.view(-1).long() + src_block * BLOCK_FRAMES
        dst_frames = torch.arange(window) + block_start * BLOCK_FRAMES
        joint_idx = torch.tensor(joints, dtype=torch.long)
        mixed = keypoint.clone()
        dst_t, src_t, jt = dst_frames.to(device), src_frames.to(device), joint_idx.to(device)
        patch = keypoint[partner_dev][:, :, src_t][:, :, :, jt]                 # N M W J C
        mixed[:, :, dst_t[:, None], jt[None, :]] = patch
        mask[block_start:block_start + ct, joint_idx] = 1
        swapped = True
    else:
        lam_f = random.random()
        mixed = keypoint * (1 - lam_f) + keypoint[partner_dev] * lam_f
        mask = mask + lam_f
        src_frames = dst_frames = torch.arange(t)
        joints = list(range(v))
        swapped = False
    lam = mask.mean()
    onehot = torch.zeros(n, num_classes, device=device)
    onehot.scatter_(1, label.to(device).unsqueeze(-1), 1)
    lam_dev = lam.to(device)
    mix_label = onehot * (1 - lam_dev) + onehot[partner_dev] * lam_dev
    info = MixInfo(partner=partner, swapped=swapped, joints=joints, dst_frames=dst_frames,
                   src_frames=src_frames, lam=lam)
    return mixed, mix_label, info


def split_mixed_batch(tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(clean half, mixed half) of a batch built as ``cat([clean, mixed])``."""
    clean, mixed = torch.chunk(tensor, 2, dim=0)
    return clean, mixed
