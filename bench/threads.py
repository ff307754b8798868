"""The demo's training step with torch's default CPU threads and with the run's own choice
(``skeletonagent/engine/threads.py``), on a quiet machine and next to one competing CPU-bound
process, side by side in one run.

Each row runs in its own process: it builds the demo model (``configs/demo/j.py``: MiniLM
frozen, 12 classes), takes one batch of 32 training samples of the demo data through the
training pipeline, and times ``--steps`` steps (forward with all four losses, backward, SGD)
after ``--warmup``. ``torch default`` leaves torch's threads as they are (one per core);
``ours`` calls ``configure_threads`` as ``tools/train.py`` does (the demo has one data
worker), so with a competitor it decides while the competitor runs. The competitor is a
Python busy loop started 2 s before the row and stopped after it. ``OMP_NUM_THREADS`` is
removed from the rows' environment (it would decide for both).

Printed: the machine and its load average, at the start and at the end; per row the threads,
how they were chosen, median / min step seconds, the CPU seconds per step, and ``others``: the
cores other processes (the competitor included) kept busy meanwhile.

Usage: python bench/threads.py [--steps 3] [--warmup 1] [--scenarios quiet,busy]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODES = ('default', 'ours')


def child(args: argparse.Namespace) -> None:
    import _common as C
    import torch
    choice = None
    if args.mode == 'ours':
        from skeletonagent.engine.threads import configure_threads
        choice = configure_threads(None, workers=1, cuda=False)    # the demo: 1 data worker
    from mmengine.optim import OptimWrapper

    from skeletonagent.datasets.synthetic import ensure_demo_data
    from skeletonagent.engine import load_config
    from skeletonagent.engine.runner import build_model
    from skeletonagent.registry import DATASETS
    torch.manual_seed(0)
    os.chdir(ROOT)
    cfg = load_config(os.path.join(ROOT, 'configs', 'demo', 'j.py'))
    ensure_demo_data(cfg.data.train.ann_file)
    dataset = DATASETS.build(cfg.data.train)
    samples = [dataset[i] for i in range(cfg.data.videos_per_gpu)]
    keypoint = torch.stack([s['keypoint'] for s in samples])
    label = torch.tensor([int(s['label']) for s in samples])
    model = build_model(cfg, for_training=False)
    import numpy as np
    masks = (np.random.default_rng(0).random((12, 25, 25)) > 0.7).astype(np.float32)
    model.set_agent_state(C.class_descriptions(12), masks)
    model.init_text_encoder()
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    wrapper = OptimWrapper(optimizer=torch.optim.SGD(params, lr=0.1, momentum=0.9,
                                                     weight_decay=0.0005, nesterov=True))

    def step() -> None:
        with wrapper.optim_context(model):
            losses = model(keypoint, label, mode='loss')
        wrapper.update_params(sum(v for k, v in losses.items() if 'loss' in k))

    runs = [C.timed_cpu(step, 'cpu') for _ in range(args.warmup + args.steps)]
    times = [w for w, _ in runs]
    timed, cpu = times[args.warmup:], [c for _, c in runs[args.warmup:]]
    C.emit(dict(mode=args.mode, threads=torch.get_num_threads(),
                how=choice.line() if choice else "torch's default (one per core)",
                median_s=statistics.median(timed), min_s=min(timed), cpu_s=statistics.median(cpu),
                times=[round(t, 2) for t in times]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--steps', type=int, default=3, help='timed steps (median and min)')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--scenarios', default='quiet,busy')
    parser.add_argument('--mode', choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    import _common as C
    os.environ.pop('OMP_NUM_THREADS', None)
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    print(C.machine_line())
    print(f'{args.warmup} warm-up + {args.steps} timed steps of the demo (batch 32); '
          'OMP_NUM_THREADS unset in the rows')
    print(f'{"scenario":27s} {"threads":>7s} {"median s":>8s} {"min s":>6s} {"cpu s":>6s} '
          f'{"others":>6s}  how chosen; steps (s)')
    for scenario in args.scenarios.split(','):
        for mode in MODES:
            competitor = None
            if scenario == 'busy':
                competitor = subprocess.Popen([sys.executable, '-c', 'while True: pass'])
                time.sleep(2.0)
            try:
                res = C.run_child(__file__, ['--mode', mode, '--steps', str(args.steps),
                                             '--warmup', str(args.warmup)])
            finally:
                if competitor is not None:
                    competitor.kill()
                    competitor.wait()
            name = f'{"quiet" if scenario == "quiet" else "1 competing process"}, {mode}'
            print(f'{name:27s} {res["threads"]:7d} {res["median_s"]:8.2f} {res["min_s"]:6.2f} '
                  f'{res["cpu_s"]:6.2f} {res["others"]["cores"]:6.2f}  {res["how"]}; '
                  f'{res["times"]}', flush=True)
    print(f'others: cores kept busy by other processes during each row (the competitor '
          f'included); now: {C.machine_line()}')


if __name__ == '__main__':
    main()
