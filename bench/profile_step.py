"""Where the time of one training step goes: our path and the plain eager reference, side by side.

For each model (``--models ours,reference``) and text tower (``--variants``), in a fresh process
with pinned threads and the benchmark's malloc settings, one training step (batch 8 doubled to
16 by the mixup, 100 frames, SGD) is run under ``torch.profiler`` after warm-up steps, and
printed as:

* phases: forward, backward and optimizer; and the text tower's share (its forward, and its
  backward when it is trained) from the operators recorded under its modules;
* the operators by self CPU time, forward and backward apart (backward = what runs under
  autograd's engine), the ``--top`` largest of each;
* with ``--shapes``, the same grouped by input shapes (which convolution costs what).

The profiler's own overhead inflates small operators; read the shares, not the absolute times
(``bench/train_step.py`` gives those).

Usage: python bench/profile_step.py [--models ours,reference] [--variants minilm,clip-trainable]
       [--threads 2] [--batch 8] [--frames 100] [--top 25] [--shapes] [--sort cpu|count]
"""
from __future__ import annotations

import argparse
import os
import random
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _step_fn(model_kind: str, variant: str, batch: int, frames: int, num_classes: int = 60, **backbone):
    """(model, step(i) -> loss, text tower module) for one configuration (seeded inputs)."""
    import _common as C
    import torch
    from reference_model import reference_from

    torch.manual_seed(0)
    model = C.build_ntu_model(variant, 'cpu', num_classes=num_classes, **backbone)
    model.train()
    if model_kind == 'reference':
        model = reference_from(model)
        model.train()
        text = model.text_encoder.model

        def forward(kp, label):
            return model.forward_train(kp, label)['loss']
    else:
        text = model.text_encoder.model

        def forward(kp, label):
            return sum(v for k, v in model(kp, label, mode='loss').items() if k.startswith('loss'))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.025, momentum=0.9, weight_decay=0.0005, nesterov=True)
    gen = torch.Generator().manual_seed(0)
    keypoint = torch.randn(batch, 1, 2, frames, 25, 3, generator=gen)
    label = torch.randint(0, num_classes, (batch,), generator=gen)

    def step(i: int) -> float:
        torch.manual_seed(i)
        random.seed(i)
        opt.zero_grad(set_to_none=True)
        with torch.profiler.record_function('## forward'):
            loss = forward(keypoint, label)
        with torch.profiler.record_function('## backward'):
            loss.backward()
        with torch.profiler.record_function('## optimizer'):
            opt.step()
        return float(loss.detach())
    return model, step, text


def child(args: argparse.Namespace) -> None:
    import _common as C
    import torch
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(args.threads)
    _, step, text = _step_fn(args.models, args.variants, args.batch, args.frames)
    for i in range(args.warmup):
        step(i)
    # the text tower's operators: mark its forward (autograd records the thread's sequence
    # numbers, so its backward operators are found through them)
    marks = []
    handle_pre = text.register_forward_pre_hook(
        lambda *a: marks.append(torch.profiler.record_function('## text tower').__enter__()))
    handle_post = text.register_forward_hook(lambda *a: marks.pop().__exit__(None, None, None))
    with profile(activities=[ProfilerActivity.CPU], record_shapes=args.shapes) as prof:
        step(args.warmup)
    handle_pre.remove()
    handle_post.remove()
    events = prof.events()
    phases = {e.name: e.cpu_time_total / 1e6 for e in events if e.name.startswith('## ')}
    text_fwd = sum(e.cpu_time_total for e in events if e.name == '## text tower') / 1e6
    # backward operators of the text tower: the autograd nodes whose forward op ran inside it
    text_seq = set()
    for e in events:
        if e.name == '## text tower':
            for child_ev in _descendants(e):
                if child_ev.sequence_nr >= 0:
                    text_seq.add(child_ev.sequence_nr)
    text_bwd = sum(e.cpu_time_total for e in events
                   if e.name.startswith('autograd::engine::evaluate_function') and e.sequence_nr in text_seq) / 1e6
    by_op: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0.0, 0])
    for e in events:
        if not e.name.startswith('aten::') and not e.name.startswith('Optimizer'):
            continue
        side = 'backward' if _under(e, 'autograd::engine::evaluate_function') else \
            'optimizer' if _under(e, '## optimizer') else 'forward'
        shapes = str(e.input_shapes)[:90] if args.shapes else ''
        row = by_op[(side, e.name, shapes)]
        row[0] += e.self_cpu_time_total / 1e6
        row[1] += 1
    C.emit(dict(phases=phases, text_forward=text_fwd, text_backward=text_bwd,
                ops=[[side, name, shapes, t, n] for (side, name, shapes), (t, n) in by_op.items()],
                peak_gb=C.peak_rss_gb()))


def _under(event, prefix: str) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith(prefix):
            return True
        parent = parent.cpu_parent
    return False


def _descendants(event):
    stack = list(event.cpu_children)
    while stack:
        e = stack.pop()
        yield e
        stack.extend(e.cpu_children)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', default='ours,reference')
    parser.add_argument('--variants', default='minilm,clip-trainable')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--frames', type=int, default=100)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--top', type=int, default=25)
    parser.add_argument('--shapes', action='store_true', help='group the operators by input shapes too')
    parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    import _common as C

    print(C.machine_line())
    print(f'threads {args.threads}, batch {args.batch} (x2 with the mixup), {args.frames} frames; one profiled step '
          f'after {args.warmup} warm-up steps (profiler overhead included)')
    for variant in args.variants.split(','):
        for kind in args.models.split(','):
            res = C.run_child(__file__, ['--models', kind, '--variants', variant, '--threads', str(args.threads),
                                         '--batch', str(args.batch), '--frames', str(args.frames),
                                         '--warmup', str(args.warmup)] + (['--shapes'] if args.shapes else []),
                              env=C.malloc_env('tuned'))
            ph = res['phases']
            total = sum(ph.get(k, 0.0) for k in ('## forward', '## backward', '## optimizer'))
            print(f'\n== {variant} / {kind}: step {total:.2f} s CPU (profiled) = forward {ph.get("## forward", 0):.2f} '
                  f'+ backward {ph.get("## backward", 0):.2f} + optimizer {ph.get("## optimizer", 0):.2f}; '
                  f'text tower: forward {res["text_forward"]:.2f} s, backward {res["text_backward"]:.2f} s '
                  f'({100 * (res["text_forward"] + res["text_backward"]) / max(total, 1e-9):.0f}% of the step); '
                  f'peak {res["peak_gb"]:.2f} GB; others kept {res["others"]["cores"]:.2f} cores busy')
            ops = res['ops']
            for side in ('forward', 'backward', 'optimizer'):
                rows = sorted((r for r in ops if r[0] == side), key=lambda r: -r[3])
                side_total = sum(r[3] for r in rows)
                if not rows:
                    continue
                print(f'  {side}: {side_total:.2f} s self CPU in operators')
                for _, name, shapes, t, n in rows[:args.top]:
                    print(f'    {t:7.3f} s {100 * t / max(side_total, 1e-9):5.1f}%  x{n:<4d} {name} {shapes}')


if __name__ == '__main__':
    main()
