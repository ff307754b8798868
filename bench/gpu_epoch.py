"""One training epoch of the NTU-60 joint model on an NTU-60-sized synthetic split, per precision mode.

What runs is the paper config ``configs/ntu60_xsub/j.py`` as ``tools/train.py`` builds it: its
model (GCN_Module_LLM, SimpleHead with all four losses, the skeleton mixup), its train split's
dataset and pipeline (PreNormalize3D, RandomRot, GenSkeFeat, UniformSampleDecode to 100 frames,
...), its DataLoader (DefaultSampler, pose_collate, persistent workers, fork), its optimizer
(SGD, nesterov, lr 0.025 for 16 samples, linear in ``--batch``) through mmengine's optimizer
wrappers, and ``model.train_step`` as mmengine's loop calls it (the loss values are read back
every step, as mmengine's RuntimeInfoHook does). The text tower is CLIP ViT-B/32 sized and
trained with the model, as in the paper, but randomly initialised with the stand-in tokenizer
(``_common.text_encoder_cfg('clip-trainable')``): no CLIP weights can be downloaded here. Not
included: the agent hook (its per-step confusion counting; its LLM rounds run every 5 epochs),
checkpointing, logging and the lr schedule's per-step update.

The data: a PYSKL-format pickle of ``--samples`` samples (split ``xsub_train``), each 2 persons ×
``--frames`` frames × 25 joints × 3 float32 coordinates (random normal, 0.3 m spread), labels
spread evenly over 60 classes. 40,000 samples are 2.4 GB; the file is written once and kept
under ``--data-dir`` (default: the system temp dir) for later runs.

Modes (``--modes``), each in its own process so peaks do not mix:

* ``fp32``     float32
* ``bf16``     ``--amp`` in bfloat16: mmengine's ``AmpOptimWrapper(dtype='bfloat16')`` on CUDA,
  ``AutocastOptimWrapper`` (bfloat16 autocast) on CPU
* ``fp16``     ``--amp`` on CUDA: ``AmpOptimWrapper`` (float16 with dynamic loss scaling); CUDA only
* ``compile``  float32, the backbone under ``torch.compile`` (``--compile``: ``compile_backbone``);
  compilation happens in the first steps and counts in the epoch (see ``first s``)
* ``bf16-compile``, ``fp16-compile``: both

Printed per mode: steps, epoch seconds (from creating the loader's iterator to the end of the
last step, synchronised), samples/s over the epoch, steady samples/s (after the first
``--warmup`` steps: no compilation, no worker start-up), the median step, the first step (with
worker start-up and compilation), the time the loop was blocked in ``next(loader_iter)`` and its
share of the epoch wall time (worker start-up included), peak memory (CUDA:
``torch.cuda.max_memory_allocated`` over the epoch; CPU: the peak RSS of the training process,
dataset loading included, workers not) and the first and last loss. An ETA is printed once the
first steps after the warm-up are timed, and progress every 30 s.

Length: the default (40,000 samples / 16 = 2,500 steps per mode) is meant to fit in 10 minutes
on one H200. Not yet measured on one; estimated: a step is ~5,000 aten calls (forward, backward
and SGD, counted on CPU), so eager steps are bound by the host's launch rate, 15-30 steps/s:
85-170 s per mode, plus ~15-30 s of start-up (loading the 2.4 GB split, CUDA, workers) and
1-3 min of compilation for ``compile`` (the tiny model took 5-6 min on 2 busy CPU cores).
Four modes could take ~8-14 min, so the default on CUDA is ``fp32,bf16,compile`` (~6-12 min);
``--modes fp32,bf16,fp16,compile`` runs all four. The ETA printed ~50 steps into the first mode
says which end it is. ``--max-steps`` caps the steps for a quick look. On a CPU a step of the
full model takes seconds: use ``--max-steps`` (and ``--tiny``).

Workers: ``--workers 8`` by default; the paper config has ``workers_per_gpu=4`` (``--workers 4``
measures that). The training process's CPU threads follow ``tools/train.py``'s rule
(``engine/threads.py``; ``--threads N`` or ``OMP_NUM_THREADS`` win).

Usage: python bench/gpu_epoch.py [--device cuda|cpu] [--modes fp32,bf16,compile] [--samples 40000]
       [--batch 16] [--workers 8] [--max-steps N] [--warmup 20] [--threads N] [--frames 100]
       [--data-dir DIR] [--tiny] [--verbose]
Test-sized: python bench/gpu_epoch.py --device cpu --samples 32 --batch 4 --workers 0
       --modes fp32,bf16 --max-steps 2 --tiny
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / 'configs' / 'ntu60_xsub' / 'j.py'
SPLIT = 'xsub_train'
NUM_CLASSES = 60
JOINTS = 25

#: mode -> (amp setting for ``amp_optim_wrapper_cfg``, torch.compile the backbone)
MODES = {'fp32': (None, False), 'bf16': ('bfloat16', False), 'fp16': ('float16', False),
         'compile': (None, True), 'bf16-compile': ('bfloat16', True), 'fp16-compile': ('float16', True)}
DEFAULT_MODES = {'cuda': 'fp32,bf16,compile', 'cpu': 'fp32,bf16'}

#: ``--tiny``: a narrow backbone and a 2-layer, 32-wide text tower (tests; minutes -> seconds)
TINY_BASE_CHANNELS = 16
TINY_TEXT = dict(vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=2, max_position_embeddings=77, projection_dim=32)

PROGRESS_EVERY_S = 30.0
ETA_AFTER_STEPS = 50      # steps after the warm-up the first ETA is measured on


# -- the synthetic split ------------------------------------------------------------------------
def data_path(data_dir: str | os.PathLike, samples: int, persons: int, frames: int, seed: int = 0) -> Path:
    return Path(data_dir) / f'ntu60_synthetic_{samples}x{persons}x{frames}x{JOINTS}_seed{seed}.pkl'


def write_split(path: Path, samples: int, persons: int, frames: int, seed: int = 0) -> float:
    """Write the PYSKL pickle of the synthetic split (atomically); return the seconds it took.

    One float32 array holds every sample; each annotation's ``keypoint`` is a contiguous view of
    it, which pickle writes without another copy."""
    import numpy as np

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    keypoint = rng.standard_normal((samples, persons, frames, JOINTS, 3), dtype=np.float32)
    keypoint *= 0.3
    labels = rng.permutation(np.arange(samples) % NUM_CLASSES)
    names = [f'S{1 + i // 10000:03d}C001P001R001A{i % 10000:04d}' for i in range(samples)]
    annotations = [dict(frame_dir=names[i], label=int(labels[i]), total_frames=frames, keypoint=keypoint[i])
                   for i in range(samples)]
    data = dict(split={SPLIT: names}, annotations=annotations)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'{path.name}.tmp-{os.getpid()}')
    try:
        with open(tmp, 'wb') as f:
            pickle.dump(data, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return time.perf_counter() - t0


def ensure_split(args: argparse.Namespace) -> tuple[Path, str]:
    """The split's file (written when missing) and a line saying where it came from."""
    path = data_path(args.data_dir, args.samples, 2, args.frames)

    def size() -> str:
        n = path.stat().st_size
        return f'{n / 1e9:.2f} GB' if n >= 1e8 else f'{n / 1e6:.1f} MB'

    if path.is_file():
        return path, f'data: {path} (cached, {size()})'
    seconds = write_split(path, args.samples, 2, args.frames)
    return path, f'data: {path} (written in {seconds:.1f} s, {size()})'


