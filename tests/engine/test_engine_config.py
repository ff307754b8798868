"""Translation of the PYSKL / official config schema onto mmengine Runner arguments."""
import textwrap
from pathlib import Path

import pytest
import torch

from skeletonagent.engine.config import ConfigError, RunOptions, load_config
from skeletonagent.engine.translate import to_runner_kwargs

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


# --------------------------------------------------------------------------- every key
ROOT = __import__('pathlib').Path(__file__).resolve().parents[2]
DEMO = ROOT / 'configs' / 'demo' / 'j.py'


def _official(tmp_path, extra=''):
    path = tmp_path / 'j.py'
    path.write_text(OFFICIAL_STYLE + textwrap.dedent(extra))
    return path


@pytest.mark.parametrize('options, first_line', [
    ({'total_epoch': 3}, 'unknown config key total_epoch (neither a key of the schema nor a '
                         'variable the config reads); did you mean total_epochs?'),
    ({'model.backbone.in_channel': 3}, 'unknown config key model.backbone.in_channel (not an '
                                       'argument of GCN_Module_LLM); did you mean in_channels?'),
    ({'model.cls_head.in_channel': 3}, 'unknown config key model.cls_head.in_channel (not an '
                                       'argument of SimpleHead); did you mean in_channels?'),
    ({'data.videos_per_gpuu': 4}, 'unknown config key data.videos_per_gpuu; did you mean '
                                  'videos_per_gpu'),
    ({'data.test_dataloader.videos_per_gp': 4}, 'unknown config key '
                                                'data.test_dataloader.videos_per_gp; did you mean '
                                                'videos_per_gpu'),
    ({'data.train.splt': 'x'}, 'unknown config key data.train.splt (not an argument of '
                               'PoseDataset); did you mean split?'),
    ({'optimizer.momentun': 0.9}, 'unknown config key optimizer.momentun (not an argument of '
                                  'SGD); did you mean momentum?'),
    ({'lr_config.min_l': 0}, 'unknown config key lr_config.min_l; did you mean min_lr?'),
    ({'checkpoint_config.intervl': 2}, 'unknown config key checkpoint_config.intervl; did you '
                                       'mean interval?'),
    ({'model.text_encoder': dict(type='MiniLM', trainabel=True)},
     'unknown config key model.text_encoder.trainabel (not an argument of MiniLM); did you '
     'mean trainable'),
    ({'model.backbone.type': 'GCN_Modul_LLM'}, "model.backbone.type: unknown model type "
                                               "'GCN_Modul_LLM' in the config; close registered "
                                               'names: GCN_Module_LLM'),
    ({'log_config.hooks': [dict(type='WandbLoggerHook')]},
     "log_config.hooks[0].type='WandbLoggerHook' is not a supported logger hook"),
    ({'log_config.hooks': [dict(type='TextLoggerHook', intervall=5)]},
     'unknown config key log_config.hooks[0].intervall (not used by TextLoggerHook); did you '
     'mean interval?'),
])
def test_a_key_the_run_would_not_use_is_named_with_its_path(tmp_path, options, first_line):
    cfg = load_config(_official(tmp_path), options)
    with pytest.raises(ConfigError) as info:
        to_runner_kwargs(cfg, RunOptions())
    assert str(info.value).splitlines()[0].startswith(first_line), str(info.value)


def test_pipeline_typo_is_named_with_its_index(tmp_path):
    cfg = load_config(_official(tmp_path), {'data.train.pipeline.0.align_spin': False})
    with pytest.raises(ConfigError, match=r'^unknown config key data\.train\.pipeline\[0\]\.'
                                          r'align_spin \(not an argument of PreNormalize3D\); '
                                          r'did you mean align_spine'):
        to_runner_kwargs(cfg, RunOptions())


def test_every_problem_is_listed(tmp_path):
    cfg = load_config(_official(tmp_path), {'total_epoch': 3, 'data.videos_per_gpuu': 2})
    with pytest.raises(ConfigError) as info:
        to_runner_kwargs(cfg, RunOptions())
    lines = str(info.value).splitlines()
    assert lines[0].endswith('(and 1 more below)')
    assert any('data.videos_per_gpuu' in line for line in lines[1:])


