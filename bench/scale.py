"""How cost grows with the work: one training step and one agent round as batch, clip length
and number of classes grow, for our default training path.

Training rows (float32, ``plain`` path of ``bench/train_step.py``: all four losses, SGD through
mmengine's ``OptimWrapper``; text tower of ``--variant``: ``minilm`` frozen MiniLM, our
default, or ``clip-trainable``, the CLIP-sized tower trained with the model), one fresh child
process each so memory peaks do not mix:

* ``base``: batch 8 (doubled to 16 by the skeleton mixup), T 100 frames, 60 classes;
* then one factor at a time: T 300; batch 16; batch 32; 120 classes; 400 classes (the text
  table, the classification layers and the joint masks grow with the classes).

Each row: the median step time over ``--steps`` after ``--warmup`` steps, the process's CPU
seconds per step (median), its peak memory (RSS; CUDA max allocated on cuda) and the RSS
once the model is built, and time and memory as ratios of the base row.

Agent round rows (60, 120, 400 classes): what ``bench/agent_round.py`` times for one round,
without the training steps running beside it (that script measures their interference):
a C x C confusion matrix, each class's 10 most confused classes (``select_confused``), the
follow-up chats to the LLM (``--llm server``: the project's OpenAI-compatible test server in
its own process answering after ``--latency`` s, through ``OpenAIChat`` with its default
concurrency, as agent_round.py; ``--llm offline``: the offline backend in process), the
Selector's reading of the answers into the new state (``run_round``), the round report, and
the new descriptions' embeddings (frozen text encoder; ``-`` for a trainable one, whose
embeddings are computed every step). All class counts run in one child process, one after
the other. Class names: the shipped label map for the class count, else ``class i``.

Threads are pinned (``--threads``), glibc's malloc is tuned as in the other benchmarks
(``--malloc tuned``); ``others`` is the number of cores other processes kept busy during a
row (wall times on a shared machine are noisy; ``cpu s`` is the steadier figure with
``--threads 1``).

``--quick`` is a smoke test (T 20, batch 2, 10 classes, base_channels 16, 1 step, no warm-up;
the grown rows T 60, batch 4 and 8, 20 and 40 classes; rounds at 10, 20, 40 classes with
0.05 s latency); its figures say nothing about the full-size model.

Usage: python bench/scale.py [--variant minilm|clip-trainable] [--steps 3] [--warmup 1]
       [--threads 2] [--malloc tuned|default] [--device cpu] [--llm server|offline]
       [--latency 1.0] [--quick] [--write-readme] [--readme bench/README.md]
"""
from __future__ import annotations

import argparse
import datetime
import math
import os
import random
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

VARIANTS = ('minilm', 'clip-trainable')
BEGIN, END = '<!-- scale:begin -->', '<!-- scale:end -->'
COMMAND = 'python bench/scale.py --write-readme'

#: (label, batch, frames, classes) of the training rows; the first is the base
FULL_ROWS = (('base', 8, 100, 60), ('T 300', 8, 300, 60), ('batch 16', 16, 100, 60),
             ('batch 32', 32, 100, 60), ('120 classes', 8, 100, 120), ('400 classes', 8, 100, 400))
QUICK_ROWS = (('base', 2, 20, 10), ('T 60', 2, 60, 10), ('batch 4', 4, 20, 10),
              ('batch 8', 8, 20, 10), ('20 classes', 2, 20, 20), ('40 classes', 2, 20, 40))
FULL_ROUNDS, QUICK_ROUNDS = (60, 120, 400), (10, 20, 40)

TRAIN_HEADER = ('row', 'batch (x2 mixup)', 'T', 'classes', 'median s', 'x base', 'cpu s', 'x base',
                'peak GB', 'x base', 'built GB', 'others')
ROUND_HEADER = ('classes', 'round s', 'x first', 'select s', 'chats s', 'requests', 'selector s',
                'report s', 'encode s', 'cpu s', 'others')


# ------------------------------------------------------------------------------------ children
def _rss_now_gb() -> float:
    """Current resident memory of this process (GB; Linux, else 0)."""
    try:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def _backbone(args: argparse.Namespace) -> dict:
    return dict(base_channels=16) if args.quick else {}


