"""Inference of the official NTU-60 joint model: 8 samples × 10 clips of 100 frames, 2 persons.

Runs the 80 clips as one batch and as eight batches of one sample, each mode in its own process
(so memory peaks do not mix), under ``torch.inference_mode()``, with the model as built
(``unfused``) and after ``fuse()`` (``fused``: conv + BN folded once, as ``init_recognizer`` and
``tools/test.py`` run it); prints clips/s and peak memory.

Usage: python bench/inference.py [--repeats 3] [--threads 2] [--device cpu|cuda] [--chunk N]
       [--models unfused,fused]
Official figures (same machine class, torch 2.13 CPU, 2 threads): one batch 22.6 s (3.5 clips/s,
2.9 GB peak); eight batches of one 12.7 s (6.3 clips/s, 1.1 GB). Target: >= 12.6 clips/s.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

OFFICIAL = {'one batch': (3.5, 2.9), 'eight batches of one': (6.3, 1.1)}
TARGET_CLIPS_PER_S = 12.6


def child(args: argparse.Namespace) -> None:
    import torch

    import _common as C

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = C.build_ntu_model('minilm', args.device, with_text=False).eval()
    if args.fuse:
        from skeletonagent.models.gcn import fuse_for_inference
        fuse_for_inference(model)
    if args.chunk is not None:
        model.test_cfg['max_testing_views'] = args.chunk if args.chunk > 0 else None
    keypoint = torch.randn(8, 10, 2, 100, 25, 3, device=args.device)
    label = torch.arange(8, device=args.device)
    batch = 8 if args.mode == 'one batch' else 1

    def run() -> None:
        for i in range(0, 8, batch):
            model(keypoint[i:i + batch], label[i:i + batch], mode='predict')

    if args.device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode():
        C.timed(lambda: model(keypoint[:1], mode='predict'), args.device)   # warm-up (kernel selection)
        times = [C.timed(run, args.device) for _ in range(args.repeats)]
    best = min(times)
    result = dict(mode=args.mode, fused=args.fuse, seconds=best, clips_per_s=80 / best,
                  times=[round(t, 2) for t in times], peak_gb=C.peak_rss_gb())
    if args.device.startswith('cuda'):
        result['cuda_peak_gb'] = torch.cuda.max_memory_allocated() / 1e9
    C.emit(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--repeats', type=int, default=3, help='timed repetitions (best reported)')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--chunk', type=int, default=None,
                        help='clips per backbone call (test_cfg.max_testing_views); 0 = all at once')
    parser.add_argument('--models', default='unfused,fused', help='unfused and/or fused (comma-separated)')
    parser.add_argument('--mode', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--fuse', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    import _common as C

    print(C.machine_line())
    print(f'threads: {args.threads}, device: {args.device}; target: >= {TARGET_CLIPS_PER_S} clips/s for the better mode '
          '(official figures: another run, context only)')
    print(f'{"mode":22s} {"model":8s} {"seconds":>8s} {"clips/s":>8s} {"x official":>10s} {"peak GB":>8s} '
          f'{"others":>6s}  runs (s)')
    for mode, (official_rate, _) in OFFICIAL.items():
        for kind in args.models.split(','):
            extra = ['--chunk', str(args.chunk)] if args.chunk is not None else []
            extra += ['--fuse'] if kind == 'fused' else []
            res = C.run_child(__file__, ['--mode', mode, '--repeats', str(args.repeats), '--threads', str(args.threads),
                                         '--device', args.device, *extra])
            peak = res.get('cuda_peak_gb', res['peak_gb'])
            print(f'{mode:22s} {kind:8s} {res["seconds"]:8.2f} {res["clips_per_s"]:8.2f} '
                  f'{res["clips_per_s"] / official_rate:10.2f} {peak:8.2f} {res["others"]["cores"]:6.2f}  '
                  f'{res["times"]}', flush=True)


if __name__ == '__main__':
    main()
