"""Annotation checking speed: ``validate_annotation`` on a large NTU-like file.

PoseDataset checks every sample when it loads a file (fields, label, shape, finiteness).
The finiteness check is an ``np.isfinite`` mask per sample; the alternative it was chosen
over is one float64 sum per sample (the exact mask only when the sum is not finite), which
measured about twice as slow here. Printed side by side in one run: the whole check, and the
finiteness part both ways (tests/datasets/test_dataset.py checks what is accepted and refused).

    python bench/validation.py [--samples 20000] [--frames 100]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--samples', type=int, default=20_000, help='a third of NTU-60 by default')
    parser.add_argument('--frames', type=int, default=100)
    args = parser.parse_args(argv)

    import _common as C

    from skeletonagent.datasets.annotations import validate_annotation

    rng = np.random.default_rng(0)
    anns = [dict(frame_dir=f'S{i:06d}', label=i % 60, total_frames=args.frames,
                 keypoint=rng.normal(size=(2, args.frames, 25, 3)).astype(np.float32))
            for i in range(args.samples)]
    print(C.machine_line())
    print(f'{args.samples} samples of 2 x {args.frames} x 25 x 3 (float32)')

    start = time.perf_counter()
    for i, ann in enumerate(anns):
        validate_annotation(ann, file='big.pkl', index=i, num_classes=60, joints=(25, 'layout'))
    ours = time.perf_counter() - start

    start = time.perf_counter()
    for ann in anns:
        assert np.isfinite(ann['keypoint'].sum(dtype=np.float64))
    summed = time.perf_counter() - start
    start = time.perf_counter()
    for ann in anns:
        assert np.isfinite(ann['keypoint']).all()
    mask = time.perf_counter() - start
    print(f'validate_annotation, every check: {ours:6.2f} s')
    print(f'finiteness alone: an isfinite mask (ours) {mask:6.2f} s | one float64 sum '
          f'{summed:6.2f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
