"""Shared helpers of the model benchmarks (train_step.py, inference.py)."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import zlib
from typing import Any, Callable

import numpy as np
import torch

#: glibc settings for training processes (``--malloc tuned``): the ones ``tools/train.py``
#: restarts itself with (``skeletonagent.utils.malloc``: freed activations stay in the heap)
from skeletonagent.utils.malloc import MALLOC_TUNABLES

#: the official NTU-60 joint config (configs/ntu60_xsub/j.py of the official repository)
NTU_J_BACKBONE = dict(
    type='GCN_Module_LLM', llm_model='gpt4o', llm_modality='j', num_classes=60,
    tcn_ms_cfg=[(3, 1), (3, 2), (3, 3), (3, 4), ('max', 3), '1x1'],
    graph_cfg=dict(layout='nturgb+d', mode='random', num_filter=8, init_off=.04, init_std=.02))
NTU_J_HEAD = dict(type='SimpleHead', joint_cfg='nturgb+d', num_classes=60, in_channels=384,
                  work_dir='./work_dirs/ntu60_xsub/j', interval_epoch=5, weight_1=0.2, weight_2=0.5)

#: CLIP ViT-B/32 text tower shape (CLIPTextConfig defaults), randomly initialised
CLIP_B32_TEXT = dict(vocab_size=49408, hidden_size=512, intermediate_size=2048, num_hidden_layers=12,
                     num_attention_heads=8, max_position_embeddings=77, projection_dim=512)


class HashTokenizer:
    """Stand-in for ``CLIPTokenizer`` when no vocabulary files are available: words are hashed
    into the vocabulary (CRC-32: the same ids in every process, unlike ``hash``), wrapped in
    CLIP's BOS/EOS ids, truncated and padded like the real one."""

    def __init__(self, vocab_size: int = 49408, bos: int = 49406, eos: int = 49407, pad: int = 0) -> None:
        self.vocab_size, self.bos, self.eos, self.pad = vocab_size, bos, eos, pad

    def __call__(self, texts: list[str], padding: bool = True, truncation: bool = True, max_length: int = 77,
                 return_tensors: str = 'pt') -> dict[str, torch.Tensor]:
        rows = []
        for text in texts:
            ids = [zlib.crc32(w.encode()) % (self.vocab_size - 3) + 1 for w in text.lower().split()]
            rows.append([self.bos] + ids[:max_length - 2] + [self.eos])
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            input_ids[i, :len(r)] = torch.tensor(r)
            mask[i, :len(r)] = 1
        return dict(input_ids=input_ids, attention_mask=mask)


def class_descriptions(num_classes: int, words: int | None = None, seed: int = 0) -> list[str]:
    """Pseudo class descriptions of the official length: the official GPT-4o answers for NTU-60
    are one sentence of 23-51 words (median 34; the official ``clip.tokenize`` refuses more
    than 77 tokens), about 45 CLIP tokens. Here each class gets ~1.3 x N(34, 6) words, clipped
    to 30-66 (the stand-in tokenizers give one token per word), or ``words`` each."""
    rng = np.random.default_rng(seed)
    vocab = ('the person raises left right arm hand wrist elbow shoulder knee foot leg head torso bends '
             'twists moves slowly quickly towards away from body while keeping other joints still and '
             'then returns to the starting position repeating motion forward backward upward downward').split()
    counts = [words] * num_classes if words is not None else \
        np.clip(np.round(1.3 * rng.normal(34, 6, num_classes)), 30, 66).astype(int).tolist()
    return [f'class {i}: ' + ' '.join(rng.choice(vocab, n)) for i, n in enumerate(counts)]


def text_encoder_cfg(variant: str) -> tuple[dict, int, str]:
    """(text_encoder cfg, text_dim, text_key) of a benchmark variant."""
    if variant == 'minilm':
        return dict(type='MiniLM', trainable=False), 384, 'MiniLM'
    if variant == 'clip-frozen':
        return dict(type='CLIP', config=CLIP_B32_TEXT, tokenizer=HashTokenizer(), trainable=False), 512, 'ViT-B/32'
    if variant == 'clip-trainable':
        return dict(type='CLIP', config=CLIP_B32_TEXT, tokenizer=HashTokenizer(), trainable=True), 512, 'ViT-B/32'
    raise ValueError(f'unknown variant {variant!r}')


def build_ntu_model(variant: str = 'minilm', device: str = 'cpu', with_text: bool = True, num_classes: int = 60,
                    **backbone: Any):
    """The official NTU-60 joint recognizer with the text encoder of ``variant``, ``num_classes``
    classes (pseudo descriptions and random masks for each); ``backbone`` adds or overrides
    backbone arguments (``with_cp=True``, ``base_channels=16`` for a narrow test model)."""
    import skeletonagent.models  # noqa: F401  (registers the models)
    from skeletonagent.registry import MODELS

    enc_cfg, text_dim, text_key = text_encoder_cfg(variant)
    bb = dict(NTU_J_BACKBONE, text_dim=text_dim, text_key=text_key, num_classes=num_classes)
    bb.update(backbone)
    head = dict(NTU_J_HEAD, num_classes=num_classes, in_channels=4 * bb.get('base_channels', 96))
    cfg = dict(type='RecognizerGCN', backbone=bb, cls_head=head, train_cfg=None, test_cfg=None, text_encoder=enc_cfg)
    np.random.seed(0)                  # the graph's 'random' adjacency draws from numpy
    model = MODELS.build(cfg).to(device)
    if with_text:
        rng = np.random.default_rng(0)
        masks = (rng.random((num_classes, 25, 25)) > 0.7).astype(np.float32)
        model.set_agent_state(class_descriptions(num_classes), masks)
        model.init_text_encoder(device)
    return model


