"""Bad inputs to tools/train.py, tools/test.py and tools/dist_train.sh: each ends with one
``error: ...`` line, a non-zero exit status and no traceback (issue 12, item 4).

The tools run in subprocesses as a user runs them. Every case but the LLM one fails before
a model is built or data is read; the LLM case fails when the agent's first dialogue starts
(after the model and the tiny data are loaded), on a port nothing listens on.
"""
from __future__ import annotations

import copy
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / 'configs' / 'demo' / 'j.py'
PAPER = ROOT / 'configs' / 'ntu60_xsub' / 'j.py'


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """The inputs of the cases: a tiny demo pickle, a truncated copy, a config with a syntax
    error, a file in place of a folder, a text file named .pth, a checkpoint of a 7-class
    model (the demo has 12)."""
    from skeletonagent.datasets.synthetic import ensure_demo_data
    from skeletonagent.engine import load_config
    from skeletonagent.engine.runner import build_model
    root = tmp_path_factory.mktemp('bad_inputs')
    data = ensure_demo_data(root / 'demo_small.pkl', num_train_per_class=2, num_val_per_class=1,
                            num_test_per_class=1)
    (root / 'truncated.pkl').write_bytes(data.read_bytes()[:4000])
    (root / 'syntax.py').write_text("_base_ = []\nmodel = dict(type='RecognizerGCN'\n")
    (root / 'a_file').write_text('')
    (root / 'notes.pth').write_text('not a checkpoint\n')
    cfg = load_config(DEMO, {'model.backbone.num_classes': 7, 'model.cls_head.num_classes': 7})
    torch.save({'state_dict': build_model(cfg, for_training=False).state_dict()},
               root / 'seven_classes.pth')
    # the paper config trained with the documented offline text encoder override
    minilm = load_config(PAPER, {'model.text_encoder.type': 'MiniLM',
                                 'model.backbone.text_dim': 384, 'model.backbone.text_key': 'MiniLM'})
    torch.save({'state_dict': build_model(minilm, for_training=False).state_dict(),
                'meta': {'cfg': minilm.pretty_text}}, root / 'paper_minilm.pth')
    # a sample without keypoint; every sample with 17 joints (the demo's layout has 25)
    annotations = pickle.loads(data.read_bytes())
    no_keypoint = copy.deepcopy(annotations)
    del no_keypoint['annotations'][1]['keypoint']
    (root / 'no_keypoint.pkl').write_bytes(pickle.dumps(no_keypoint))
    coco = copy.deepcopy(annotations)
    for ann in coco['annotations']:
        ann['keypoint'] = ann['keypoint'][:, :, :17]
    (root / 'coco17.pkl').write_bytes(pickle.dumps(coco))
    (root / 'empty_label_map.txt').write_text('\n')
    return dict(root=root, data=data, first=annotations['annotations'][0]['frame_dir'],
                second=annotations['annotations'][1]['frame_dir'])


