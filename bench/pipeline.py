"""Throughput of the NTU-60 joint pipelines (one process, one thread).

Prints samples/s for the official NTU j train pipeline (clip_len 100, one clip) and the
test pipeline (10 clips) on generated NTU-like samples (2 persons, 25 joints, 3D, T drawn
uniformly from 30 to 300 frames). The official implementation measured 236 samples/s on
the train pipeline; the target here is at least 3x that.

    python bench/pipeline.py [--samples 400] [--profile]
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import numpy as np
import torch

from skeletonagent.datasets.pipelines import Compose

OFFICIAL_TRAIN_SAMPLES_PER_S = 236.0

TRAIN_PIPELINE = [
    dict(type='PreNormalize3D', align_spine=False),
    dict(type='RandomRot', theta=0.2),
    dict(type='GenSkeFeat', feats=['j']),
    dict(type='UniformSampleDecode', clip_len=100),
    dict(type='FormatGCNInput'),
    dict(type='Collect', keys=['keypoint', 'label'], meta_keys=[]),
    dict(type='ToTensor', keys=['keypoint']),
]
TEST_PIPELINE = [
    dict(type='PreNormalize3D', align_spine=False),
    dict(type='GenSkeFeat', feats=['j']),
    dict(type='UniformSampleDecode', clip_len=100, num_clips=10),
    dict(type='FormatGCNInput'),
    dict(type='Collect', keys=['keypoint', 'label'], meta_keys=[]),
    dict(type='ToTensor', keys=['keypoint']),
]


def make_samples(num: int, seed: int = 0) -> list[dict]:
    """NTU-like annotations: two persons moving smoothly around a body-shaped offset."""
    rng = np.random.default_rng(seed)
    body = rng.normal(0, 0.3, size=(25, 3))
    samples = []
    for i in range(num):
        total = int(rng.integers(30, 301))
        walk = np.cumsum(rng.normal(0, 0.01, size=(2, total, 25, 3)), axis=1)
        keypoint = (body + walk + rng.normal(0, 1, size=(2, 1, 1, 3))).astype(np.float32)
        samples.append(dict(frame_dir=f'S001C001P001R001A{i % 60 + 1:03d}_{i}', label=i % 60,
                            keypoint=keypoint, total_frames=total, start_index=0))
    return samples


def run(pipeline: Compose, samples: list[dict], test_mode: bool) -> float:
    """Samples per second of ``pipeline`` over ``samples`` (the dataset's shallow copy)."""
    start = time.perf_counter()
    for sample in samples:
        results = dict(sample)
        results['test_mode'] = test_mode
        pipeline(results)
    return len(samples) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--samples', type=int, default=400, help='samples per measurement')
    parser.add_argument('--repeats', type=int, default=3, help='measurements (best is kept)')
    parser.add_argument('--profile', action='store_true', help='print a cProfile summary')
    args = parser.parse_args()

    torch.set_num_threads(1)
    np.random.seed(0)
    samples = make_samples(args.samples)
    train, test = Compose(TRAIN_PIPELINE), Compose(TEST_PIPELINE)
    run(train, samples[:50], False)  # warm-up
    run(test, samples[:50], True)

    train_rate = max(run(train, samples, False) for _ in range(args.repeats))
    test_rate = max(run(test, samples, True) for _ in range(args.repeats))
    print(f'samples: {args.samples} (T uniform in [30, 300], M=2, V=25, C=3), 1 process, '
          f'1 thread')
    print(f'train pipeline: {train_rate:.0f} samples/s '
          f'({train_rate / OFFICIAL_TRAIN_SAMPLES_PER_S:.1f}x the official '
          f'{OFFICIAL_TRAIN_SAMPLES_PER_S:.0f} samples/s)')
    print(f'test pipeline: {test_rate:.0f} samples/s (10 clips)')

    if args.profile:
        for name, pipeline, test_mode in (('train', train, False), ('test', test, True)):
            profiler = cProfile.Profile()
            profiler.enable()
            run(pipeline, samples, test_mode)
            profiler.disable()
            print(f'\n--- cProfile, {name} pipeline (top 15 by internal time) ---')
            pstats.Stats(profiler).sort_stats('tottime').print_stats(15)


if __name__ == '__main__':
    main()