def test_variables_the_config_reads_are_not_keys(tmp_path):
    # modality, graph, work_dir, dataset_type, ann_file, pipe: read by other keys
    to_runner_kwargs(load_config(_official(tmp_path)), RunOptions())
    # one that nothing reads is a typo or a leftover
    cfg = load_config(_official(tmp_path, 'clip_len = 100\n'))
    with pytest.raises(ConfigError, match='^unknown config key clip_len'):
        to_runner_kwargs(cfg, RunOptions())
    # _private names are the config's own business
    to_runner_kwargs(load_config(_official(tmp_path, '_scratch = 3\n')), RunOptions())


def test_paper_and_demo_configs_use_every_key():
    import glob

    from skeletonagent.engine.config_keys import check_config
    files = sorted(glob.glob(str(ROOT / 'configs' / '**' / '*.py'), recursive=True))
    files = [f for f in files if not f.endswith('_generate.py')]
    assert len(files) > 40
    for file in files:
        check_config(load_config(file))


def test_unexpected_argument_at_build_time_is_named_with_its_path():
    """GCN_Module_LLM takes **kwargs (routed to its units): a key far from its arguments is
    only refused when the model is built, and the error names the config path."""
    from skeletonagent.engine.runner import build_model
    cfg = load_config(DEMO, {'model.backbone.foo': 1})
    with pytest.raises(ConfigError, match=r'^unknown config key model\.backbone\.foo \(not an '
                                          r'argument of GCN_Module_LLM\)'):
        build_model(cfg, for_training=False)


# --------------------------------------------------------------------------- tools' parsing
def test_cfg_options_item_without_a_value_is_a_config_error():
    import argparse

    from skeletonagent.engine.config import CfgOptionsAction
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=CfgOptionsAction)
    assert parser.parse_args(['--cfg-options', 'a.b=1']).cfg_options == {'a.b': 1}
    with pytest.raises(ConfigError, match=r"^--cfg-options 'total_epochs': give KEY=VALUE"):
        parser.parse_args(['--cfg-options', 'total_epochs'])


def test_syntax_error_names_the_file_and_line(tmp_path):
    base = tmp_path / 'base.py'
    base.write_text('x = 1\ny = [1,\n')
    child = tmp_path / 'child.py'
    child.write_text("_base_ = ['base.py']\nz = 2\n")
    for path, where in ((base, base), (child, base)):
        with pytest.raises(ConfigError, match=rf'^syntax error in config {where}, line 2: '):
            load_config(path)


# --------------------------------------------------------------------------- fine-tuning
def test_load_from_fine_tunes_and_resume_wins(tmp_path):
    from skeletonagent.engine.spec import resolve_run
    cfg = load_config(_official(tmp_path, "load_from = 'pre.pth'\n"))
    kw = to_runner_kwargs(cfg, RunOptions())
    hooks = [h for h in kw['custom_hooks'] if h['type'] == 'LoadPretrainedHook']
    assert hooks == [dict(type='LoadPretrainedHook', checkpoint='pre.pth')]
    assert not kw.get('resume') and kw.get('load_from') is None   # not mmengine's loader
    kw = to_runner_kwargs(cfg, RunOptions(resume='run/epoch_3.pth'))
    assert kw['resume'] is True and kw['load_from'] == 'run/epoch_3.pth'
    assert not [h for h in kw['custom_hooks'] if h['type'] == 'LoadPretrainedHook']
    # resume_from is --resume PATH; the command line wins
    cfg = load_config(_official(tmp_path, "resume_from = 'run/epoch_2.pth'\n"),
                      {'agent': dict(llm=dict(type='Offline'))})   # no official texts needed
    spec = resolve_run(cfg, RunOptions())
    assert spec.options.resume == spec.resume_requested == 'run/epoch_2.pth'
    assert spec.runner_kwargs['load_from'] == 'run/epoch_2.pth'
    spec = resolve_run(cfg, RunOptions(resume='auto'))   # nothing in the work dir to resume
    assert spec.resume_requested == 'auto' and spec.options.resume is None
    assert not spec.runner_kwargs.get('resume')