@pytest.fixture(scope='module')
def held_work_dir(tmp_path_factory):
    """A work dir held by another live process (as a training run holds its own)."""
    work_dir = tmp_path_factory.mktemp('held') / 'run'
    code = ('import sys, time; from skeletonagent.engine.workdir_lock import hold_work_dir; '
            'hold_work_dir(sys.argv[1]); print("held", flush=True); time.sleep(600)')
    holder = subprocess.Popen([sys.executable, '-c', code, str(work_dir)], cwd=ROOT,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout.readline().strip() == 'held'
    yield dict(held=work_dir, holder_pid=holder.pid)
    holder.kill()
    holder.wait()


def _cases():
    """(id, command, expected first line of the message); {placeholders} filled per run."""
    data_opts = ['data.train.ann_file={data}', 'data.val.ann_file={data}',
                 'data.test.ann_file={data}', 'data.workers_per_gpu=0']
    url = 'http://127.0.0.1:{port}/v1'
    return [
        ('config syntax error',
         ['tools/train.py', '{root}/syntax.py'],
         "error: syntax error in config {root}/syntax.py, line 2: '(' was never closed"),
        ('dist_train.sh with 0 processes',
         ['tools/dist_train.sh', str(DEMO), '0'],
         "error: GPUS must be a positive number of processes per node, got '0' "
         '(usage: tools/dist_train.sh CONFIG GPUS [options])'),
        ('work_dir not writable',
         ['tools/train.py', str(DEMO), '--work-dir', '{root}/a_file/run'],
         'error: cannot write to the work dir {root}/a_file/run: {root}/a_file is not a '
         'directory; give another one with --work-dir'),
        ('--cfg-options key without a value',
         ['tools/train.py', str(DEMO), '--cfg-options', 'total_epochs'],
         "error: --cfg-options 'total_epochs': give KEY=VALUE, e.g. total_epochs=6"),
        ('model key typo',
         ['tools/train.py', str(DEMO), '--cfg-options', 'model.backbone.in_channel=3'],
         'error: unknown config key model.backbone.in_channel (not an argument of '
         'GCN_Module_LLM); did you mean in_channels?'),
        ('top-level key typo',
         ['tools/train.py', str(DEMO), '--cfg-options', 'total_epoch=3'],
         'error: unknown config key total_epoch (neither a key of the schema nor a variable '
         'the config reads); did you mean total_epochs?'),
        ('truncated user pickle',
         ['tools/train.py', str(DEMO), '--cfg-options', 'data.train.ann_file={root}/truncated.pkl'],
         'error: annotation file {root}/truncated.pkl (data.train.ann_file) is truncated (it '
         'lacks the STOP byte every pickle ends with); copy or prepare it again'),
        ('paper config without its data',
         ['tools/train.py', str(PAPER), '--cfg-options',
          'data.train.ann_file={root}/ntu60_3danno.pkl'],
         'error: annotation file not found: {root}/ntu60_3danno.pkl (data.train.ann_file); '
         'data/README.md says how to get or prepare each dataset'),
        ('paper config without the imported agent texts',
         ['tools/train.py', str(PAPER), '--cfg-options', *data_opts,
          'agent.official_dir={root}/no_import'],
         'error: agent: the config trains from the official GPT-4o dialogues and masks, but '
         'transcripts/ is not in {root}/no_import. Two ways on:'),
        ('paper config offline without CLIP weights',
         ['tools/train.py', str(PAPER), '--cfg-options', *data_opts, 'agent.transcripts=None',
          'agent.masks=None', 'agent.prompts=None', 'agent.llm.type=Offline'],
         'error: the CLIP text encoder weights (openai/clip-vit-base-patch32) are not in the '
         'Hugging Face cache and cannot be downloaded: offline mode is on (HF_HUB_OFFLINE);'),
        ('not a checkpoint',
         ['tools/test.py', str(DEMO), '{root}/notes.pth', '--cfg-options', *data_opts],
         'error: {root}/notes.pth is not a PyTorch checkpoint: it is a text file; give a .pth '
         'file written by training (work_dir/latest.pth, epoch_N.pth, best_*.pth)'),
        ('checkpoint that does not fit',
         ['tools/test.py', str(DEMO), '{root}/seven_classes.pth', '--cfg-options', *data_opts],
         'error: checkpoint {root}/seven_classes.pth does not fit the model (RecognizerGCN built '
         'from the config): 3 size mismatches; is it a checkpoint of this config (backbone, '
         'stream, number of classes)?'),
        ('closed LLM port',
         ['tools/train.py', str(DEMO), '--work-dir', '{root}/llm_run', '--cfg-options', *data_opts,
          'agent.llm.type=OpenAIChat', 'agent.llm.model=m', f'agent.llm.base_url={url}',
          'agent.llm.api_key_env=None'],
         'error: agent: the initial dialogue failed for 12 classes (all with: round 1: '
         f'connection cannot reach the LLM server at {url} (connection refused); check it '
         f'with: curl {url}/models)'),
        ('work dir held by another run',
         ['tools/train.py', str(DEMO), '--work-dir', '{held}', '--cfg-options', *data_opts],
         'error: the work dir {held} is in use by another run: PID {holder_pid} (started '),
        ('LLM backend without its model',
         ['tools/train.py', str(DEMO), '--cfg-options', 'agent.llm.type=OpenAIChat'],
         'error: agent.llm: OpenAIChat needs agent.llm.model, which the config does not set; '
         'give it, e.g. --cfg-options agent.llm.model=gpt-4o'),
        ('total_epochs not a number',
         ['tools/train.py', str(DEMO), '--cfg-options', 'total_epochs=abc'],
         "error: total_epochs must be an integer, got 'abc'"),
        ('sample without keypoint',
         ['tools/train.py', str(DEMO), '--work-dir', '{root}/no_keypoint_run', '--cfg-options',
          'data.train.ann_file={root}/no_keypoint.pkl', 'data.workers_per_gpu=0'],
         "error: file {root}/no_keypoint.pkl, sample '{second}', field 'keypoint': required "
         'field missing'),
        ('17-joint file for a 25-joint config',
         ['tools/train.py', str(DEMO), '--work-dir', '{root}/coco17_run', '--cfg-options',
          'data.train.ann_file={root}/coco17.pkl', 'data.workers_per_gpu=0'],
         "error: file {root}/coco17.pkl, sample '{first}', field 'keypoint': has 17 joints"),
        ('unknown split',
         ['tools/train.py', str(DEMO), '--work-dir', '{root}/split_run', '--cfg-options',
          *data_opts, 'data.train.split=trian'],
         "error: file {data}, field 'split': unknown split 'trian'; available: 'train', 'val', "
         "'test'"),
        ('checkpoint of another text encoder',
         ['tools/test.py', str(PAPER), '{root}/paper_minilm.pth', '--cfg-options', *data_opts,
          'data.test.split=test'],
         'error: checkpoint {root}/paper_minilm.pth was trained with another text encoder than '
         'the config ('),
        ('empty label map in vis_skeleton',
         ['tools/vis_skeleton.py', '{data}', '--index', '0', '--label-map',
          '{root}/empty_label_map.txt', '--out', '{root}/vis.png'],
         'error: label map {root}/empty_label_map.txt holds no class names (one name per line)'),
    ]


CASES = _cases()


@pytest.mark.parametrize('command, expected', [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_ends_with_one_error_line(files, held_work_dir, tmp_path, command, expected):
    values = dict(root=files['root'], data=files['data'], port=_closed_port(),
                  first=files['first'], second=files['second'], **held_work_dir)
    args = [part.format(**values) for part in command]
    env = dict(os.environ, OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1',
               HF_HOME=str(tmp_path / 'hf_home'),          # an empty Hugging Face cache
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    runner = ['bash'] if args[0].endswith('.sh') else [sys.executable]
    proc = subprocess.run([*runner, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    output = proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error: ')]
    assert proc.returncode != 0, output[-3000:]
    assert 'Traceback' not in output, output[-3000:]
    assert errors, output[-3000:]
    assert errors[0].startswith(expected.format(**values)), errors[0]
    assert len(errors) == 1
    for name in ('no_keypoint_run', 'coco17_run', 'split_run'):    # stopped before writing
        assert not (files['root'] / name).exists()


def test_debug_shows_the_traceback(files):
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    proc = subprocess.run([sys.executable, 'tools/train.py', str(DEMO), '--debug',
                           '--cfg-options', 'total_epoch=3'], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert 'Traceback' in proc.stderr
    assert 'ConfigError: unknown config key total_epoch' in proc.stderr


def test_a_bug_keeps_its_traceback():
    from skeletonagent.engine.errors import run_tool

    def main(argv):
        raise TypeError('a bug in our code')
    with pytest.raises(TypeError, match='a bug'):
        run_tool(main, [])

    def user_error(argv):
        raise FileNotFoundError(2, 'No such file or directory', '/x/y.pkl')
    with pytest.raises(SystemExit) as exit_info:
        run_tool(user_error, [])
    assert exit_info.value.code == 'error: /x/y.pkl: no such file or directory'
    assert isinstance(exit_info.value.__cause__, FileNotFoundError)
    with pytest.raises(FileNotFoundError):
        run_tool(user_error, ['--debug'])



def test_torch_runtime_error_keeps_its_traceback_and_user_errors_stay_one_line(tmp_path):
    """A RuntimeError raised by torch itself (a convolution given the wrong number of
    channels) is a crash: the tool's exit path shows its traceback. Every error class of the
    package for a user mistake is a SkeletonAgentError and ends the tool with one line."""
    from skeletonagent.engine.errors import USER_ERRORS, ConfigError, error_message, run_tool
    from skeletonagent.errors import SkeletonAgentError

    def conv_on_wrong_channels(argv):
        torch.nn.Conv2d(3, 8, 1)(torch.zeros(1, 5, 4, 4))
    with pytest.raises(RuntimeError, match='channels') as info:
        run_tool(conv_on_wrong_channels, [])
    assert error_message(info.value) is None
    assert RuntimeError not in USER_ERRORS and SkeletonAgentError in USER_ERRORS

    def bad_config(argv):
        raise ConfigError('unknown config key total_epoch')
    with pytest.raises(SystemExit) as exit_info:
        run_tool(bad_config, [])
    assert exit_info.value.code == 'error: unknown config key total_epoch'

    # the same two as a user runs a tool: a process whose main goes through run_tool
    script = tmp_path / 'tool.py'
    script.write_text(
        'import sys, torch\n'
        'from skeletonagent.engine.errors import ConfigError, run_tool\n'
        'def main(argv):\n'
        '    if argv[0] == "torch":\n'
        '        torch.nn.Conv2d(3, 8, 1)(torch.zeros(1, 5, 4, 4))\n'
        '    raise ConfigError("unknown config key total_epoch")\n'
        'run_tool(main)\n')
    env = dict(os.environ, OMP_NUM_THREADS='1',
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    crash, user = (subprocess.run([sys.executable, str(script), which], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=120)
                   for which in ('torch', 'config'))
    assert crash.returncode == 1 and 'Traceback' in crash.stderr
    assert 'RuntimeError' in crash.stderr.splitlines()[-1]
    assert not [line for line in crash.stderr.splitlines() if line.startswith('error: ')]
    assert user.returncode == 1 and 'Traceback' not in user.stderr
    assert user.stderr.strip().splitlines() == ['error: unknown config key total_epoch']


def test_every_user_error_class_is_a_skeletonagent_error_and_keeps_its_builtin_base():
    """``except ValueError`` / ``except OSError`` / ``except RuntimeError`` around our calls
    still catch what they caught; the tools treat every one of them as a user error."""
    from skeletonagent.agent.llm import LLMError, MissingAPIKeyError
    from skeletonagent.agent.official import OfficialImportError
    from skeletonagent.agent.sources import AgentSourceMissing
    from skeletonagent.agent.transcripts import TranscriptError
    from skeletonagent.datasets.errors import DataError
    from skeletonagent.datasets.memcache import MemcachedError
    from skeletonagent.datasets.pipelines.compose import PipelineError
    from skeletonagent.datasets.prep import SampleError, SkeletonFileError
    from skeletonagent.engine.checkpoint import CheckpointError, CheckpointMismatchError
    from skeletonagent.engine.config_keys import UnknownConfigType
    from skeletonagent.engine.errors import ConfigError, error_message
    from skeletonagent.engine.preflight import DataMissing
    from skeletonagent.engine.workdir_lock import WorkDirBusy
    from skeletonagent.errors import SkeletonAgentError
    from skeletonagent.evaluation.compare import CompareError
    from skeletonagent.evaluation.fusion import FusionError
    from skeletonagent.models.text.availability import TextEncoderUnavailable
    from skeletonagent.pose.base import PoseBackendUnavailable
    from skeletonagent.pose.extra import VideoExtraMissing
    from skeletonagent.pose.video import VideoReadError
    from skeletonagent.registry import UnknownTypeError
    builtin = {ConfigError: ValueError, UnknownConfigType: KeyError, WorkDirBusy: ValueError,
               CheckpointError: ValueError, CheckpointMismatchError: ValueError,
               DataMissing: FileNotFoundError, TextEncoderUnavailable: RuntimeError,
               DataError: ValueError, PipelineError: ValueError, MemcachedError: RuntimeError,
               SampleError: ValueError, SkeletonFileError: ValueError,
               CompareError: ValueError, FusionError: ValueError,
               TranscriptError: ValueError, LLMError: RuntimeError,
               MissingAPIKeyError: RuntimeError, AgentSourceMissing: FileNotFoundError,
               OfficialImportError: ValueError, VideoExtraMissing: RuntimeError,
               PoseBackendUnavailable: RuntimeError, VideoReadError: ValueError}
    for cls, base in builtin.items():
        assert issubclass(cls, SkeletonAgentError) and issubclass(cls, base), cls
    # the registry shares layer 1 with errors.py: a KeyError that the tools name in one line
    assert issubclass(UnknownTypeError, KeyError)
    assert error_message(LLMError('the server at http://x cannot be reached')) == \
        'the server at http://x cannot be reached'
    assert error_message(UnknownTypeError("no model type 'GCN'")) == "no model type 'GCN'"
    assert error_message(DataMissing('annotation file not found: x.pkl')) == \
        'annotation file not found: x.pkl'