# -- one mode, in a child process ---------------------------------------------------------------
def _text_encoder(tiny: bool) -> tuple[dict, int]:
    """(text_encoder cfg, text_dim): the CLIP-sized trained tower of the paper, random weights."""
    import _common as C

    if not tiny:
        cfg, dim, _ = C.text_encoder_cfg('clip-trainable')
        return cfg, dim
    return dict(type='CLIP', config=TINY_TEXT, tokenizer=C.HashTokenizer(), trainable=True), TINY_TEXT['projection_dim']


def build_model(cfg, tiny: bool):
    """The config's recognizer with the stand-in CLIP tower (``tiny``: narrow backbone, small
    tower), its text encoder built (before the optimizer, as ``build_runner`` does) and the agent
    state installed: pseudo descriptions of the official length and random joint masks."""
    import copy

    import _common as C
    import numpy as np

    import skeletonagent.models  # noqa: F401  (registers the models and text encoders)
    from skeletonagent.registry import MODELS

    model_cfg = copy.deepcopy(cfg.model.to_dict())
    encoder, text_dim = _text_encoder(tiny)
    model_cfg['text_encoder'] = encoder
    model_cfg['backbone']['text_dim'] = text_dim
    if tiny:
        model_cfg['backbone']['base_channels'] = TINY_BASE_CHANNELS
        model_cfg['cls_head']['in_channels'] = 4 * TINY_BASE_CHANNELS
    model = MODELS.build(model_cfg)
    model.init_text_encoder()
    num_classes = model.num_classes
    rng = np.random.default_rng(0)
    masks = (rng.random((num_classes, JOINTS, JOINTS)) > 0.7).astype(np.float32)
    model.set_agent_state(C.class_descriptions(num_classes), masks)
    return model


