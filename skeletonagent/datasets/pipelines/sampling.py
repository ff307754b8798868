"""Temporal sampling: UniformSampleFrames (indices only) and UniformSampleDecode (clips).

Both draw from NumPy's global legacy RNG in training, in the same order as PYSKL, so the
same ``np.random.seed`` gives the same frames. In test mode (``results['test_mode']``)
PYSKL reseeds the global RNG with ``seed`` on every sample; here a private
``np.random.RandomState(seed)`` produces the very same draws without resetting the global
RNG behind the caller's back.
"""
from __future__ import annotations

import numpy as np
from mmcv.transforms import BaseTransform

from skeletonagent.registry import TRANSFORMS

from ._utils import require, require_skeleton

__all__ = ['UniformSampleFrames', 'UniformSample', 'UniformSampleDecode']


def _as_interval(p_interval: float | tuple[float, float]) -> tuple[float, float]:
    if isinstance(p_interval, (tuple, list)):
        if len(p_interval) != 2:
            raise ValueError(f'p_interval must be a number or a (low, high) pair, got {p_interval}')
        return float(p_interval[0]), float(p_interval[1])
    return float(p_interval), float(p_interval)


def _uniform_clip_inds(rng, num_frames: int, clip_len: int, p_interval: tuple[float, float],
                       clip_idx: int, num_clips: int, test_mode: bool, wrap: bool) -> np.ndarray:
    """Frame indices of one clip, drawing from ``rng`` exactly as PYSKL does.

    A random sub-interval of ``ratio * num_frames`` frames (``ratio`` in ``p_interval``) is
    chosen at a random offset; then ``clip_len`` frames are drawn: a (looped) run when the
    interval is shorter than the clip, frames spread by inserting random gaps when it is
    shorter than twice the clip, else one random frame per equal segment.

    Args:
        wrap: UniformSampleDecode wraps short runs inside the interval before adding the
            offset; UniformSampleFrames leaves the modulo to its caller.
    """
    low, high = p_interval
    ratio = rng.rand() * (high - low) + low
    sub_frames = int(ratio * num_frames)
    off = rng.randint(num_frames - sub_frames + 1)
    if sub_frames < clip_len:
        if test_mode:  # UniformSampleFrames' deterministic start in test mode
            start = clip_idx if sub_frames < num_clips else clip_idx * sub_frames // num_clips
        else:
            start = rng.randint(0, sub_frames)
        inds = np.arange(start, start + clip_len)
        if wrap:
            inds %= sub_frames
    elif sub_frames < 2 * clip_len:
        chosen = rng.choice(clip_len + 1, sub_frames - clip_len, replace=False)
        gaps = np.zeros(clip_len + 1, dtype=np.int64)
        gaps[chosen] = 1
        inds = np.arange(clip_len) + np.cumsum(gaps)[:-1]
    else:
        bounds = np.arange(clip_len + 1) * sub_frames // clip_len
        inds = bounds[:-1] + rng.randint(np.diff(bounds))
    return inds + off


class _SeededRNG:
    """Hands out a RandomState freshly set to ``seed`` (restoring a cached state is much
    cheaper than seeding a new generator for every test sample)."""

    def __init__(self, seed: int) -> None:
        self._rng = np.random.RandomState(seed)
        self._state = self._rng.get_state()

    def __call__(self) -> np.random.RandomState:
        self._rng.set_state(self._state)
        return self._rng


def _is_test(results) -> bool:
    if isinstance(results, list):
        results = results[0] if results else {}
    return bool(results.get('test_mode', False))