def _demo_model(num_classes):
    from skeletonagent.engine.runner import build_model
    cfg = load_config(DEMO, {'model.backbone.num_classes': num_classes,
                             'model.cls_head.num_classes': num_classes})
    return build_model(cfg, for_training=False)


def test_load_pretrained_takes_what_fits_and_says_what_not(tmp_path):
    from types import SimpleNamespace

    from skeletonagent.engine.finetune import LoadPretrainedHook, load_pretrained
    source = _demo_model(60)
    path = tmp_path / 'ntu.pth'
    torch.save({'state_dict': {**source.state_dict(), 'extra.weight': torch.zeros(2)}}, path)
    model = _demo_model(12)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = load_pretrained(model, path)
    after = model.state_dict()
    mismatched = {k for k, _, _ in result.shape_mismatch}
    assert 'cls_head.fc_cls.weight' in mismatched and 'cls_head.fc_cls.bias' in mismatched
    assert result.unused == ['extra.weight'] and not result.not_in_checkpoint
    for key in after:
        expected = before[key] if key in mismatched else source.state_dict()[key]
        assert torch.equal(after[key], expected), key
    line = result.summary()
    assert line.startswith(f'fine-tuning from {path}: {len(result.loaded)} of {len(after)} model '
                           f'weights loaded; {len(mismatched)} left as initialised, of another '
                           'shape in the checkpoint (')
    assert '1 checkpoint weights not used (extra.weight)' in line
    # the hook logs it and hands it to the run-info block
    logged, info = [], {}
    runner = SimpleNamespace(model=_demo_model(12),
                             logger=SimpleNamespace(info=logged.append, warning=logged.append),
                             message_hub=SimpleNamespace(update_info=info.__setitem__))
    LoadPretrainedHook(str(path)).before_train(runner)
    assert logged == [line] and info == {'run_info/weights': {'weights': line}}


def test_load_pretrained_refuses_weights_of_another_model(tmp_path):
    from skeletonagent.engine.finetune import load_pretrained
    path = tmp_path / 'other.pth'
    torch.save({'state_dict': {'conv.weight': torch.zeros(3, 3)}}, path)
    with pytest.raises(ConfigError, match=r'^load_from: none of the 1 weights of .*other\.pth '
                                          r'fits the model'):
        load_pretrained(_demo_model(12), path)
    with pytest.raises(ConfigError, match='^load_from: checkpoint not found'):
        load_pretrained(_demo_model(12), tmp_path / 'missing.pth')


# --------------------------------------------------------------------------- log_config
def test_log_config_hooks_translate(tmp_path):
    cfg = load_config(_official(tmp_path, """
        log_config = dict(interval=100, hooks=[dict(type='TextLoggerHook', interval=20),
                                               dict(type='TensorboardLoggerHook', log_dir='tb')])
    """))
    kw = to_runner_kwargs(cfg, RunOptions())
    assert kw['default_hooks']['logger']['interval'] == 20
    assert kw['log_processor']['window_size'] == 20
    backends = kw['visualizer']['vis_backends']
    assert backends[0] == dict(type='LocalVisBackend')
    # (no TensorBoard backend where TensorBoard is not installed)
    assert backends[1:] in ([dict(type='TensorboardVisBackend', save_dir='tb')], [])


# --------------------------------------------------------------------------- compat knobs
def _warnings(cfg, opts=None):
    from skeletonagent.agent.settings import agent_settings
    from skeletonagent.engine.compat import compat_warnings
    return compat_warnings(cfg, dict(agent=agent_settings(cfg), launcher='none'))