def _sync(device: str) -> None:
    import torch
    if device == 'cuda':
        torch.cuda.synchronize()


def child(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    import random

    import _common as C
    import numpy as np
    import torch
    import torch.multiprocessing as mp
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner

    from skeletonagent.engine import RunOptions, load_config
    from skeletonagent.engine.optim import amp_optim_wrapper_cfg
    from skeletonagent.engine.runner import compile_backbone
    from skeletonagent.engine.threads import configure_threads
    from skeletonagent.engine.translate import lr_scaling, to_runner_kwargs

    amp, compiled = MODES[args.mode]
    device = args.device
    cfg = load_config(CONFIG, {'data.train.ann_file': args.data, 'data.videos_per_gpu': args.batch,
                               'data.workers_per_gpu': args.workers})
    choice = configure_threads(args.threads, workers=args.workers, cuda=device == 'cuda')
    init_default_scope('skeletonagent')
    # what the runner would get: the train loader (dataset, pipeline, sampler, collate, workers)
    # and the environment (start method of the workers, cudnn.benchmark) its setup_env applies
    kwargs = to_runner_kwargs(cfg, RunOptions(), 'train')
    env = kwargs['env_cfg']
    mp.set_start_method(env['mp_cfg']['mp_start_method'], force=True)
    torch.backends.cudnn.benchmark = bool(env['cudnn_benchmark'])
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    loader = Runner.build_dataloader(kwargs['train_dataloader'], seed=0)
    model = build_model(cfg, args.tiny)
    if compiled:
        compile_backbone(model)
    model = model.to(device)
    optimizer = dict(cfg.optimizer)
    scale = lr_scaling(cfg)
    if scale.get('enable'):
        optimizer['lr'] = optimizer['lr'] * args.batch / scale['base_batch_size']
    wrapper = build_optim_wrapper(model, amp_optim_wrapper_cfg(amp, optimizer, cuda=device == 'cuda'))
    model.train()

    steps = len(loader) if args.max_steps is None else min(len(loader), args.max_steps)
    warmup = min(args.warmup, max(steps - 1, 0))
    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    setup_s = time.perf_counter() - started
    print(f'PROGRESS {json.dumps(dict(kind="start", steps=steps, setup_s=setup_s, threads=choice.line()))}',
          flush=True)

    ends: list[float] = []
    waits: list[float] = []
    losses: list[float] = []
    next_report = None
    _sync(device)
    t_start = time.perf_counter()
    data_iter = iter(loader)          # starts the workers: their start-up counts as waiting
    for i in range(steps):
        t0 = time.perf_counter() if i else t_start
        batch = next(data_iter)
        waits.append(time.perf_counter() - t0)
        log_vars = model.train_step(batch, wrapper)
        values = {k: float(v) for k, v in log_vars.items()}   # mmengine's RuntimeInfoHook reads them
        losses.append(values['loss'])
        now = time.perf_counter()
        ends.append(now)
        timed = i + 1 - warmup
        if i + 1 < steps and timed > 0 and (timed == min(ETA_AFTER_STEPS, steps - warmup - 1)
                                            or (next_report is not None and now >= next_report)):
            rate = timed / (now - ends[warmup - 1]) if warmup else (i + 1) / (now - t_start)
            info = dict(kind='eta', step=i + 1, steps=steps, rate=rate, elapsed=now - t_start,
                        left=(steps - i - 1) / rate, setup_s=setup_s)
            print(f'PROGRESS {json.dumps(info)}', flush=True)
            next_report = now + PROGRESS_EVERY_S
    _sync(device)
    t_end = time.perf_counter()
    del data_iter

    epoch_s = t_end - t_start
    samples = len(loader.dataset) if steps == len(loader) else min(steps * args.batch, len(loader.dataset))
    step_times = [ends[0] - t_start] + [b - a for a, b in zip(ends, ends[1:])]
    steady = None
    if warmup and steps > warmup:
        steady_samples = samples - warmup * args.batch
        steady = dict(samples_per_s=steady_samples / (t_end - ends[warmup - 1]),
                      wait_share=sum(waits[warmup:]) / (t_end - ends[warmup - 1]))
    result = dict(mode=args.mode, device=device, steps=steps, samples=samples, epoch_s=epoch_s,
                  samples_per_s=samples / epoch_s, steady=steady,
                  median_step_s=statistics.median(step_times[warmup:] or step_times),
                  first_step_s=step_times[0], data_wait_s=sum(waits), wait_share=sum(waits) / epoch_s,
                  first_batch_s=waits[0], setup_s=setup_s, loss_first=losses[0], loss_last=losses[-1],
                  lr=optimizer['lr'], workers=args.workers, threads=choice.line(),
                  peak_rss_gb=C.peak_rss_gb(), wrapper=type(wrapper).__name__,
                  params=sum(p.numel() for p in model.parameters()))
    if device == 'cuda':
        result['peak_gb'] = torch.cuda.max_memory_allocated() / 1e9
        result['peak_kind'] = 'cuda'
    else:
        result['peak_gb'] = result['peak_rss_gb']
        result['peak_kind'] = 'rss'
    C.emit(result)


# -- the parent ---------------------------------------------------------------------------------
def run_mode(args: argparse.Namespace, mode: str, data: Path, remaining: int) -> dict:
    """Run one mode in a fresh interpreter, echoing its progress; return its result (as
    ``_common.run_child``, but reading the child's output as it comes)."""
    import _common as C

    cmd = [sys.executable, __file__, '--child', '--mode', mode, '--data', str(data), '--device', args.device,
           '--batch', str(args.batch), '--workers', str(args.workers), '--warmup', str(args.warmup),
           '--frames', str(args.frames)]
    cmd += ['--max-steps', str(args.max_steps)] if args.max_steps is not None else []
    cmd += ['--threads', str(args.threads)] if args.threads is not None else []
    cmd += ['--tiny'] if args.tiny else []
    before = C.cpu_snapshot()
    lines: list[str] = []
    result = None
    with tempfile.TemporaryFile(mode='w+') as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, bufsize=1)
        for line in proc.stdout:
            line = line.rstrip('\n')
            if line.startswith('RESULT '):
                result = json.loads(line[len('RESULT '):])
            elif line.startswith('PROGRESS '):
                show_progress(mode, json.loads(line[len('PROGRESS '):]), remaining)
            else:
                lines.append(line)
                if args.verbose:
                    print(f'  [{mode}] {line}', flush=True)
        proc.wait()
        err.seek(0)
        stderr = err.read()
    if proc.returncode != 0 or result is None:
        out = '\n'.join(lines[-40:])
        raise RuntimeError(f'mode {mode} failed (exit {proc.returncode}):\n{out}\n{stderr[-6000:]}')
    if args.verbose and stderr.strip():
        print('\n'.join(f'  [{mode}] {ln}' for ln in stderr.strip().splitlines()[-20:]))
    result['others'] = C.other_cpu_use(before, C.cpu_snapshot(), exclude={os.getpid(), proc.pid})
    return result


