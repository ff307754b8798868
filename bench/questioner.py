"""Confusion counting speed: ``ConfusionCounter.update`` against the official per-sample loop.

The official agent counts confusions in a Python double loop over each training batch; the
counter does the same counting with tensor operations (tests/agent/test_agent_questioner.py checks
the counts against a transcription of the loop and against its closed form). Printed, side by
side in one run (one thread):

* one update of a 100000 x 120 batch (best of --repeats), and the closed form in numpy;
* the same 100000 samples in training batches of --batch: the counter's updates and the
  official loop (a transcription of it, on the first --loop-samples samples, scaled up).

    python bench/questioner.py [--samples 100000] [--classes 120] [--batch 32]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def official_loop(pred: list[int], lbl: list[int], stats: np.ndarray) -> None:
    """The official per-sample double loop over one batch (a transcription)."""
    for i in range(len(lbl)):
        if pred[i] != lbl[i]:
            stats[lbl[i], pred[i]] += 1
        for j in range(len(lbl)):
            if pred[j] == lbl[i] and lbl[j] != lbl[i]:
                stats[lbl[i], lbl[j]] += 1


def closed_form(preds: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    n = np.bincount(labels, minlength=num_classes)
    pairs = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(pairs, (labels, preds), 1)
    np.fill_diagonal(pairs, 0)
    return pairs + n[:, None] * pairs.T


def best_of(fn, repeats: int) -> float:
    best = float('inf')
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--samples', type=int, default=100_000)
    parser.add_argument('--classes', type=int, default=120)
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--loop-samples', type=int, default=20_000,
                        help='samples the (slow) official loop runs on; its time is scaled up')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    import _common as C

    from skeletonagent.agent import ConfusionCounter

    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(args.samples, args.classes, generator=gen)
    labels = torch.randint(0, args.classes, (args.samples,), generator=gen)
    preds_np, labels_np = logits.argmax(1).numpy(), labels.numpy()
    print(C.machine_line())
    print(f'{args.samples} samples, {args.classes} classes, 1 thread')

    counter = ConfusionCounter(args.classes)
    counter.update(logits, labels)                                  # warm-up
    one = best_of(lambda: counter.update(logits, labels), args.repeats)
    numpy_ref = best_of(lambda: closed_form(preds_np, labels_np, args.classes), args.repeats)
    print(f'one batch of {args.samples}: ConfusionCounter.update {one * 1e3:8.1f} ms | '
          f'closed form in numpy {numpy_ref * 1e3:8.1f} ms')

    batches = [(logits[i:i + args.batch], labels[i:i + args.batch])
               for i in range(0, args.samples, args.batch)]
    counter = ConfusionCounter(args.classes)

    def ours():
        for b_logits, b_labels in batches:
            counter.update(b_logits, b_labels)
    ours_s = best_of(ours, 1)
    loop_batches = batches[:max(1, args.loop_samples // args.batch)]
    stats = np.zeros((args.classes, args.classes), dtype=np.int64)

    def loop():
        for b_logits, b_labels in loop_batches:
            official_loop(b_logits.argmax(1).tolist(), b_labels.tolist(), stats)
    loop_s = best_of(loop, 1) * len(batches) / len(loop_batches)
    print(f'{len(batches)} batches of {args.batch}: ConfusionCounter.update {ours_s:8.2f} s | '
          f'official loop {loop_s:8.2f} s (scaled from {len(loop_batches)} batches) | '
          f'{loop_s / ours_s:.1f}x')
    return 0


if __name__ == '__main__':
    sys.exit(main())
