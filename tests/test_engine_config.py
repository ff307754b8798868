"""Translation of the PYSKL / official config schema onto mmengine Runner arguments."""
import textwrap

import pytest
import torch

from skeletonagent.engine.config import ConfigError, RunOptions, load_config, to_runner_kwargs

OFFICIAL_STYLE = '''
modality = 'j'
graph = 'nturgb+d'
work_dir = './work_dirs/ntu60_xsub/j'
model = dict(
    type='RecognizerGCN',
    backbone=dict(type='GCN_Module_LLM', llm_model='gpt4o', llm_modality=modality, num_classes=60,
                  tcn_ms_cfg=[(3, 1), (3, 2), (3, 3), (3, 4), ('max', 3), '1x1'],
                  graph_cfg=dict(layout=graph, mode='random', num_filter=8, init_off=.04, init_std=.02)),
    cls_head=dict(type='SimpleHead', joint_cfg=graph, num_classes=60, in_channels=384,
                  work_dir=work_dir, interval_epoch=5, weight_1=0.2, weight_2=0.5))
dataset_type = 'PoseDataset'
ann_file = 'data/nturgbd/ntu60_3danno.pkl'
pipe = [dict(type='PreNormalize3D', align_spine=False)]
data = dict(
    videos_per_gpu=16, workers_per_gpu=4, test_dataloader=dict(videos_per_gpu=1),
    train=dict(type=dataset_type, ann_file=ann_file, pipeline=pipe, split='xsub_train'),
    val=dict(type=dataset_type, ann_file=ann_file, pipeline=pipe, split='xsub_val'),
    test=dict(type=dataset_type, ann_file=ann_file, pipeline=pipe, split='xsub_val'))
optimizer = dict(type='SGD', lr=0.025, momentum=0.9, weight_decay=0.0005, nesterov=True)
optimizer_config = dict(grad_clip=None)
lr_config = dict(policy='CosineAnnealing', min_lr=0, by_epoch=False)
total_epochs = 150
checkpoint_config = dict(interval=1)
evaluation = dict(interval=1, metrics=['top_k_accuracy'])
log_config = dict(interval=100, hooks=[dict(type='TextLoggerHook')])
'''


@pytest.fixture
def official_cfg(tmp_path):
    path = tmp_path / 'j.py'
    path.write_text(OFFICIAL_STYLE)
    return load_config(path)


def test_official_schema_translates(official_cfg):
    kw = to_runner_kwargs(official_cfg, RunOptions(validate=True, seed=3))
    assert kw['train_dataloader']['batch_size'] == 16
    assert kw['train_dataloader']['num_workers'] == 4
    assert kw['train_dataloader']['sampler'] == dict(type='DefaultSampler', shuffle=True)
    assert kw['train_dataloader']['dataset']['split'] == 'xsub_train'
    assert kw['test_dataloader']['batch_size'] == 1          # test_dataloader override
    assert kw['val_dataloader']['batch_size'] == 16
    assert kw['val_dataloader']['dataset']['test_mode'] is True
    assert kw['train_cfg'] == dict(by_epoch=True, max_epochs=150, val_interval=1)
    opt = kw['optim_wrapper']
    assert opt['type'] == 'OptimWrapper' and opt['optimizer']['nesterov'] is True
    assert 'clip_grad' not in opt
    (sched,) = kw['param_scheduler']
    assert sched['type'] == 'CosineAnnealingLR' and sched['eta_min'] == 0
    assert sched['convert_to_iter_based'] is True            # by_epoch=False: per iteration
    assert sched['T_max'] == 150
    assert kw['default_hooks']['logger']['interval'] == 100
    assert kw['default_hooks']['checkpoint']['save_best'] == 'acc/top1'
    assert kw['default_hooks']['checkpoint']['backend_args'] == dict(backend='atomic_local')
    agent = [h for h in kw['custom_hooks'] if h['type'] == 'AgentHook'][0]
    assert agent['interval'] == 5 and agent['layout'] == 'nturgb+d'
    # an official config (no agent section) means the official recipe
    assert agent['num_classes'] == 60 and agent['llm'] == dict(
        type='OpenAIChat', model='gpt-4o', api_key_env='OPENAI_API_KEY', temperature=None,
        max_tokens=None)
    assert agent['transcripts'] == agent['masks'] == agent['prompts'] == 'official'
    assert agent['official'] is True and agent['label_map'] == 'ntu60'
    assert kw['randomness']['seed'] == 3
    assert kw['val_evaluator'][0]['metrics'] == ['top_k_accuracy']


def test_without_validate_has_no_val_loop(official_cfg):
    kw = to_runner_kwargs(official_cfg, RunOptions())
    assert 'val_dataloader' not in kw and 'val_evaluator' not in kw
    assert kw['default_hooks']['checkpoint']['save_best'] is None


def test_cfg_options_override(tmp_path):
    path = tmp_path / 'j.py'
    path.write_text(OFFICIAL_STYLE)
    cfg = load_config(path, {'data.videos_per_gpu': 4, 'total_epochs': 2,
                             'data.train.ann_file': 'other.pkl'})
    kw = to_runner_kwargs(cfg, RunOptions())
    assert kw['train_dataloader']['batch_size'] == 4
    assert kw['train_cfg']['max_epochs'] == 2
    assert kw['train_dataloader']['dataset']['ann_file'] == 'other.pkl'


def test_amp_and_grad_clip_and_warmup(tmp_path):
    path = tmp_path / 'c.py'
    path.write_text(OFFICIAL_STYLE + textwrap.dedent('''
        optimizer_config = dict(grad_clip=dict(max_norm=40, norm_type=2))
        lr_config = dict(policy='step', step=[10, 20], warmup='linear', warmup_iters=5,
                         warmup_ratio=0.1)
    '''))
    kw = to_runner_kwargs(load_config(path), RunOptions(amp=True))
    expected = 'AmpOptimWrapper' if torch.cuda.is_available() else 'AutocastOptimWrapper'
    assert kw['optim_wrapper']['type'] == expected
    assert kw['optim_wrapper']['clip_grad'] == dict(max_norm=40, norm_type=2)
    types = [s['type'] for s in kw['param_scheduler']]
    assert types == ['LinearLR', 'MultiStepLR']
    assert kw['param_scheduler'][1]['milestones'] == [10, 20]


def test_unknown_policy_is_named(tmp_path):
    path = tmp_path / 'c.py'
    path.write_text(OFFICIAL_STYLE + "lr_config = dict(policy='Banana')\n")
    with pytest.raises(ConfigError, match='Banana'):
        to_runner_kwargs(load_config(path), RunOptions())


def test_missing_config_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.py'):
        load_config(tmp_path / 'nope.py')


def test_test_mode_needs_no_optimizer(tmp_path):
    path = tmp_path / 'c.py'
    path.write_text(OFFICIAL_STYLE.replace("optimizer = dict(", "_unused = dict("))
    kw = to_runner_kwargs(load_config(path), RunOptions(load_from='x.pth'), mode='test')
    assert kw['load_from'] == 'x.pth' and 'optim_wrapper' not in kw
    with pytest.raises(ConfigError, match='optimizer'):
        to_runner_kwargs(load_config(path), RunOptions())
