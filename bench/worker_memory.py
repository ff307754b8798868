"""DataLoader worker memory: PoseDataset's per-sample dicts against its serialized buffer.

    python bench/worker_memory.py                      # 56k samples, 8 workers, both modes
    python bench/worker_memory.py --old-tree /tmp/old  # plus a column for another checkout

A synthetic PYSKL pickle of ``--samples`` annotations (NTU's fields: frame_dir, label,
total_frames, img_shape, original_shape and a small keypoint array: it is the per-sample
Python objects that matter here, not the arrays) is read by ``PoseDataset`` with
``serialize_data=False`` (the annotations stay a list of dicts, as PoseDataset kept them
before it stood on mmengine's BaseDataset) and with ``serialize_data=True`` (one pickled
byte buffer, mmengine's scheme). Each mode runs in its own process: a DataLoader with
``--workers`` forked workers goes through the dataset ``--epochs`` times with a short real
pipeline, then each worker's memory is read from ``/proc/<pid>/smaps_rollup``: USS (its
private pages: ``Private_Clean + Private_Dirty``) and PSS (private plus its share of the
pages it still shares). A forked worker touching a Python object writes its reference count
(and the cyclic GC writes every container's header), so the page holding it gets copied
into the worker: with dicts, each worker ends up holding its own copy of most of them.

Threads are pinned to one (``OMP_NUM_THREADS=1``, ``torch.set_num_threads(1)``); the load
average and the busiest other processes are printed before and after, since other work on
the machine changes the timings (not the memory figures).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = {'dicts': 'dicts (serialize=False)', 'serialized': 'serialized (True)'}


def make_pickle(path: Path, num_samples: int) -> Path:
    """A PYSKL-format pickle of ``num_samples`` small NTU-like samples (deterministic)."""
    import numpy as np
    rng = np.random.default_rng(0)
    annotations = []
    for i in range(num_samples):
        frames = int(rng.integers(4, 9))
        keypoint = rng.normal(size=(1, frames, 25, 3)).astype(np.float32)
        annotations.append(dict(
            frame_dir=f'S{1 + i % 32:03d}C{1 + i % 3:03d}P{1 + i % 106:03d}R{1 + i % 2:03d}'
                      f'A{1 + i % 60:03d}_{i:06d}',
            label=i % 60, total_frames=frames, img_shape=(1080, 1920),
            original_shape=(1080, 1920), keypoint=keypoint))
    names = [a['frame_dir'] for a in annotations]
    path.write_bytes(pickle.dumps(dict(split=dict(train=names), annotations=annotations),
                                  protocol=pickle.HIGHEST_PROTOCOL))
    return path


def _memory(pid: int) -> dict[str, float]:
    """USS, PSS and RSS of ``pid`` in MiB (``/proc/<pid>/smaps_rollup``)."""
    fields = {}
    with open(f'/proc/{pid}/smaps_rollup') as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[2] == 'kB':
                fields[parts[0].rstrip(':')] = int(parts[1]) / 1024
    return dict(uss=fields['Private_Clean'] + fields['Private_Dirty'], pss=fields['Pss'],
                rss=fields['Rss'])


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat') as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(')', 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return sorted(out)


def _full_gc_pass(worker_id: int) -> None:
    """What Python's cyclic GC does now and then in a long run: visit every container."""
    gc.collect()


def run_child(args: argparse.Namespace) -> dict:
    """One mode in this process: load, iterate with workers, measure; a JSON-able dict."""
    import torch
    from torch.utils.data import DataLoader

    from skeletonagent.datasets import PoseDataset, pose_collate
    torch.set_num_threads(1)
    pipeline = [dict(type='UniformSampleDecode', clip_len=4),
                dict(type='FormatGCNInput', num_person=1),
                dict(type='Collect', keys=['keypoint', 'label'], meta_keys=[]),
                dict(type='ToTensor', keys=['keypoint'])]
    kwargs = {} if args.mode == 'old' else dict(serialize_data=args.mode == 'serialized')
    parent_before = _memory(os.getpid())
    start = time.perf_counter()
    dataset = PoseDataset(args.ann_file, pipeline, split='train', **kwargs)
    load_s = time.perf_counter() - start
    parent_loaded = _memory(os.getpid())
    loader = DataLoader(dataset, batch_size=64, shuffle=True, num_workers=args.workers,
                        collate_fn=pose_collate, persistent_workers=True,
                        multiprocessing_context='fork',
                        worker_init_fn=_full_gc_pass if args.gc else None)
    start = time.perf_counter()
    seen = 0
    for _ in range(args.epochs):
        for batch in loader:
            seen += len(batch['label'])
    iterate_s = time.perf_counter() - start
    workers = [_memory(pid) for pid in _children(os.getpid())]
    if len(workers) != args.workers:
        raise RuntimeError(f'found {len(workers)} worker processes, expected {args.workers}')
    return dict(mode=args.mode, module=sys.modules['skeletonagent'].__file__,
                samples=len(dataset), seen=seen, load_s=load_s, iterate_s=iterate_s,
                parent_before_uss=parent_before['uss'], parent_uss=parent_loaded['uss'],
                workers=workers)