def test_compat_knobs_warn_only_when_they_disagree(tmp_path):
    cfg = load_config(ROOT / 'configs' / 'ntu60_xsub' / 'j.py')
    assert _warnings(cfg) == []
    cfg = load_config(ROOT / 'configs' / 'ntu60_xsub' / 'j.py',
                      {'agent.interval': 10, 'agent.llm.model': 'deepseek-chat',
                       'work_dir': str(tmp_path / 'elsewhere')})
    lines = _warnings(cfg)
    assert ("model.cls_head.interval_epoch=5 is kept for official compatibility only and not "
            "used: the agent asks every agent.interval=10 epochs") in lines
    assert ("model.backbone.llm_model='gpt4o' is kept for official compatibility only and not "
            "used: the agent asks agent.llm.model='deepseek-chat'") in lines
    # the documented work_dir= override moves the run: cls_head.work_dir (the config file's own
    # work_dir, as the official configs repeat it) is not worth a warning then
    assert not any('cls_head.work_dir' in line for line in lines)
    cfg = load_config(ROOT / 'configs' / 'ntu60_xsub' / 'j.py',
                      {'model.cls_head.work_dir': str(tmp_path / 'head'),
                       'work_dir': str(tmp_path / 'elsewhere')})
    assert (f"model.cls_head.work_dir='{tmp_path / 'head'}' is kept for official "
            f"compatibility only and not used: this run writes to {tmp_path / 'elsewhere'} "
            "(work_dir)") in _warnings(cfg)
    cfg = load_config(_official(tmp_path, "workflow = [('train', 1), ('val', 1)]\n"
                                          "dist_params = dict(backend='nccl')\n"))
    assert any(line.startswith("workflow=[('train', 1), ('val', 1)] is kept")
               for line in _warnings(cfg))


def test_compat_table_is_documented():
    from skeletonagent.engine.compat import all_compat_keys
    docs = (ROOT / 'docs' / 'interfaces.md').read_text(encoding='utf-8')
    keys = all_compat_keys()
    assert 'model.backbone.llm_model' in {c.key for c in keys}     # the agent plugin's
    assert all(f'`{c.key}`' in docs for c in keys)


# --------------------------------------------------------------------------- test runs
def test_a_test_run_logs_beside_the_training_work_dir(official_cfg, tmp_path):
    kw = to_runner_kwargs(official_cfg, RunOptions(load_from='x.pth'), mode='test')
    assert kw['work_dir'] == str(Path('./work_dirs/ntu60_xsub/j') / 'test')
    kw = to_runner_kwargs(official_cfg, RunOptions(load_from='x.pth', work_dir=str(tmp_path)),
                          mode='test')
    assert kw['work_dir'] == str(tmp_path)


# --------------------------------------------------------------------------- preflight
PAPER = ROOT / 'configs' / 'ntu60_xsub' / 'j.py'


@pytest.fixture(scope='module')
def tiny_pickle(tmp_path_factory):
    from skeletonagent.datasets.synthetic import ensure_demo_data
    return ensure_demo_data(tmp_path_factory.mktemp('data') / 'tiny.pkl', num_train_per_class=1,
                            num_val_per_class=1, num_test_per_class=1)



def _datasets(cfg, splits):
    from skeletonagent.datasets.config_view import config_datasets
    return [entry for split in splits for entry in config_datasets(cfg, split)]

def test_data_is_checked_first_and_named(tmp_path, tiny_pickle):
    from skeletonagent.engine.preflight import DataMissing, check_data, preflight
    missing = tmp_path / 'ntu60_3danno.pkl'
    # the paper config without data (and without the agent import): the data is named
    cfg = load_config(PAPER, {'data.train.ann_file': str(missing),
                              'agent.official_dir': str(tmp_path / 'no_import')})
    with pytest.raises(DataMissing, match=rf'^annotation file not found: {missing} '
                                          r'\(data\.train\.ann_file\); data/README\.md'):
        preflight(cfg, RunOptions(), 'train')
    # val is read only with --validate, test only when testing
    cfg = load_config(PAPER, {'data.train.ann_file': str(tiny_pickle),
                              'data.val.ann_file': str(missing)})
    check_data(_datasets(cfg, ['train']))
    with pytest.raises(DataMissing, match=r'data\.val\.ann_file'):
        check_data(_datasets(cfg, ['train', 'val']))
    truncated = tmp_path / 'cut.pkl'
    truncated.write_bytes(tiny_pickle.read_bytes()[:-10])
    with pytest.raises(DataMissing, match=r'cut\.pkl \(data\.test\.ann_file\) is truncated'):
        check_data(_datasets(load_config(PAPER, {'data.test.ann_file': str(truncated)}), ['test']))
    with pytest.raises(DataMissing, match='is a folder'):
        check_data(_datasets(load_config(PAPER, {'data.test.ann_file': str(tmp_path)}), ['test']))