def show_progress(mode: str, info: dict, remaining: int) -> None:
    """One line per progress report of a child; the ETA of the whole run assumes the other
    modes take as long as this one (compilation comes on top)."""
    if info['kind'] == 'start':
        print(f'  [{mode}] set up in {info["setup_s"]:.1f} s; {info["steps"]} steps; threads: {info["threads"]}',
              flush=True)
        return
    this_mode = info['left']
    whole = info['setup_s'] + info['elapsed'] + this_mode
    total = this_mode + remaining * whole
    print(f'  [{mode}] step {info["step"]}/{info["steps"]}: {info["rate"]:.1f} steps/s, '
          f'this mode ends in ~{this_mode:.0f} s, all modes in ~{total:.0f} s'
          + (f' ({remaining} more at ~{whole:.0f} s each)' if remaining else ''), flush=True)


def fmt(value: float | None, width: int, digits: int) -> str:
    return f'{value:{width}.{digits}f}' if value is not None and math.isfinite(value) else f'{"-":>{width}s}'


HEADER = (f'{"mode":12s} {"steps":>6s} {"samples":>8s} {"epoch s":>8s} {"samples/s":>10s} {"steady/s":>9s} '
          f'{"step ms":>8s} {"first s":>8s} {"wait s":>7s} {"wait share":>10s} {"peak GB":>8s} '
          f'{"loss first->last":>17s}  {"others":>6s}')