@TRANSFORMS.register_module()
class UniformSampleFrames(BaseTransform):
    """Uniformly sample ``num_clips`` clips of ``clip_len`` frame indices.

    Writes ``frame_inds`` (int64, ``num_clips * clip_len``, modulo ``total_frames`` plus
    ``start_index``), ``clip_len``, ``frame_interval`` (None) and ``num_clips``; the frames
    themselves are gathered by :class:`PoseDecode`.

    PYSKL also computes "transitional" frames (where the number of persons changes) and
    blends integer and float indices with them; as the indices are already integers that
    blend returns them unchanged, so it is skipped here.

    Args:
        clip_len: frames per clip.
        num_clips: clips per sample.
        p_interval: fraction (or range of fractions) of the video a clip is drawn from.
        seed: seed of the test-mode sampling.
    """

    def __init__(self, clip_len: int, num_clips: int = 1,
                 p_interval: float | tuple[float, float] = 1, seed: int = 255,
                 **deprecated_kwargs) -> None:
        self.clip_len = int(clip_len)
        self.num_clips = int(num_clips)
        self.seed = seed
        self.p_interval = _as_interval(p_interval)
        # PYSKL accepts and ignores deprecated arguments (e.g. float_ok); so do we.
        self.deprecated_kwargs = deprecated_kwargs
        self._test_rng = _SeededRNG(seed)

    def transform(self, results: dict) -> dict:
        num_frames = int(require(results, 'total_frames'))
        if num_frames < 1:
            raise ValueError(f"field 'total_frames' must be positive, got {num_frames}")
        test_mode = _is_test(results)
        rng = self._test_rng() if test_mode else np.random.mtrand._rand
        inds = np.concatenate([
            _uniform_clip_inds(rng, num_frames, self.clip_len, self.p_interval, i,
                               self.num_clips, test_mode, wrap=False)
            for i in range(self.num_clips)])
        inds = np.mod(inds, num_frames) + results.get('start_index', 0)
        results['frame_inds'] = inds.astype(np.int64, copy=False)
        results['clip_len'] = self.clip_len
        results['frame_interval'] = None
        results['num_clips'] = self.num_clips
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(clip_len={self.clip_len}, num_clips={self.num_clips}, '
                f'seed={self.seed})')


@TRANSFORMS.register_module()
class UniformSample(UniformSampleFrames):
    """Alias of :class:`UniformSampleFrames` (PYSKL keeps both names)."""


@TRANSFORMS.register_module()
class UniformSampleDecode(BaseTransform):
    """Sample ``num_clips`` clips and gather their frames directly (no ``frame_inds``).

    ``keypoint`` (with ``keypoint_score`` appended as a channel, if present) becomes a
    float32 M×(num_clips·clip_len)×V×C array. A list of result dicts (one per clip) is
    also accepted, as in PYSKL: one clip is drawn from each and the first dict is returned
    holding all of them.

    Args:
        clip_len: frames per clip.
        num_clips: clips per sample.
        p_interval: fraction (or range of fractions) of the video a clip is drawn from.
        seed: seed of the test-mode sampling.
    """

    def __init__(self, clip_len: int, num_clips: int = 1,
                 p_interval: float | tuple[float, float] = 1, seed: int = 255) -> None:
        self.clip_len = int(clip_len)
        self.num_clips = int(num_clips)
        self.seed = seed
        self.p_interval = _as_interval(p_interval)
        self._test_rng = _SeededRNG(seed)

    def _take_keypoint(self, results: dict) -> np.ndarray:
        keypoint = require_skeleton(results)
        del results['keypoint']
        if 'keypoint_score' in results:
            score = results.pop('keypoint_score')
            keypoint = np.concatenate([keypoint, score[..., None]], axis=-1)
        if keypoint.shape[1] < 1:
            raise ValueError(f"field 'keypoint' has no frame (shape {keypoint.shape})")
        return keypoint

    def _clips(self, rng, keypoint: np.ndarray, num_clips: int) -> np.ndarray:
        num_frames = keypoint.shape[1]
        inds = np.concatenate([
            _uniform_clip_inds(rng, num_frames, self.clip_len, self.p_interval, i, num_clips,
                               test_mode=False, wrap=True)
            for i in range(num_clips)])
        # Gather first, then cast: only the sampled frames are converted.
        return keypoint[:, inds].astype(np.float32, copy=False)

    def transform(self, results: dict | list[dict]) -> dict:
        rng = self._test_rng() if _is_test(results) else np.random.mtrand._rand
        if isinstance(results, list):
            if len(results) != self.num_clips:
                raise ValueError(f'got {len(results)} result dicts for num_clips={self.num_clips}')
            clips = [self._clips(rng, self._take_keypoint(res), 1) for res in results]
            merged = dict(results[0])
            merged['keypoint'] = np.concatenate(clips, axis=1)
            merged['num_clips'] = len(results)
            merged['clip_len'] = self.clip_len
            merged['frame_interval'] = None
            return merged
        keypoint = self._take_keypoint(results)
        results['keypoint'] = self._clips(rng, keypoint, self.num_clips)
        results['clip_len'] = self.clip_len
        results['frame_interval'] = None
        results['num_clips'] = self.num_clips
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(clip_len={self.clip_len}, num_clips={self.num_clips}, '
                f'p_interval={self.p_interval}, seed={self.seed})')