def test_wrapped_datasets_are_checked(tmp_path):
    from skeletonagent.engine.preflight import DataMissing, check_data
    cfg = load_config(PAPER, {'data.train': dict(type='RepeatDataset', times=2, dataset=dict(
        type='PoseDataset', ann_file=str(tmp_path / 'x.pkl'), pipeline=[]))})
    with pytest.raises(DataMissing, match=r'\(data\.train\.dataset\.ann_file\)'):
        check_data(_datasets(cfg, ['train']))


def test_demo_data_at_the_demo_path_is_generated_not_missing(tmp_path, monkeypatch):
    from skeletonagent.engine.preflight import DataMissing, check_data
    monkeypatch.chdir(tmp_path)                       # no data/demo/ here yet
    check_data(_datasets(load_config(DEMO), ['train', 'val', 'test']))
    with pytest.raises(DataMissing, match='other_place.pkl'):
        check_data(_datasets(load_config(DEMO, {'data.train.ann_file': 'other_place.pkl'}), ['train']))


def test_agent_texts_come_after_data_and_before_the_text_encoder(tmp_path, tiny_pickle,
                                                                  monkeypatch):
    from skeletonagent.agent.sources import AgentSourceMissing
    from skeletonagent.engine import preflight as pf
    from skeletonagent.models.text import availability
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setattr(availability, '_cached', lambda repo: False)
    data = {f'data.{s}.ann_file': str(tiny_pickle) for s in ('train', 'val', 'test')}
    cfg = load_config(PAPER, {**data, 'agent.official_dir': str(tmp_path / 'no_import')})
    with pytest.raises(AgentSourceMissing):
        pf.preflight(cfg, RunOptions(work_dir=None), 'train')
    cfg = load_config(PAPER, {**data, 'agent.transcripts': None, 'agent.masks': None,
                              'agent.prompts': None, 'agent.llm.type': 'Offline',
                              'work_dir': str(tmp_path / 'w')})
    with pytest.raises(availability.TextEncoderUnavailable) as info:
        pf.preflight(cfg, RunOptions(), 'train')
    text = str(info.value)
    assert text.splitlines()[0] == (
        'the CLIP text encoder weights (openai/clip-vit-base-patch32) are not in the Hugging '
        'Face cache and cannot be downloaded: offline mode is on (HF_HUB_OFFLINE);')
    assert '--cfg-options model.text_encoder.pretrained=DIR' in text
    assert ('--cfg-options model.text_encoder.type=MiniLM model.backbone.text_dim=384 '
            'model.backbone.text_key=MiniLM') in text
    cfg.data.test.split = 'test'                     # the tiny pickle's split names
    pf.preflight(cfg, RunOptions(), 'test')          # testing needs no text encoder


def test_text_encoder_check_without_network_or_with_a_local_copy(tmp_path, monkeypatch):
    from skeletonagent.models.recognizers.recognizer_gcn import DEFAULT_TEXT_ENCODER
    from skeletonagent.models.text import availability as pf

    def text_encoder(cfg):
        return cfg.model.get('text_encoder') or DEFAULT_TEXT_ENCODER
    monkeypatch.delenv('HF_HUB_OFFLINE', raising=False)
    monkeypatch.delenv('TRANSFORMERS_OFFLINE', raising=False)
    monkeypatch.setattr(pf, '_cached', lambda repo: False)
    monkeypatch.setattr(pf, '_hub_unreachable', lambda repo: 'ConnectError: [Errno -3] no DNS')
    with pytest.raises(pf.TextEncoderUnavailable,
                       match=r'cannot be downloaded: ConnectError: \[Errno -3\] no DNS;'):
        pf.check_text_encoder(text_encoder(load_config(PAPER)))
    with pytest.raises(pf.TextEncoderUnavailable,
                       match=rf'^the CLIP text encoder directory {tmp_path}/clip '
                             r'\(model\.text_encoder\.pretrained\) does not exist'):
        pf.check_text_encoder(text_encoder(load_config(PAPER, {'model.text_encoder.pretrained':
                                                               str(tmp_path / 'clip')})))
    (tmp_path / 'clip').mkdir()
    local = {'model.text_encoder.pretrained': str(tmp_path / 'clip')}
    pf.check_text_encoder(text_encoder(load_config(PAPER, local)))
    monkeypatch.setattr(pf, '_cached', lambda repo: True)
    pf.check_text_encoder(text_encoder(load_config(PAPER)))
    pf.check_text_encoder(text_encoder(load_config(DEMO)))          # MiniLM ships with the package