def row(res: dict) -> str:
    steady = (res.get('steady') or {}).get('samples_per_s')
    loss = f'{res["loss_first"]:.3f}->{res["loss_last"]:.3f}'
    return (f'{res["mode"]:12s} {res["steps"]:6d} {res["samples"]:8d} {res["epoch_s"]:8.2f} '
            f'{res["samples_per_s"]:10.2f} {fmt(steady, 9, 2)} {res["median_step_s"] * 1e3:8.1f} '
            f'{res["first_step_s"]:8.2f} {res["data_wait_s"]:7.2f} {res["wait_share"]:10.3f} '
            f'{res["peak_gb"]:8.2f} {loss:>17s}  {res["others"]["cores"]:6.2f}')


def versions_line(device: str) -> str:
    import torch

    cuda = torch.version.cuda or 'none'
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    line = f'torch {torch.__version__}, CUDA {cuda}, cuDNN {cudnn or "none"}'
    if device == 'cuda':
        line += f', GPU: {torch.cuda.get_device_name(0)} ({torch.cuda.device_count()} visible)'
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--samples', type=int, default=40000, help='samples in the synthetic split')
    parser.add_argument('--batch', type=int, default=16, help='samples per step (the config: 16 per GPU)')
    parser.add_argument('--workers', type=int, default=8, help='DataLoader workers (the config: 4)')
    parser.add_argument('--modes', default=None,
                        help=f'comma-separated, of {",".join(MODES)} (default: {DEFAULT_MODES["cuda"]} on CUDA, '
                             f'{DEFAULT_MODES["cpu"]} on CPU)')
    parser.add_argument('--device', choices=('cuda', 'cpu'), default=None, help='default: cuda when available')
    parser.add_argument('--max-steps', type=int, default=None, help='stop each epoch after this many steps')
    parser.add_argument('--warmup', type=int, default=20, help='steps left out of the steady figures')
    parser.add_argument('--threads', type=int, default=None,
                        help="CPU threads of the training process (default: tools/train.py's rule)")
    parser.add_argument('--frames', type=int, default=100, help='frames per sample in the synthetic split')
    parser.add_argument('--data-dir', default=os.path.join(tempfile.gettempdir(), 'skeletonagent_gpu_epoch'),
                        help='where the synthetic split is written and reused')
    parser.add_argument('--tiny', action='store_true',
                        help=f'backbone base_channels {TINY_BASE_CHANNELS} and a 2-layer 32-wide text tower (tests)')
    parser.add_argument('--verbose', action='store_true', help="show the children's own log lines")
    parser.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--mode', default=None, help=argparse.SUPPRESS)
    parser.add_argument('--data', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name in ('samples', 'batch', 'frames'):
        if getattr(args, name) <= 0:
            parser.error(f'--{name} must be positive')
    if args.workers < 0 or args.warmup < 0 or (args.max_steps is not None and args.max_steps <= 0) \
            or (args.threads is not None and args.threads <= 0):
        parser.error('--workers and --warmup must be >= 0, --max-steps and --threads > 0')
    if args.child:
        child(args)
        return

    import _common as C
    import torch

    if args.device is None:
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device is available')
    modes = (args.modes or DEFAULT_MODES[args.device]).split(',')
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f'unknown modes {unknown}; known: {", ".join(MODES)}')
    if args.device == 'cpu' and any(MODES[m][0] == 'float16' for m in modes):
        parser.error('fp16 needs CUDA (loss scaling); on CPU use bf16')

    print(C.machine_line())
    print(versions_line(args.device))
    data, line = ensure_split(args)
    print(line)
    steps = math.ceil(args.samples / args.batch)
    if args.max_steps is not None:
        steps = min(steps, args.max_steps)
    print(f'{CONFIG.relative_to(ROOT)}{" (--tiny)" if args.tiny else ""}: device {args.device}, '
          f'{args.samples} samples, batch {args.batch} (x2 with the mixup), {args.workers} workers, '
          f'{steps} steps per mode, modes {",".join(modes)}, '
          f'warm-up {min(args.warmup, max(steps - 1, 0))} steps (left out of steady/s)', flush=True)
    results = []
    for i, mode in enumerate(modes):
        results.append(run_mode(args, mode, data, remaining=len(modes) - i - 1))
    first = results[0]
    print(f'lr {first["lr"]:g}, {first["params"] / 1e6:.1f} M parameters, threads: {first["threads"]}; '
          f'peak GB: {"torch.cuda.max_memory_allocated" if first["peak_kind"] == "cuda" else "peak RSS"}; '
          'wait: time blocked in next(loader_iter), share of the epoch wall time')
    print(HEADER)
    for res in results:
        print(row(res))
    print(f'others: cores kept busy by other processes during each mode; now: {C.machine_line()}')


if __name__ == '__main__':
    main()
