"""How a run starts, grows and ends: CPU threads, a resumed run of another length (the lr
schedule and the agent's rounds follow the new length), the summary a run ends with, and
Ctrl-C / SIGTERM (one line naming ``--resume auto``).

The unit tests check the rules with hand-computed figures; the end-to-end tests run
``tools/train.py`` on a tiny demo pickle, as a user would.
"""
import json
import math
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from skeletonagent.engine.checkpoint import load_checkpoint_file
from skeletonagent.engine.hooks import describe_schedule, read_val_history, replay_schedulers
from skeletonagent.engine.summary import best_record, fusion_command, summary_lines
from skeletonagent.engine.threads import ThreadChoice, busy_cpus, choose_threads, usable_cpus

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / 'configs' / 'demo' / 'j.py'


# -- threads ------------------------------------------------------------------------------------
def _auto(**kw):
    base = dict(env={}, cpus=2, machine_cpus=2, busy=0, current=2, load='load average 0')
    base.update(kw)
    return choose_threads(**base)


def test_threads_given_on_the_command_line_win():
    choice = _auto(requested=3, env={'OMP_NUM_THREADS': '1'})
    assert (choice.threads, choice.source) == (3, '--threads')
    with pytest.raises(ValueError, match='--threads must be a positive number'):
        _auto(requested=0)


def test_omp_num_threads_wins_over_the_automatic_choice():
    choice = _auto(env={'OMP_NUM_THREADS': '1'}, busy=0)
    assert (choice.threads, choice.source) == (1, 'OMP_NUM_THREADS')
    assert 'OMP_NUM_THREADS=1' in choice.line()
    # not a number: ignored, as OpenMP ignores it
    assert _auto(env={'OMP_NUM_THREADS': 'many'}).source == 'automatic'


def test_gpu_runs_keep_torch_default():
    assert _auto(cuda=True, current=7).threads == 7


@pytest.mark.parametrize('cpus,busy,local,workers,expected', [
    (2, 0, 1, 1, 2),      # quiet 2-core machine: both cores (1.3 s a demo step, not 2.1 s)
    (2, 1, 1, 1, 1),      # one other CPU-bound process: one thread (2 s, not 20 s)
    (2, 5, 1, 0, 1),      # never fewer than one
    (8, 0, 2, 0, 4),      # torchrun, 2 processes on the node: half each
    (16, 0, 1, 2, 15),    # a large share leaves one core to the data workers
    (16, 0, 1, 0, 16),    # ... when there are any
    (16, 2, 2, 4, 7),     # (16 - 2) // 2 = 7: below 8, no core kept for workers
    (4, None, 1, 1, 4),   # others unknown (not the whole machine): the usable CPUs
])
def test_automatic_threads(cpus, busy, local, workers, expected):
    choice = _auto(cpus=cpus, machine_cpus=cpus, busy=busy, workers=workers,
                   env={'LOCAL_WORLD_SIZE': str(local)})
    assert choice.source == 'automatic'
    assert choice.threads == expected
    assert f'{cpus} usable CPU' in choice.reason and 'load average' in choice.reason


def test_busy_cpus_is_the_median_runnable_count_less_this_process():
    readings = iter([3, 2, 9, 2, 3])
    assert busy_cpus(samples=5, interval=0, read=lambda: next(readings)) == 2   # median 3 - 1
    assert busy_cpus(samples=3, interval=0, read=lambda: 1) == 0
    assert busy_cpus(samples=3, interval=0, read=lambda: None) is None


def test_others_are_not_counted_when_the_process_has_part_of_the_machine():
    # a pinned run or a container on a large host: the runnable count is the host's
    choice = choose_threads(env={}, cpus=2, machine_cpus=64, current=64, load='load average 40')
    assert choice.threads == 2 and 'others not counted' in choice.reason