def train_child(args: argparse.Namespace) -> None:
    """One training row: ``--batch`` x ``--frames`` x ``--classes``."""
    import _common as C
    import torch
    from mmengine.optim import OptimWrapper

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = C.build_ntu_model(args.variant, args.device, num_classes=args.classes, **_backbone(args))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.025, momentum=0.9, weight_decay=0.0005, nesterov=True)
    wrapper = OptimWrapper(optimizer=opt)
    gen = torch.Generator().manual_seed(0)
    keypoint = torch.randn(args.batch, 1, 2, args.frames, 25, 3, generator=gen).to(args.device)
    label = torch.randint(0, args.classes, (args.batch,), generator=gen).to(args.device)
    if not model.text_encoder.trainable:
        with torch.no_grad():           # the frozen tower's table, as installed before training
            model.text_embeddings(label)
    built_gb = _rss_now_gb()
    first_loss: list[float] = []
    step_index = [0]

    def step() -> None:
        torch.manual_seed(step_index[0])        # the same mixup draws in every row
        random.seed(step_index[0])
        step_index[0] += 1
        with wrapper.optim_context(model):
            losses = model(keypoint, label, mode='loss')
            loss = sum(v for k, v in losses.items() if 'loss' in k)
        if not first_loss:
            first_loss.append(float(loss))
        wrapper.update_params(loss)

    if args.device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
    runs = [C.timed_cpu(step, args.device) for _ in range(args.warmup + args.steps)]
    timed = [w for w, _ in runs[args.warmup:]]
    result = dict(median_s=statistics.median(timed), min_s=min(timed),
                  cpu_s=statistics.median(c for _, c in runs[args.warmup:]),
                  times=[round(w, 3) for w, _ in runs], peak_gb=C.peak_rss_gb(), built_gb=built_gb,
                  first_loss=first_loss[0], threads=torch.get_num_threads())
    if args.device.startswith('cuda'):
        result['cuda_peak_gb'] = torch.cuda.max_memory_allocated() / 1e9
    C.emit(result)


def _class_names(num_classes: int, work: Path) -> str:
    """A label map for ``num_classes``: the shipped default, else a file of ``class i`` names."""
    from skeletonagent.datasets.label_map import DEFAULT_LABEL_MAPS
    if num_classes in DEFAULT_LABEL_MAPS:
        return DEFAULT_LABEL_MAPS[num_classes]
    path = work / f'classes_{num_classes}.txt'
    path.write_text(''.join(f'class {i}\n' for i in range(num_classes)), encoding='utf-8')
    return str(path)


def round_child(args: argparse.Namespace) -> None:
    """One agent round per class count of ``--round-classes``, as bench/agent_round.py's
    ``round_job``, timed alone and in parts."""
    import _common as C
    import numpy as np
    import torch

    from skeletonagent.agent import build_initial_agent, select_confused
    from skeletonagent.agent.llm import build_backend
    from skeletonagent.agent.prompts import PromptSet
    from skeletonagent.agent.round import MaskFormat, RoundQuestions, run_round, write_round_report

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    counts = [int(c) for c in args.round_classes.split(',')]
    work = Path(tempfile.mkdtemp(prefix='scale_round_'))
    server = None
    prompts = PromptSet()
    try:
        if args.llm == 'server':
            from agent_round import start_server
            server, base_url = start_server(args.latency)
            backend = build_backend(dict(type='OpenAIChat', model='fake-llm', base_url=base_url,
                                         api_key_env=None))
        else:
            backend = build_backend(dict(type='Offline'))
        backend.configure(layout='nturgb+d', prompts=prompts)
        rows = []
        for n in counts:
            initial = build_initial_agent(dict(label_map=_class_names(n, work)), n, 'nturgb+d', 'j',
                                          work / f'c{n}')
            model = C.build_ntu_model(args.variant, 'cpu', with_text=False, num_classes=n, **_backbone(args))
            encoder = model.init_text_encoder('cpu')
            model.set_agent_state(initial.state.descriptions, initial.state.masks)
            rng = np.random.default_rng(0)
            matrix = rng.integers(0, 50, (n, n))
            np.fill_diagonal(matrix, 0)
            if not rows:
                # untimed: a round asking one class (the server's and the code's first-call costs are
                # not the round's), written to its own folder
                first = select_confused(matrix, k=10)
                warm = run_round(backend, RoundQuestions(initial.state, initial.transcripts,
                                                         initial.class_names, {0: first[0]},
                                                         matrix=matrix, prompts=prompts),
                                 MaskFormat('nturgb+d', 'j'))
                write_round_report(warm, work / 'warm-up', 1, layout='nturgb+d')
            if not encoder.trainable:
                with torch.no_grad():   # untimed: the new encoder's first call (not through the cache)
                    encoder.encode(['the person waves the right hand'])

            c0, t0 = time.process_time(), time.perf_counter()
            similar = select_confused(matrix, k=10)
            t1 = time.perf_counter()
            result = run_round(backend, RoundQuestions(initial.state, initial.transcripts,
                                                       initial.class_names, similar, matrix=matrix,
                                                       prompts=prompts),
                               MaskFormat('nturgb+d', 'j'))
            t2 = time.perf_counter()
            write_round_report(result, work / f'c{n}' / 'rounds', 1, layout='nturgb+d')
            t3 = time.perf_counter()
            embeddings = model.encode_descriptions(result.state.descriptions)
            t4, c4 = time.perf_counter(), time.process_time()
            rows.append(dict(classes=n, round_s=t4 - t0, select_s=t1 - t0, chats_s=result.stats.seconds,
                             requests=result.stats.requests, failed=result.stats.num_failed,
                             selector_s=(t2 - t1) - result.stats.seconds, report_s=t3 - t2,
                             encode_s=(t4 - t3) if embeddings is not None else None, cpu_s=c4 - c0,
                             updated=len(result.updated), summary=result.stats.summary()))
            del model
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    concurrency = getattr(backend, 'max_concurrency', None)
    backend.close()
    C.emit(dict(rounds=rows, backend=str(backend.describe() or type(backend).__name__),
                max_concurrency=concurrency))


