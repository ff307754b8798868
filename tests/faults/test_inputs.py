"""Fault injection: corrupted inputs.

Every broken input must stop the run with an error that says what is wrong and where (file,
sample, field, key), never a hang. The cases run the dataset, config and checkpoint readers
and the tools' ``main`` in this process (an exception escaping ``main`` is the command's
non-zero exit; test_workers.py and test_secrets.py run the command line itself). Checkpoints
load with ``weights_only=True``: one carrying an arbitrary pickled object is refused, through
our loader, through mmengine's (``--resume`` / ``load_from``) and through ``tools/test.py``.
"""
from __future__ import annotations

import copy
import importlib.util
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from skeletonagent.datasets import PoseDataset
from skeletonagent.datasets.errors import DataError
from skeletonagent.engine.checkpoint import CheckpointError, CheckpointMismatchError, load_checkpoint_file

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / 'configs' / 'demo' / 'j.py'

pytestmark = [pytest.mark.faults, pytest.mark.timeout(120)]


def _tool(name: str):
    """``tools/<name>.py`` as a module (its ``main(argv)``)."""
    spec = importlib.util.spec_from_file_location(f'_faults_tool_{name}', ROOT / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """A small demo pickle (12 classes, one sample per class and split) and its content."""
    from skeletonagent.datasets.synthetic import ensure_demo_data
    path = ensure_demo_data(tmp_path_factory.mktemp('data') / 'demo.pkl', num_train_per_class=1,
                            num_val_per_class=1, num_test_per_class=1)
    with open(path, 'rb') as f:
        content = pickle.load(f)
    return path, content


def _train_ann(content, i=0):
    names = set(content['split']['train'])
    return [a for a in content['annotations'] if a['frame_dir'] in names][i]


def _write(path: Path, obj) -> Path:
    with open(path, 'wb') as f:
        pickle.dump(obj, f)
    return path


def _data_options(path) -> list[str]:
    return [f'data.{s}.ann_file={path}' for s in ('train', 'val', 'test')] + [
        'data.train.type=PoseDataset', 'data.val.type=PoseDataset', 'data.test.type=PoseDataset',
        'data.workers_per_gpu=0', 'total_epochs=1']


# ------------------------------------------------------------------------- annotation files
def _truncated(path, content, tmp):
    raw = Path(path).read_bytes()
    bad = tmp / 'truncated.pkl'
    bad.write_bytes(raw[: len(raw) // 2])
    return bad, None, ['cannot be unpickled', 'truncated']


def _wrong_type_dict(path, content, tmp):
    return _write(tmp / 'wrong_dict.pkl', {'weights': np.zeros(3)}), None, ['no annotations']


def _wrong_type_array(path, content, tmp):
    return _write(tmp / 'wrong_array.pkl', np.zeros((4, 3))), None, \
        ['top level must be a dict', 'ndarray']


def _wrong_rank(path, content, tmp):
    data = copy.deepcopy(content)
    ann = _train_ann(data, 3)
    ann['keypoint'] = ann['keypoint'][0]
    return _write(tmp / 'rank.pkl', data), ann['frame_dir'], ["field 'keypoint'", 'must be 4-d']


def _nan(path, content, tmp):
    data = copy.deepcopy(content)
    ann = _train_ann(data, 4)
    ann['keypoint'] = ann['keypoint'].copy()
    ann['keypoint'][0, 2, 7, 1] = np.nan
    return _write(tmp / 'nan.pkl', data), ann['frame_dir'], \
        ["field 'keypoint'", 'non-finite', 'frame 2, joint 7, channel 1']


def _inf(path, content, tmp):
    data = copy.deepcopy(content)
    ann = _train_ann(data, 5)
    ann['keypoint'] = ann['keypoint'].copy()
    ann['keypoint'][-1, -1, 0, 0] = -np.inf
    return _write(tmp / 'inf.pkl', data), ann['frame_dir'], ["field 'keypoint'", 'non-finite']


def _label(path, content, tmp):
    data = copy.deepcopy(content)
    ann = _train_ann(data, 6)
    ann['label'] = 12                                     # 12 classes: labels 0..11
    return _write(tmp / 'label.pkl', data), ann['frame_dir'], \
        ["field 'label'", 'must be < num_classes=12, got 12']


def _empty_split(path, content, tmp):
    data = copy.deepcopy(content)
    data['split']['train'] = []
    return _write(tmp / 'empty.pkl', data), None, ["field 'split'", "split 'train' is empty"]


ANNOTATION_FAULTS = {
    'truncated pickle': _truncated, 'pickle of a dict without annotations': _wrong_type_dict,
    'pickle of an array': _wrong_type_array, 'keypoints of rank 3': _wrong_rank,
    'NaN keypoint': _nan, 'inf keypoint': _inf, 'label beyond num_classes': _label,
    'empty split': _empty_split,
}


@pytest.mark.parametrize('fault', list(ANNOTATION_FAULTS))
def test_corrupted_annotation_file_names_file_sample_and_field(fault, data, tmp_path):
    path, content = data
    bad, frame_dir, words = ANNOTATION_FAULTS[fault](path, content, tmp_path)
    with pytest.raises(DataError) as info:
        PoseDataset(bad, pipeline=[], split='train')
    message = str(info.value)
    assert f'file {bad}' in message, message
    if frame_dir is not None:
        assert f'sample {frame_dir!r}' in message, message
    for word in words:
        assert word in message, message
    # the error survives pickling (DataLoader workers re-raise it in the main process)
    assert str(pickle.loads(pickle.dumps(info.value))) == message


def test_corrupted_annotation_stops_tools_test(data, tmp_path):
    """Through ``tools/test.py``'s main: the data error ends the run before any batch.
    (``tools/train.py`` reads the same dataset class; test_workers.py runs it.)"""
    path, content = data
    bad, frame_dir, _ = _label(path, content, tmp_path)
    ckpt = _checkpoint(tmp_path)
    argv = [str(CONFIG), str(ckpt), '--out', str(tmp_path / 'pred.pkl'), '--cfg-options',
            f'work_dir={tmp_path / "work"}', *_data_options(bad), 'data.test.split=train']
    with pytest.raises(DataError, match=f"sample '{frame_dir}', field 'label'"):
        _tool('test').main([*argv, '--debug'])
    assert not (tmp_path / 'pred.pkl').exists()


# ------------------------------------------------------------------------- configs
def test_unknown_model_type_lists_close_names(data, tmp_path):
    path, _ = data
    from skeletonagent.registry import UnknownTypeError
    argv = [str(CONFIG), '--cfg-options', f'work_dir={tmp_path}', *_data_options(path),
            'model.backbone.type=GCN_Modul_LLM']
    with pytest.raises(UnknownTypeError) as info:
        _tool('train').main([*argv, '--debug'])
    message = str(info.value)
    assert "unknown model type 'GCN_Modul_LLM'" in message and 'GCN_Module_LLM' in message, message


def test_unknown_transform_type_lists_close_names(data, tmp_path):
    """A typo in a pipeline (built inside the dataset, inside the dataloader): the message
    still names the transform registry's close names."""
    path, _ = data
    ckpt = _checkpoint(tmp_path)
    argv = [str(CONFIG), str(ckpt), '--cfg-options', f'work_dir={tmp_path}', *_data_options(path),
            'data.test.pipeline.0.type=PreNormalise3D']
    from skeletonagent.registry import UnknownTypeError
    with pytest.raises(UnknownTypeError) as info:
        _tool('test').main([*argv, '--debug'])
    message = str(info.value)
    assert "unknown transform type 'PreNormalise3D'" in message, message
    assert 'PreNormalize3D' in message.split('close registered names:')[1], message


def test_unknown_llm_backend_lists_close_names():
    from skeletonagent.agent import build_backend
    with pytest.raises(KeyError) as info:
        build_backend(dict(type='OpenAIChatt', model='x'))
    assert "unknown llm backend type 'OpenAIChatt'" in str(info.value)
    assert 'close registered names: OpenAIChat' in str(info.value)


def test_config_referencing_missing_files(data, tmp_path):
    from skeletonagent.agent.initial import load_masks
    from skeletonagent.agent.transcripts import TranscriptError, read_transcript_dir
    from skeletonagent.engine import load_config
    path, _ = data
    with pytest.raises(FileNotFoundError, match='config file not found'):
        load_config(tmp_path / 'nope.py')
    base = tmp_path / 'base_missing.py'
    base.write_text(f"_base_ = ['{tmp_path / 'no_base.py'}']\n")
    with pytest.raises(FileNotFoundError,
                       match=r'config .*base_missing.py references a missing file: .*no_base.py'):
        load_config(base)
    with pytest.raises(DataError, match='annotation file not found'):
        PoseDataset(tmp_path / 'no_data.pkl', pipeline=[], split='train')
    with pytest.raises(TranscriptError, match='transcript directory not found'):
        read_transcript_dir(tmp_path / 'no_transcripts', ['a'])
    with pytest.raises(FileNotFoundError, match='masks file not found'):
        load_masks(tmp_path / 'no_masks.npy', 12, 25)
    from skeletonagent.datasets.label_map import load_label_map
    with pytest.raises(FileNotFoundError, match=r'no_map.txt.*known names: .*demo'):
        load_label_map(tmp_path / 'no_map.txt', num_classes=12)


def test_label_map_with_wrong_class_count(data, tmp_path):
    from skeletonagent.agent.initial import resolve_class_names
    from skeletonagent.datasets.label_map import load_label_map
    path, _ = data
    short = tmp_path / 'short.txt'
    short.write_text('raise left hand\nraise right hand\n')
    with pytest.raises(ValueError, match=r'holds 2 class names, expected num_classes=12'):
        load_label_map(short, num_classes=12)
    with pytest.raises(ValueError, match='short.txt holds 2 class names'):
        resolve_class_names(dict(label_map=str(short)), 12)
    with pytest.raises(ValueError, match='short.txt holds 2 class names'):
        PoseDataset(path, pipeline=[], split='train', classes=str(short), num_classes=12)


def test_transcript_with_no_answers(tmp_path):
    from skeletonagent.agent.transcripts import (
        SEPARATOR,
        TranscriptError,
        Turn,
        read_transcript_dir,
        transcript_filename,
        write_transcript,
    )
    names = ['raise left hand', 'bow']
    write_transcript(tmp_path / transcript_filename(0, names[0]), [Turn('How?', 'Like this.')])
    bad = tmp_path / transcript_filename(1, names[1])
    bad.write_text(f'\nRound 1 Question:\nHow does one bow?\n\n{SEPARATOR}\n')
    with pytest.raises(TranscriptError, match=r"class 1 'bow' has no answers: .*002_bow.txt"):
        read_transcript_dir(tmp_path, names)
    bad.write_text('')
    with pytest.raises(TranscriptError, match='002_bow.txt'):
        read_transcript_dir(tmp_path, names)


# ------------------------------------------------------------------------- checkpoints
def _checkpoint(tmp_path, **cfg_options) -> Path:
    """A checkpoint of the demo model as training writes it (weights + dumped config)."""
    from skeletonagent.engine import load_config
    from skeletonagent.engine.runner import build_model
    cfg = load_config(CONFIG, cfg_options or None)
    model = build_model(cfg, for_training=False)
    path = tmp_path / 'demo_j.pth'
    torch.save({'meta': {'cfg': cfg.pretty_text, 'epoch': 1},
                'state_dict': model.state_dict()}, path)
    return path


def test_checkpoint_of_another_stream_is_refused(data, tmp_path):
    """Same shapes (j and b streams): without a check the weights would load silently."""
    path, _ = data
    ckpt = _checkpoint(tmp_path)
    argv = [str(CONFIG), str(ckpt), '--cfg-options', f'work_dir={tmp_path}', *_data_options(path),
            'model.backbone.llm_modality=b', 'data.test.pipeline.1.feats=[b]']
    with pytest.raises((CheckpointMismatchError, SystemExit)) as info:
        _tool('test').main(argv)
    message = str(info.value)
    assert message.removeprefix('error: ').splitlines()[0] == (
        f'checkpoint {ckpt} was trained for another stream or dataset than the config '
        '(differing: feature transforms, llm_modality); give the checkpoint of this config:')
    assert "model.backbone.llm_modality: checkpoint 'j', config 'b'" in message, message
    assert 'feature transforms' in message, message
    # --resume PATH (and --resume auto finding it) refuses it before building anything
    from skeletonagent.engine import RunOptions, load_config
    from skeletonagent.engine.checkpoint import check_checkpoint_config
    from skeletonagent.engine.runner import build_runner
    cfg_b = load_config(CONFIG, {'work_dir': str(tmp_path), 'model.backbone.llm_modality': 'b'})
    with pytest.raises(CheckpointMismatchError, match='llm_modality'):
        build_runner(cfg_b, RunOptions(resume=str(ckpt)))
    check_checkpoint_config(torch.load(ckpt, weights_only=True), load_config(CONFIG), ckpt)


def test_infer_and_the_api_refuse_what_tools_test_refuses(data, tmp_path):
    """One check: a bone-stream checkpoint given with the joint config is refused by
    tools/test.py, tools/infer.py and init_recognizer alike, with the same message."""
    path, content = data
    ckpt = _checkpoint(tmp_path, **{'model.backbone.llm_modality': 'b',
                                    'data.test.pipeline.1.feats': ['b']})
    sample = tmp_path / 'sample.npy'
    np.save(sample, content['annotations'][0]['keypoint'])
    messages = []
    argv = [str(CONFIG), str(ckpt), '--cfg-options', f'work_dir={tmp_path}', *_data_options(path)]
    with pytest.raises((CheckpointMismatchError, SystemExit)) as info:
        _tool('test').main(argv)
    messages.append(str(info.value).removeprefix('error: '))
    with pytest.raises(SystemExit) as info:
        _tool('infer').main([str(CONFIG), str(ckpt), str(sample)])
    messages.append(str(info.value.code).removeprefix('error: '))
    from skeletonagent.apis import init_recognizer
    with pytest.raises(CheckpointMismatchError) as info:
        init_recognizer(CONFIG, ckpt)
    messages.append(str(info.value))
    assert messages[0].splitlines()[0] == (
        f'checkpoint {ckpt} was trained for another stream or dataset than the config '
        '(differing: feature transforms, llm_modality); give the checkpoint of this config:')
    assert messages[0] == messages[1] == messages[2]


def test_checkpoint_of_another_dataset_names_the_keys(data, tmp_path):
    path, _ = data
    ckpt = _checkpoint(tmp_path)
    argv = [str(CONFIG), str(ckpt), '--cfg-options', f'work_dir={tmp_path}', *_data_options(path),
            'num_classes=10', 'model.backbone.num_classes=10', 'model.cls_head.num_classes=10']
    with pytest.raises((CheckpointMismatchError, SystemExit)) as info:
        _tool('test').main(argv)
    assert 'model.cls_head.num_classes: checkpoint 12, config 10' in str(info.value)
    # a checkpoint without a dumped config (official, PYSKL): the weights' keys are named
    from skeletonagent.engine import load_config
    from skeletonagent.engine.checkpoint import load_model_weights
    from skeletonagent.engine.runner import build_model
    model = build_model(load_config(CONFIG, {'model.backbone.num_classes': 10,
                                             'model.cls_head.num_classes': 10}), False)
    bare = torch.load(ckpt, weights_only=True)['state_dict']
    with pytest.raises(CheckpointMismatchError) as info:
        load_model_weights(model, {'state_dict': bare}, name='official.pth')
    assert 'cls_head.fc_cls.weight' in str(info.value) and 'backbone.examplar' in str(info.value)


def test_truncated_checkpoint_is_refused_with_a_clear_message(data, tmp_path):
    path, _ = data
    ckpt = _checkpoint(tmp_path)
    raw = ckpt.read_bytes()
    bad = tmp_path / 'truncated.pth'
    bad.write_bytes(raw[: len(raw) * 2 // 3])
    with pytest.raises(CheckpointError, match=f'checkpoint {bad} is truncated or corrupt'):
        load_checkpoint_file(bad)
    argv = [str(CONFIG), str(bad), '--cfg-options', f'work_dir={tmp_path}', *_data_options(path)]
    with pytest.raises((CheckpointError, SystemExit),
                       match=f'checkpoint {bad} is truncated or corrupt'):
        _tool('test').main(argv)


class _Payload:
    """An arbitrary object; unpickling it would run ``os.system``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


class _Custom:
    pass


@pytest.mark.parametrize('kind', ['code', 'object'])
def test_checkpoint_with_arbitrary_pickled_object_is_refused(kind, data, tmp_path):
    from mmengine.runner.checkpoint import _load_checkpoint
    path, _ = data
    marker = tmp_path / 'pwned'
    evil = _Payload(marker) if kind == 'code' else _Custom()
    ckpt = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.zeros(2)}, 'meta': {'x': evil}}, ckpt)
    refused = 'which torch.load\\(weights_only=True\\) refuses'
    with pytest.raises(CheckpointError, match=refused):
        load_checkpoint_file(ckpt)
    with pytest.raises(Exception, match='[Ww]eights only load failed|Unsupported global'):
        _load_checkpoint(str(ckpt), map_location='cpu')     # mmengine: --resume / load_from
    argv = [str(CONFIG), str(ckpt), '--cfg-options', f'work_dir={tmp_path}', *_data_options(path)]
    with pytest.raises((CheckpointError, SystemExit), match=refused):
        _tool('test').main(argv)
    assert not marker.exists()