def test_usable_cpus_follows_affinity_and_quota(monkeypatch):
    from skeletonagent.engine import threads
    monkeypatch.setattr(threads.os, 'sched_getaffinity', lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(threads, '_cgroup_quota', lambda: None)
    assert usable_cpus() == 4
    monkeypatch.setattr(threads, '_cgroup_quota', lambda: 1.5)
    assert usable_cpus() == 1


def test_thread_choice_line():
    assert ThreadChoice(1, '--threads', 'given').line() == '1 (--threads: given)'


@pytest.mark.parametrize('requested, cpus, local, expected', [
    (4, 2, 1, 2),      # the paper configs' 4 workers on a 2-CPU machine: 2
    (4, 16, 1, 4),     # as the config asks when the machine has them
    (4, 16, 8, 2),     # 8 ranks on 16 CPUs: 2 each
    (2, 1, 1, 1),      # at least one
    (0, 8, 1, 0),      # none asked: none
])
def test_dataloader_workers_follow_the_cpus(requested, cpus, local, expected):
    from skeletonagent.engine.threads import choose_workers
    workers, line = choose_workers(requested, cpus=cpus, local_processes=local)
    assert workers == expected
    assert line.startswith(f'{expected} ')
    if expected < requested:
        assert f'the config asks {requested}' in line


def test_tools_refuse_a_thread_count_that_is_not_positive():
    proc = subprocess.run([sys.executable, 'tools/train.py', str(CONFIG), '--threads', '0'],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == \
        "train.py: error: argument --threads: a positive number of threads, not '0'"


# -- the lr schedule of a resumed run of another length -----------------------------------------
def _schedulers(epochs, epoch_length, warmup=0):
    from mmengine.optim.scheduler import CosineAnnealingLR, LinearLR
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1, momentum=0.9)
    out = []
    if warmup:
        out.append(LinearLR(optimizer, start_factor=0.1, by_epoch=False, begin=0, end=warmup))
    out.append(CosineAnnealingLR.build_iter_from_epoch(
        optimizer, T_max=epochs, eta_min=0, begin=0, end=epochs, by_epoch=True,
        epoch_length=epoch_length))
    return optimizer, out


def _step(optimizer, schedulers, iters):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        for _ in range(iters):
            optimizer.step()
            for s in schedulers:
                s.step()


@pytest.mark.parametrize('warmup', [0, 3])
def test_replayed_schedule_is_the_fresh_run_at_that_iteration(warmup):
    # a run of 6 epochs x 2 iterations resumed at iteration 8 (after epoch 4)
    reference_opt, reference = _schedulers(6, 2, warmup)
    _step(reference_opt, reference, 8)
    optimizer, schedulers = _schedulers(6, 2, warmup)
    optimizer.param_groups[0]['lr'] = 0.0038   # what the checkpoint's 4-epoch schedule held
    replay_schedulers(schedulers, iters=8, epochs=4)
    lr = optimizer.param_groups[0]['lr']
    assert lr == pytest.approx(reference_opt.param_groups[0]['lr'], rel=1e-12)
    if not warmup:
        assert lr == pytest.approx(0.1 * (1 + math.cos(math.pi * 8 / 12)) / 2)   # 0.025
    # and it goes on as the fresh run does, to the last iteration's lr (mmengine's cosine
    # stops stepping at T_max: the last iteration runs at cos(pi * 11/12))
    _step(optimizer, schedulers, 4)
    _step(reference_opt, reference, 4)
    assert optimizer.param_groups[0]['lr'] == pytest.approx(reference_opt.param_groups[0]['lr'])
    if not warmup:
        assert optimizer.param_groups[0]['lr'] == \
            pytest.approx(0.1 * (1 + math.cos(math.pi * 11 / 12)) / 2)     # 0.0017


def test_schedule_in_words():
    _, schedulers = _schedulers(6, 2, warmup=3)
    assert describe_schedule(schedulers, 2) == \
        'warms up linearly over iterations 0-3, then anneals to 0 at epoch 6'


# -- the summary ---------------------------------------------------------------------------------
HISTORY = [{'epoch': 1, 'acc/top1': 0.5, 'acc/top5': 0.9, 'acc/mean1': 0.45},
           {'epoch': 2, 'acc/top1': 0.75, 'acc/top5': 1.0, 'acc/mean1': 0.7},
           {'epoch': 3, 'acc/top1': 0.75, 'acc/top5': 0.95, 'acc/mean1': 0.74}]


def test_best_record_keeps_the_first_best():
    assert best_record(HISTORY)['epoch'] == 2
    assert best_record([]) is None


def _stream_folder(tmp_path):
    configs = tmp_path / 'configs' / 'toy'
    configs.mkdir(parents=True)
    for stream in ('j', 'b', 'jm'):
        (configs / f'{stream}.py').write_text('')
    (configs / 'notes.py').write_text('')
    work = tmp_path / 'work_dirs' / 'toy' / 'j'
    work.mkdir(parents=True)
    (tmp_path / 'work_dirs' / 'toy' / 'b').mkdir()
    (tmp_path / 'work_dirs' / 'toy' / 'b' / 'best_pred.pkl').write_bytes(b'')
    from mmengine.config import Config
    cfg = Config(dict(data=dict(test=dict(ann_file='data/toy.pkl', split='xsub_val'))),
                 filename=str(configs / 'j.py'))
    return cfg, work


def test_fusion_command_names_the_stream_configs_next_to_the_config(tmp_path):
    cfg, work = _stream_folder(tmp_path)
    command, missing = fusion_command(cfg, work)
    toy = tmp_path / 'work_dirs' / 'toy'
    assert command == (f'python tools/ensemble.py --ann data/toy.pkl --split xsub_val --preds '
                       f'{toy}/j/best_pred.pkl {toy}/b/best_pred.pkl {toy}/jm/best_pred.pkl')
    assert missing == ['jm']
    assert fusion_command(cfg, tmp_path / 'elsewhere') is None   # work dir not named after it


def test_summary_lines(tmp_path):
    cfg, work = _stream_folder(tmp_path)
    (work / 'best_acc_top1_epoch_2.pth').write_bytes(b'')
    for name in ('last_pred.pkl', 'best_pred.pkl'):
        (work / name).write_bytes(b'')
    results = {'last': {'acc/top1': 0.8, 'acc/top5': 1.0, 'acc/mean1': 0.79},
               'best': {'acc/top1': 0.825, 'acc/top5': 1.0, 'acc/mean1': 0.8}}
    lines = summary_lines(cfg, work, 3, HISTORY, results, best_ckpt=None,
                          report=work / 'report' / 'index.html', tensorboard=True)
    assert lines['best epoch'] == ('2 of 3: val top-1 0.7500, top-5 1.0000, mean class 0.7000; '
                                   f'{work}/best_acc_top1_epoch_2.pth')
    assert lines['test, last'] == 'epoch 3: top-1 0.8000, top-5 1.0000, mean class 0.7900'
    assert lines['test, best'] == 'epoch 2: top-1 0.8250, top-5 1.0000, mean class 0.8000'
    assert lines['predictions'] == f'{work}/last_pred.pkl, {work}/best_pred.pkl'
    assert lines['report'] == f'{work}/report/index.html'
    assert lines['TensorBoard'] == f'tensorboard --logdir {work}'
    assert lines['fusion'].endswith('jm/best_pred.pkl  (once jm is trained)')
    bare = summary_lines(cfg, work, 3, [], {}, tensorboard=False)
    assert bare['best epoch'] == 'not known: no validation (train with --validate)'
    assert 'fusion' not in bare and 'test, last' not in bare


# -- end to end -----------------------------------------------------------------------------------
def _env(**extra):
    env = dict(os.environ)
    env['PYTHONPATH'] = str(ROOT) + os.pathsep + env.get('PYTHONPATH', '')
    env.setdefault('OMP_NUM_THREADS', '1')
    env['HF_HUB_OFFLINE'] = '1'
    env.update(extra)
    return {k: v for k, v in env.items() if v is not None}


def _options(work_dir, data, epochs, workers=0):
    return ['--seed', '0', '--cfg-options', f'work_dir={work_dir}', f'total_epochs={epochs}',
            f'data.train.ann_file={data}', f'data.val.ann_file={data}',
            f'data.test.ann_file={data}', f'data.workers_per_gpu={workers}',
            'log_config.interval=1', 'agent.interval=2']


def _train(*args, env=None):
    proc = subprocess.run([sys.executable, 'tools/train.py', str(CONFIG), *args], cwd=ROOT,
                          env=env or _env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout + proc.stderr


@pytest.fixture(scope='module')
def small_demo(tmp_path_factory):
    from skeletonagent.datasets.synthetic import ensure_demo_data
    path = tmp_path_factory.mktemp('demo') / 'demo_small.pkl'
    return ensure_demo_data(path, num_train_per_class=4, num_val_per_class=2,
                            num_test_per_class=2)


@pytest.fixture(scope='module')
def extended(tmp_path_factory, small_demo):
    """2 epochs (rounds every 2 epochs: none, epoch 2 is the last), then resumed with 4."""
    work_dir = tmp_path_factory.mktemp('runs') / 'j'     # named after the config: fusion line
    first = _train('--validate', '--resume', 'auto', *_options(work_dir, small_demo, 2))
    second = _train('--validate', '--test-last', '--test-best', '--resume', 'auto',
                    '--threads', '1', *_options(work_dir, small_demo, 4),
                    env=_env(OMP_NUM_THREADS=None))
    return work_dir, first, second


@pytest.mark.slow
def test_resume_auto_without_a_checkpoint_says_it_starts_fresh(extended):
    work_dir, first, _ = extended
    assert f'--resume auto: no checkpoint in {work_dir}: starting a new run' in first
    assert 'threads: 1 (OMP_NUM_THREADS: OMP_NUM_THREADS=1 in the environment)' in first


@pytest.mark.slow
def test_extended_run_follows_the_new_length(extended):
    work_dir, _, second = extended
    assert ('extended from 2 to 4 epochs: the lr schedule now anneals to 0 at epoch 4; '
            'lr 0.05 at iteration 4, as a 4-epoch run has it') in second
    # the lr of every iteration of the resumed epochs: cosine over 8 iterations, from 4 on
    scalars = sorted(work_dir.glob('*/vis_data/scalars.json'))[-1]
    lrs = [json.loads(line)['lr'] for line in scalars.read_text().splitlines()
           if '"lr"' in line]
    expected = [0.1 * (1 + math.cos(math.pi * i / 8)) / 2 for i in (4, 5, 6, 7)]
    assert lrs == pytest.approx(expected, rel=1e-6)
    ckpt = load_checkpoint_file(work_dir / 'epoch_4.pth')
    assert ckpt['optimizer']['param_groups'][0]['lr'] == \
        pytest.approx(0.1 * (1 + math.cos(math.pi * 7 / 8)) / 2)      # the last iteration's
    assert ckpt['param_schedulers'][0]['T_max'] == 8
    # the round the 2-epoch run could not ask (epoch 2 was its last) is asked on resume
    assert ('agent: the run now has 4 epochs: asking the round after epoch 2 that the shorter '
            'run did not ask') in second
    assert 'agent: round 1 (confusions up to epoch 2) installed after epoch 3' in second
    assert ckpt['agent_rounds'] == 1
    assert (work_dir / 'agent' / 'rounds' / 'round_001.md').is_file()
    # the start block of the resumed run
    info = json.loads((work_dir / 'run_info.json').read_text())['lines']
    assert info['schedule'].startswith('4 epochs')
    assert info['schedule change'].startswith('extended from 2 to 4 epochs')
    assert info['threads'] == '1 (--threads: given on the command line)'
    assert info['agent rounds'].startswith('1 round after epoch 2 ')


@pytest.mark.slow
def test_shortened_run_with_nothing_left_to_train(extended, tmp_path, small_demo):
    work_dir, _, _ = extended
    other = tmp_path / 'j'
    other.mkdir()
    (other / 'epoch_4.pth').write_bytes((work_dir / 'epoch_4.pth').read_bytes())
    out = _train('--resume', 'auto', *_options(other, small_demo, 3))
    assert 'shortened from 4 to 3 epochs: the lr schedule now anneals to 0 at epoch 3' in out
    assert 'the checkpoint is at epoch 4 and the run has 3 epochs: nothing is left to train' in out


@pytest.mark.slow
def test_run_ends_with_a_summary(extended, small_demo):
    work_dir, _, second = extended
    history = read_val_history(work_dir)
    assert [r['epoch'] for r in history] == [1, 2, 3, 4]     # across the resume
    best = best_record(history)
    block = second[second.index('run summary:'):]
    rows = dict(line.strip().split('  ', 1) for line in block.splitlines()[1:]
                if line.startswith('  '))
    rows = {k: v.strip() for k, v in rows.items()}
    best_ckpt = work_dir / f'best_acc_top1_epoch_{best["epoch"]}.pth'
    assert best_ckpt.is_file()
    assert rows['best epoch'] == (
        f'{best["epoch"]} of 4: val top-1 {best["acc/top1"]:.4f}, top-5 {best["acc/top5"]:.4f}, '
        f'mean class {best["acc/mean1"]:.4f}; {best_ckpt}')
    for which, epoch in (('last', 4), ('best', best['epoch'])):
        line = next(ln for ln in second.splitlines()
                    if f'test results ({work_dir}/{which}_pred.pkl)' in ln)
        figures = dict(part.split(': ') for part in line.split('): ', 1)[1].split(', '))
        assert rows[f'test, {which}'] == (
            f'epoch {epoch}: top-1 {float(figures["acc/top1"]):.4f}, '
            f'top-5 {float(figures["acc/top5"]):.4f}, mean class {float(figures["acc/mean1"]):.4f}')
    assert rows['predictions'] == f'{work_dir}/last_pred.pkl, {work_dir}/best_pred.pkl'
    assert rows['report'] == f'{work_dir}/report/index.html'
    assert (work_dir / 'report' / 'index.html').is_file()
    assert rows['TensorBoard'] == f'tensorboard --logdir {work_dir}'
    assert list(work_dir.glob('*/vis_data/events.out.tfevents.*'))
    assert rows['fusion'] == (
        f'python tools/ensemble.py --ann {small_demo} --split test --preds '
        f'{work_dir}/best_pred.pkl {work_dir.parent}/b/best_pred.pkl  (once b is trained)')


def _train_until(work_dir, data, marker, sig, workers=0, to_group=False):
    """Start a 20-epoch training, send ``sig`` once a line matches the regular expression
    ``marker``; (rc, output)."""
    proc = subprocess.Popen(
        [sys.executable, 'tools/train.py', str(CONFIG), *_options(work_dir, data, 20, workers)],
        cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,   # its own process group, as a terminal's job is
        # Python installs its Ctrl-C handler only where SIGINT is not ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if re.search(marker, line):
                (os.killpg if to_group else os.kill)(proc.pid, sig)
                break
        lines.append(proc.stdout.read())
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, ''.join(lines)


@pytest.mark.slow
def test_ctrl_c_ends_with_the_resume_line(tmp_path, small_demo):
    rc, out = _train_until(tmp_path / 'run', small_demo, r'Epoch\(train\) +\[2\]\[1/2\]',
                           signal.SIGINT)
    assert rc == 130, out[-3000:]
    line = next(ln for ln in out.splitlines() if 'stopped by Ctrl-C' in ln)
    assert re.search(r'stopped by Ctrl-C in epoch 2, iteration \d+: the same command with '
                     r'--resume auto continues from (\S+) \(the start of epoch 2\)$', line), line
    assert line.split('continues from ')[1].startswith(f'{tmp_path}/run/epoch_1.pth ')
    assert 'Traceback' not in out


@pytest.mark.slow
def test_sigterm_to_the_job_with_workers_is_logged_and_ends_cleanly(tmp_path, small_demo):
    rc, out = _train_until(tmp_path / 'run', small_demo, r'Epoch\(train\) +\[2\]\[1/2\]',
                           signal.SIGTERM, workers=1, to_group=True)
    assert rc == 128 + signal.SIGTERM, out[-3000:]
    line = next(ln for ln in out.splitlines() if 'stopped by SIGTERM' in ln)
    assert line.endswith(f'the same command with --resume auto continues from '
                         f'{tmp_path}/run/epoch_1.pth (the start of epoch 2)'), line
    assert 'Traceback' not in out and 'killed by signal' not in out


@pytest.mark.skipif(not hasattr(os, 'SCHED_IDLE'), reason='Linux scheduling policies')
def test_round_threads_run_at_idle_priority_and_the_caller_keeps_its_own():
    import threading

    from skeletonagent.utils.threads import lower_thread_priority
    seen = {}

    def round_thread() -> None:
        seen['changed'] = lower_thread_priority('idle')
        seen['policy'] = os.sched_getscheduler(0)
        child = threading.Thread(target=lambda: seen.update(child=os.sched_getscheduler(0)))
        child.start()                 # the request threads a round starts inherit it
        child.join()

    thread = threading.Thread(target=round_thread)
    thread.start()
    thread.join()
    assert seen == dict(changed=True, policy=os.SCHED_IDLE, child=os.SCHED_IDLE)
    assert os.sched_getscheduler(0) == os.SCHED_OTHER


@pytest.mark.parametrize('value', ['low', 2.5, True])
def test_agent_round_nice_refuses_what_is_neither_idle_nor_an_increment(value):
    from skeletonagent.agent.hook import AgentHook
    with pytest.raises(ValueError, match="agent.round_nice must be 'idle' or a nice increment"):
        AgentHook(round_nice=value)