def _load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f'load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs'


def _busy_processes(limit: int = 5) -> str:
    """The busiest other processes (ps), to say what else ran."""
    try:
        out = subprocess.run(['ps', '-eo', 'pcpu,pid,comm', '--sort=-pcpu'], text=True,
                             capture_output=True, timeout=10).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return 'ps unavailable'
    rows = [row.split(None, 2) for row in out[1:]]
    rows = [r for r in rows if len(r) == 3 and int(r[1]) != os.getpid()][:limit]
    return ', '.join(f'{comm} {cpu}%' for cpu, _pid, comm in rows)


def _row(label: str, values: list[str]) -> str:
    return f'{label:<34}' + ''.join(f'{v:>24}' for v in values)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--samples', type=int, default=56_000)
    parser.add_argument('--workers', type=int, default=8)
    parser.add_argument('--epochs', type=int, default=1)
    parser.add_argument('--old-tree', help='also measure the PoseDataset of this checkout '
                                           '(e.g. a `git worktree add /tmp/old <commit>`)')
    parser.add_argument('--json', help='write the figures here too')
    parser.add_argument('--no-gc-pass', action='store_true',
                        help='skip the second run of each mode (a full GC pass per worker)')
    parser.add_argument('--mode', choices=[*MODES, 'old'], help=argparse.SUPPRESS)
    parser.add_argument('--gc', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--ann-file', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mode:                                  # a child: one mode, JSON on stdout
        print(json.dumps(run_child(args)))
        return

    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    print(_load_line() + '; busiest processes: ' + _busy_processes())
    results, titles = [], []
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        ann_file = make_pickle(Path(tmp) / 'synthetic.pkl', args.samples)
        print(f'{args.samples} samples, {ann_file.stat().st_size / 2**20:.1f} MiB pickle '
              f'(made in {time.perf_counter() - start:.1f} s); {args.workers} workers, '
              f'{args.epochs} epoch(s), batch 64')
        runs = [(mode, str(ROOT), title) for mode, title in MODES.items()]
        if args.old_tree:
            runs.insert(0, ('old', str(Path(args.old_tree).resolve()),
                            f'tree {Path(args.old_tree).name}'))
        for mode, tree, title in runs:
            child_env = dict(env, PYTHONPATH=tree)
            result = {}
            for gc_pass in (False,) if args.no_gc_pass else (False, True):
                proc = subprocess.run([sys.executable, __file__, '--mode', mode, '--ann-file',
                                       str(ann_file), '--workers', str(args.workers),
                                       '--epochs', str(args.epochs)]
                                      + (['--gc'] if gc_pass else []),
                                      capture_output=True, text=True, env=child_env, cwd=tmp)
                if proc.returncode != 0:
                    raise SystemExit(f'{title} failed:\n{proc.stderr[-3000:]}')
                one = json.loads(proc.stdout.strip().splitlines()[-1])
                if not one['module'].startswith(tree):
                    raise SystemExit(f'{title} imported {one["module"]}, not from {tree}')
                result['gc' if gc_pass else 'plain'] = one
            results.append(result)
            titles.append(title)

    def mean(values):
        return sum(values) / len(values)

    def workers(run, key, how):
        return how([w[key] for w in run['workers']])

    print()
    print(_row('', titles))
    plain = [r['plain'] for r in results]
    print(_row('parent USS before loading (MiB)', [f'{r["parent_before_uss"]:.1f}' for r in plain]))
    print(_row('parent USS after loading (MiB)', [f'{r["parent_uss"]:.1f}' for r in plain]))
    for run, when in (('plain', f'after {args.epochs} epoch(s)'),
                      ('gc', 'with a full GC pass per worker')):
        if args.no_gc_pass and run == 'gc':
            continue
        print(f'-- {when}')
        runs = [r[run] for r in results]
        for key, name in (('uss', 'USS'), ('pss', 'PSS')):
            print(_row(f'worker {name} mean / max (MiB)',
                       [f'{workers(r, key, mean):.1f} / {workers(r, key, max):.1f}'
                        for r in runs]))
        print(_row(f'sum of {args.workers} workers\' USS (MiB)',
                   [f'{workers(r, "uss", sum):.1f}' for r in runs]))
        print(_row('parent + workers USS (MiB)',
                   [f'{r["parent_uss"] + workers(r, "uss", sum):.1f}' for r in runs]))
        print(_row('load / iterate (s)', [f'{r["load_s"]:.1f} / {r["iterate_s"]:.1f}'
                                          for r in runs]))
    print()
    print(_load_line() + '; busiest processes: ' + _busy_processes())
    if args.json:
        Path(args.json).write_text(json.dumps(dict(titles=titles, results=results), indent=1))


if __name__ == '__main__':
    main()