def test_work_dir_must_be_writable(tmp_path):
    from skeletonagent.engine.preflight import check_work_dir
    (tmp_path / 'file').write_text('')
    with pytest.raises(ConfigError, match=rf'^cannot write to the work dir {tmp_path}/file/run: '
                                          rf'{tmp_path}/file is not a directory; give another'):
        check_work_dir(tmp_path / 'file' / 'run')
    check_work_dir(tmp_path / 'new' / 'run')
    assert not (tmp_path / 'new').exists()          # nothing created by the check


# --------------------------------------------------------------------------- quiet logs
def test_every_registry_mmengine_builds_from_has_our_scope(monkeypatch):
    """With the runner's default scope 'skeletonagent', mmengine looks for that scope's child
    of each registry and warns 'Failed to search registry with scope' when there is none."""
    import mmengine.registry as mm
    from mmengine.registry import DefaultScope

    import skeletonagent.registry  # noqa: F401
    roots = [v for v in vars(mm).values() if isinstance(v, mm.Registry)]
    assert roots and all('skeletonagent' in root.children for root in roots), \
        [r.name for r in roots if 'skeletonagent' not in r.children]
    messages = []
    monkeypatch.setattr('mmengine.logging.print_log', lambda msg, *a, **k: messages.append(msg))
    with DefaultScope.overwrite_default_scope('skeletonagent'):
        optimizer = mm.OPTIMIZERS.build(dict(type='SGD', lr=0.1,
                                             params=[torch.nn.Parameter(torch.zeros(1))]))
    assert type(optimizer).__name__ == 'SGD'
    assert not [m for m in messages if 'Failed to search registry' in m]


def test_tensorboard_tags_by_phase_and_flat_json(tmp_path):
    import json

    from mmengine.visualization import LocalVisBackend, TensorboardVisBackend
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from skeletonagent.engine.logs import PhaseVisualizer, with_phase
    vis = PhaseVisualizer(name='phase_test', save_dir=str(tmp_path),
                          vis_backends=[dict(type='LocalVisBackend'),
                                        dict(type='TensorboardVisBackend')])
    assert {type(b) for b in vis._vis_backends.values()} == {LocalVisBackend, TensorboardVisBackend}
    vis.add_scalars(with_phase({'loss': 1.0, 'time': 0.5, 'epoch': 1, 'iter': 7}, 'train'), step=7)
    vis.add_scalars(with_phase({'acc/top1': 0.25, 'time': 0.1}, 'val'), step=1)
    vis.add_scalars({'agent/version': 1}, step=7)
    vis.close()
    lines = (tmp_path / 'vis_data' / 'scalars.json').read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert records == [dict(loss=1.0, time=0.5, epoch=1, iter=7, step=7),
                       {'acc/top1': 0.25, 'time': 0.1, 'step': 1}, {'agent/version': 1, 'step': 7}]
    acc = EventAccumulator(str(tmp_path / 'vis_data'))
    acc.Reload()
    assert set(acc.Tags()['scalars']) == {'train/loss', 'train/time', 'train/epoch', 'val/acc/top1',
                                          'val/time', 'agent/version'}
    assert [e.step for e in acc.Scalars('val/time')] == [1]


def test_unused_file_client_notices_are_kept_out_of_the_log(tmp_path):
    import logging
    from types import SimpleNamespace

    from mmengine.fileio import FileClient
    from mmengine.logging import MMLogger, print_log

    from skeletonagent.engine.logs import QuietLogsHook
    logger = MMLogger.get_instance('quiet_logs_test')
    seen = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())
    logger.addHandler(Keep())
    hook, runner = QuietLogsHook(), SimpleNamespace(logger=logger)
    hook.before_run(runner)
    FileClient.infer_client(None, str(tmp_path))      # what mmengine's CheckpointHook does
    print_log('another warning', logger='quiet_logs_test', level=logging.WARNING)
    hook.after_run(runner)
    assert seen == ['another warning']
