"""Inference of the official NTU-60 joint model against the plain eager reference, in one run.

8 samples × 10 clips of 100 frames, 2 persons, scored as the official test scores them (the
backbone on the clips, softmax, mean over the clips), in two modes:

* ``official``  eight batches of one sample (the official test: ``videos_per_gpu=1``);
* ``batched``   the 80 clips as one batch.

Models, each mode and model in its own process (memory peaks do not mix), under
``torch.inference_mode()``, on the same inputs and weights:

* ``reference`` the plain eager official model (``bench/reference_model.py``; it also computes
  the mask and text branches, as the official backbone does at test time): the yardstick;
* ``unfused``   our model as built;
* ``fused``     ours after ``fuse()`` (conv + BN folded once, as ``init_recognizer`` and
  ``tools/test.py`` run it).

Prints clips/s, the ratio to the reference of the same mode (goal: >= 2x) and peak memory.

Usage: python bench/inference.py [--repeats 3] [--threads 2] [--device cpu|cuda] [--chunk N]
       [--models reference,unfused,fused] [--modes official,batched]
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: samples per call in each mode
MODES = {'official': 1, 'batched': 8}
#: the goal of issue 13: clips/s as a multiple of the reference's in the same mode
GOAL = 2.0


def child(args: argparse.Namespace) -> None:
    import _common as C
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = C.build_ntu_model('minilm', args.device, with_text=args.model == 'reference').eval()
    if args.model == 'reference':
        from reference_model import reference_from
        model = reference_from(model).eval()
        del model.text_encoder               # not used at test time: its memory is not the model's
    elif args.model == 'fused':
        from skeletonagent.models.gcn import fuse_for_inference
        fuse_for_inference(model)
    if args.chunk is not None and args.model != 'reference':
        model.test_cfg['max_testing_views'] = args.chunk if args.chunk > 0 else None
    keypoint = torch.randn(8, 10, 2, 100, 25, 3, device=args.device,
                           generator=torch.Generator(args.device).manual_seed(0))
    batch = MODES[args.mode]

    def score(clips: torch.Tensor) -> torch.Tensor:
        if args.model == 'reference':
            return model.forward_test(clips)
        return model(clips, mode='tensor')        # clip-averaged softmax scores

    def run() -> None:
        for i in range(0, 8, batch):
            score(keypoint[i:i + batch])

    if args.device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
    with torch.inference_mode():
        C.timed(lambda: score(keypoint[:1]), args.device)   # warm-up (kernel selection)
        times = [C.timed(run, args.device) for _ in range(args.repeats)]
        top1 = score(keypoint[:2]).argmax(1).tolist()
    best = min(times)
    result = dict(mode=args.mode, model=args.model, seconds=best, clips_per_s=80 / best, top1=top1,
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
    parser.add_argument('--models', default='reference,unfused,fused', help='of reference, unfused, fused')
    parser.add_argument('--modes', default='official,batched', help='of official, batched')
    parser.add_argument('--mode', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--model', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    import _common as C

    print(C.machine_line())
    print(f'threads: {args.threads}, device: {args.device}; 8 samples x 10 clips; goal: >= {GOAL}x the reference')
    print(f'{"mode":9s} {"model":9s} {"seconds":>8s} {"clips/s":>8s} {"x ref":>6s} {"peak GB":>8s} {"others":>6s}  '
          f'top-1 of 2  runs (s)')
    verdicts = []
    for mode in args.modes.split(','):
        ref = None
        for kind in args.models.split(','):
            extra = ['--chunk', str(args.chunk)] if args.chunk is not None else []
            res = C.run_child(__file__, ['--mode', mode, '--model', kind, '--repeats', str(args.repeats),
                                         '--threads', str(args.threads), '--device', args.device, *extra])
            peak = res.get('cuda_peak_gb', res['peak_gb'])
            if kind == 'reference':
                ref = res['clips_per_s']
            elif ref:
                verdicts.append((mode, kind, res['clips_per_s'] / ref))
            ratio = f'{res["clips_per_s"] / ref:6.2f}' if ref else f'{"-":>6s}'
            print(f'{mode:9s} {kind:9s} {res["seconds"]:8.2f} {res["clips_per_s"]:8.2f} {ratio} {peak:8.2f} '
                  f'{res["others"]["cores"]:6.2f}  {str(res["top1"]):10s}  {res["times"]}', flush=True)
    for mode, kind, r in verdicts:
        print(f'goal {mode:9s} {kind:9s} {r:.2f}x the reference: {"met" if r >= GOAL else "not met"}')


if __name__ == '__main__':
    main()