def malloc_env(mode: str) -> dict:
    """Environment for a child process: ``tuned`` adds :data:`MALLOC_TUNABLES`."""
    if mode != 'tuned':
        return {}
    current = os.environ.get('GLIBC_TUNABLES')
    return {'GLIBC_TUNABLES': f'{current}:{MALLOC_TUNABLES}' if current else MALLOC_TUNABLES}


def peak_rss_gb() -> float:
    """Peak resident memory of this process (GB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def sync(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: str) -> float:
    return timed_cpu(fn, device)[0]


def timed_cpu(fn: Callable[[], Any], device: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of ``fn()``. With one thread the CPU time is
    the work done whatever else runs on the machine (it stops while the process waits for a
    core); with more, it also counts the threads' spin-waits."""
    sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    sync(device)
    return time.perf_counter() - t0, time.process_time() - c0


def run_child(script: str, args: list[str], env: dict | None = None) -> dict:
    """Run ``script --child args`` in a fresh interpreter (so peaks do not mix); return its JSON,
    with ``others``: what other processes ran meanwhile (:func:`other_cpu_use`)."""
    before = cpu_snapshot()
    proc = subprocess.Popen([sys.executable, script, '--child', *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
    stdout, stderr = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f'{script} {" ".join(args)} failed:\n{stdout}\n{stderr}')
    lines = [ln for ln in stdout.splitlines() if ln.startswith('RESULT ')]
    if not lines:
        raise RuntimeError(f'{script} {" ".join(args)} printed no result:\n{stdout}\n{stderr}')
    result = json.loads(lines[-1][len('RESULT '):])
    result['others'] = other_cpu_use(before, cpu_snapshot(), exclude={os.getpid(), proc.pid})
    return result


# -- what else ran ---------------------------------------------------------------------------
def cpu_snapshot() -> dict:
    """Wall time, the machine's busy CPU time (/proc/stat), this process's finished children's
    CPU time, and ``pid -> (command name, CPU seconds)`` of every running process (Linux)."""
    hz = os.sysconf('SC_CLK_TCK')
    busy = 0.0
    try:
        with open('/proc/stat') as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        busy = (sum(fields) - fields[3] - fields[4]) / hz          # all but idle and iowait
    except (OSError, ValueError, IndexError):
        pass
    procs = {}
    for entry in os.listdir('/proc') if os.path.isdir('/proc') else []:
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/stat') as f:
                raw = f.read()
        except OSError:
            continue
        name = raw[raw.index('(') + 1:raw.rindex(')')]
        fields = raw[raw.rindex(')') + 2:].split()
        procs[int(entry)] = (name, (int(fields[11]) + int(fields[12])) / hz)    # utime + stime
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return dict(wall=time.perf_counter(), busy=busy, children=children.ru_utime + children.ru_stime,
                procs=procs)


def other_cpu_use(before: dict, after: dict, exclude: set[int]) -> dict:
    """Between two :func:`cpu_snapshot`: the cores other processes kept busy on average (the
    machine's busy time less the benchmark's own child), and the three busiest commands still
    running at the end (short-lived ones, e.g. test subprocesses, count in ``cores`` only)."""
    seconds = max(after['wall'] - before['wall'], 1e-9)
    own = after['children'] - before['children']
    cores = max(after['busy'] - before['busy'] - own, 0.0) / seconds
    by_name: dict[str, float] = {}
    for pid, (name, t) in after['procs'].items():
        if pid not in exclude:
            used = t - before['procs'].get(pid, (name, 0.0))[1]
            if used > 0:
                by_name[name] = by_name.get(name, 0.0) + used
    top = sorted(by_name.items(), key=lambda kv: -kv[1])[:3]
    return dict(cores=round(cores, 2), top=[f'{name} {used / seconds:.2f}' for name, used in top])


def machine_line() -> str:
    """CPU model, cores and the load average (1/5/15 min)."""
    model = 'unknown CPU'
    try:
        with open('/proc/cpuinfo') as f:
            model = next((ln.split(':', 1)[1].strip() for ln in f if ln.startswith('model name')), model)
    except OSError:
        pass
    load = ' '.join(f'{x:.2f}' for x in os.getloadavg()) if hasattr(os, 'getloadavg') else '?'
    return f'{model}, {os.cpu_count()} cores, torch {torch.__version__}, load average {load}'


def emit(result: dict) -> None:
    print('RESULT ' + json.dumps(result), flush=True)
