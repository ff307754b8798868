"""One training step of the official NTU-60 joint model: median time and peak memory.

Batch 8 (doubled to 16 by the skeleton mixup), 100 frames, 2 persons, all four losses, SGD
(nesterov, lr 0.025). Variants (each in its own process so memory peaks do not mix):

* ``minilm``          frozen MiniLM text encoder, embeddings cached (our default), text_dim 384
* ``clip-frozen``     frozen CLIP-sized text tower (random init), embeddings cached, text_dim 512
* ``clip-trainable``  CLIP-sized text tower trained with the model (the official behaviour)

Usage: python bench/train_step.py [--variants minilm,clip-frozen,clip-trainable] [--steps 5]
       [--warmup 3] [--threads 2] [--malloc tuned|default] [--device cpu|cuda]
Official figures (same machine class, torch 2.13 CPU, 2 threads): 7.0 s median, 10.1 GB peak.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

OFFICIAL_STEP_S = 7.0
OFFICIAL_PEAK_GB = 10.1


def child(args: argparse.Namespace) -> None:
    import torch

    import _common as C

    tuned = 'glibc.malloc.trim_threshold' in os.environ.get('GLIBC_TUNABLES', '')
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = C.build_ntu_model(args.variants, args.device)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.025, momentum=0.9, weight_decay=0.0005, nesterov=True)
    keypoint = torch.randn(8, 1, 2, 100, 25, 3, device=args.device)
    label = torch.randint(0, 60, (8,), device=args.device)

    def step() -> None:
        losses = model(keypoint, label, mode='loss')
        loss = sum(v for k, v in losses.items() if 'loss' in k)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    if args.device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
    times = [C.timed(step, args.device) for _ in range(args.warmup + args.steps)]
    result = dict(variant=args.variants, median_s=statistics.median(times[args.warmup:]),
                  times=[round(t, 3) for t in times], peak_gb=C.peak_rss_gb(), malloc_tuned=tuned,
                  text_params=sum(p.numel() for p in model.text_encoder.parameters()))
    if args.device.startswith('cuda'):
        result['cuda_peak_gb'] = torch.cuda.max_memory_allocated() / 1e9
    C.emit(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--variants', default='minilm,clip-frozen,clip-trainable')
    parser.add_argument('--steps', type=int, default=5, help='timed steps (median reported)')
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--malloc', choices=('tuned', 'default'), default='tuned',
                        help='tuned: glibc keeps freed memory for reuse (see _common.MALLOC_TUNABLES)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    import _common as C

    print(f'official: {OFFICIAL_STEP_S:.1f} s/step, peak {OFFICIAL_PEAK_GB:.1f} GB '
          f'(targets for the frozen default: <= {0.6 * OFFICIAL_STEP_S:.2f} s, <= {OFFICIAL_PEAK_GB / 2:.2f} GB)')
    print(f'malloc: {args.malloc}, threads: {args.threads}, device: {args.device}')
    print(f'{"variant":16s} {"median s":>9s} {"x official":>10s} {"peak GB":>8s}  steps (s)')
    for variant in args.variants.split(','):
        res = C.run_child(__file__, ['--variants', variant, '--steps', str(args.steps), '--warmup', str(args.warmup),
                                     '--threads', str(args.threads), '--malloc', args.malloc,
                                     '--device', args.device], env=C.malloc_env(args.malloc))
        peak = res.get('cuda_peak_gb', res['peak_gb'])
        print(f'{variant:16s} {res["median_s"]:9.2f} {res["median_s"] / OFFICIAL_STEP_S:10.2f} {peak:8.2f}  '
              f'{res["times"]}', flush=True)


if __name__ == '__main__':
    main()