# ------------------------------------------------------------------------------------ table
def fmt(value: float | None) -> str:
    """A positive figure with about three significant digits (``-`` for None)."""
    if value is None:
        return '-'
    if value >= 100:
        return f'{value:.0f}'
    if value >= 0.995:                  # .3g would print 0.9996 as '1'
        return f'{value:.2f}'
    return f'{value:.3g}'


def markdown_table(header: tuple[str, ...], rows: list[list[str]]) -> list[str]:
    rule = '|' + '|'.join('---' if i == 0 else '---:' for i in range(len(header))) + '|'
    lines = ['| ' + ' | '.join(header) + ' |', rule]
    return lines + ['| ' + ' | '.join(row) + ' |' for row in rows]


def write_readme(path: Path, block: str) -> None:
    """Put ``block`` between the scale markers of ``path``; add a "Scale" section with the
    markers (at the end) when they are missing, and the file when it is missing."""
    text = path.read_text(encoding='utf-8') if path.exists() else '# Benchmarks\n'
    if BEGIN not in text or END not in text or text.index(BEGIN) > text.index(END):
        text = text.rstrip('\n') + (
            '\n\n## Scale\n\nHow a training step and an agent round grow with the batch, the clip length '
            'and the number of classes (`bench/scale.py`; see its docstring). Regenerate the table on a '
            f'quiet machine with `{COMMAND}`.\n\n{BEGIN}\n{END}\n')
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    path.write_text(f'{head}{BEGIN}\n{block.strip()}\n{END}{tail}', encoding='utf-8')


def command_line(argv: list[str] | None) -> str:
    """This run's command, without ``--readme PATH`` (a temporary copy's path says nothing)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    words, skip = [], False
    for arg in argv:
        if skip or arg.startswith('--readme='):
            skip = False
            continue
        if arg == '--readme':
            skip = True
            continue
        words.append(shlex.quote(arg))
    return ' '.join(['python bench/scale.py'] + words)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--variant', choices=VARIANTS, default='minilm')
    parser.add_argument('--steps', type=int, default=None, help='timed steps (median reported; default 3)')
    parser.add_argument('--warmup', type=int, default=None, help='untimed steps first (default 1)')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--malloc', choices=('tuned', 'default'), default='tuned',
                        help='tuned: glibc keeps freed memory for reuse (see _common.MALLOC_TUNABLES)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--llm', choices=('server', 'offline'), default='server',
                        help='server: the OpenAI-compatible test server (as bench/agent_round.py); '
                             'offline: the offline backend in process')
    parser.add_argument('--latency', type=float, default=None,
                        help="the test server's seconds per request (default 1.0; 0.05 with --quick)")
    parser.add_argument('--quick', action='store_true', help='smoke-test sizes (see the docstring)')
    parser.add_argument('--write-readme', action='store_true', help='write the table into --readme')
    parser.add_argument('--readme', type=Path, default=BENCH / 'README.md')
    parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--kind', choices=('train', 'round'), help=argparse.SUPPRESS)
    parser.add_argument('--batch', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--frames', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--classes', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--round-classes', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps is None:
        args.steps = 1 if args.quick else 3
    if args.warmup is None:
        args.warmup = 0 if args.quick else 1
    if args.latency is None:
        args.latency = 0.05 if args.quick else 1.0
    if args.steps < 1 or args.warmup < 0 or args.threads < 1:
        parser.error('--steps >= 1, --warmup >= 0 and --threads >= 1 please')
    if args.child:
        (train_child if args.kind == 'train' else round_child)(args)
        return 0

    import _common as C

    common = ['--variant', args.variant, '--steps', str(args.steps), '--warmup', str(args.warmup),
              '--threads', str(args.threads), '--device', args.device] + (['--quick'] if args.quick else [])
    env = C.malloc_env(args.malloc)
    started = datetime.datetime.now().astimezone()
    machine_start = C.machine_line()
    print(machine_start)
    setup = (f'variant {args.variant}, float32, device {args.device}, torch threads {args.threads}, '
             f'malloc {args.malloc}, {args.warmup} warm-up + {args.steps} timed steps per row'
             + (', --quick (smoke-test sizes, base_channels 16)' if args.quick else ''))
    print(setup, flush=True)

    train_rows, others_top = [], {}
    base = None
    for label, batch, frames, classes in (QUICK_ROWS if args.quick else FULL_ROWS):
        res = C.run_child(__file__, common + ['--kind', 'train', '--batch', str(batch), '--frames', str(frames),
                                              '--classes', str(classes)], env=env)
        peak = res.get('cuda_peak_gb', res['peak_gb'])
        if base is None:
            base = (res['median_s'], res['cpu_s'], peak)
        for entry in res['others']['top']:
            name, cores = entry.rsplit(' ', 1)
            others_top[name] = max(others_top.get(name, 0.0), float(cores))
        train_rows.append([label, str(batch), str(frames), str(classes), fmt(res['median_s']),
                           fmt(res['median_s'] / base[0]), fmt(res['cpu_s']), fmt(res['cpu_s'] / base[1]),
                           fmt(peak), fmt(peak / base[2]), fmt(res['built_gb']), f'{res["others"]["cores"]:.2f}'])
        print(f'  {label}: {res["median_s"]:.3f} s/step (steps {res["times"]}), peak {peak:.2f} GB, '
              f'loss {res["first_loss"]:.3f}, others {res["others"]["cores"]:.2f}', flush=True)

    counts = QUICK_ROUNDS if args.quick else FULL_ROUNDS
    res = C.run_child(__file__, common + ['--kind', 'round', '--round-classes', ','.join(map(str, counts)),
                                          '--llm', args.llm, '--latency', str(args.latency)], env=env)
    for entry in res['others']['top']:
        name, cores = entry.rsplit(' ', 1)
        others_top[name] = max(others_top.get(name, 0.0), float(cores))
    round_rows = []
    first = res['rounds'][0]['round_s']
    for r in res['rounds']:
        round_rows.append([str(r['classes']), fmt(r['round_s']), fmt(r['round_s'] / first), fmt(r['select_s']),
                           fmt(r['chats_s']), str(r['requests']), fmt(r['selector_s']), fmt(r['report_s']),
                           fmt(r['encode_s']), fmt(r['cpu_s']), f'{res["others"]["cores"]:.2f}'])
        print(f'  round {r["classes"]} classes: {r["summary"]}; {r["updated"]} updated', flush=True)

    llm = (f'the test server at {args.latency:g} s per request through OpenAIChat, max_concurrency '
           f'{res["max_concurrency"]}' if args.llm == 'server' else 'the offline backend in process')
    busiest = ', '.join(f'{name} {cores:.2f}' for name, cores in
                        sorted(others_top.items(), key=lambda kv: -kv[1])[:3] if cores >= 0.005) or 'none'
    lines = [f'{started:%Y-%m-%d %H:%M %Z}: `{command_line(argv)}`', '',
             f'Machine: {machine_start}', '', f'Setup: {setup}.', '',
             'Training step (float32, our default path; time: median wall seconds per step; cpu s: the '
             "process's CPU seconds per step; peak: " + ('CUDA max allocated' if args.device.startswith('cuda')
                                                          else 'peak RSS of the row\'s process') +
             '; built: RSS once the model is built, before the first step; x base: ratio to the base row):', '']
    lines += markdown_table(TRAIN_HEADER, train_rows)
    lines += ['', f'Agent round ({llm}; one round per class count, timed alone, in one process; round s: select '
              '+ chats + selector + report + encode; select: the 10 most confused classes from the C x C '
              'matrix; chats: the follow-up requests; selector: the rest of `run_round` (questions, reading '
              'the answers into the new state); report: `write_round_report`; encode: the new descriptions\' '
              'embeddings, `-` for a trainable text tower; x first: ratio to the first class count):', '']
    lines += markdown_table(ROUND_HEADER, round_rows)
    lines += ['', f'Load: others = cores kept busy by other processes during each row (busiest: {busiest}); '
              f'at the end: {C.machine_line()}.']
    block = '\n'.join(lines)
    print()
    print(block)
    if args.write_readme:
        write_readme(args.readme, block)
        print(f'\nwritten into {args.readme}')
    for row in train_rows + round_rows:
        values = [float(v) for v in row[1:] if v != '-']
        if not all(math.isfinite(v) for v in values):
            print(f'warning: a figure is not finite: {row}', file=sys.stderr)
    return 0


if __name__ == '__main__':
    sys.exit(main())
