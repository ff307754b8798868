"""Every command-line option on a config written in mmengine's own schema is applied, or
refused with one line, as on a PYSKL-style config (none is dropped without a word)."""
from pathlib import Path

import pytest

from skeletonagent.engine.config import ConfigError, RunOptions, load_config
from skeletonagent.engine.spec import resolve_run

ROOT = Path(__file__).resolve().parents[2]
DEMO_PICKLE = ROOT / 'data' / 'demo' / 'demo_3danno.pkl'

_PIPELINE = """[
    dict(type='PreNormalize3D', align_spine=False),
    dict(type='GenSkeFeat', feats=['j']),
    dict(type='UniformSampleDecode', clip_len=16, num_clips=1),
    dict(type='FormatGCNInput'),
    dict(type='Collect', keys=['keypoint', 'label'], meta_keys=[]),
    dict(type='ToTensor', keys=['keypoint'])]"""

_CONFIG = f"""
default_scope = 'skeletonagent'
work_dir = {{work_dir!r}}
model = dict(
    type='RecognizerGCN',
    backbone=dict(type='GCN_Module_LLM', llm_modality='j', num_classes=12, base_channels=8,
                  num_stages=2, inflate_stages=[], down_stages=[], text_dim=384,
                  text_key='MiniLM', graph_cfg=dict(layout='nturgb+d', mode='spatial')),
    cls_head=dict(type='SimpleHead', joint_cfg='nturgb+d', num_classes=12, in_channels=8,
                  weight_1=0.2, weight_2=0.5),
    text_encoder=dict(type='MiniLM', trainable=False))
pipeline = {_PIPELINE}
def loader(split, shuffle):
    return dict(batch_size=4, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=shuffle),
                collate_fn=dict(type='pose_collate'),
                dataset=dict(type='DemoPoseDataset', ann_file={str(DEMO_PICKLE)!r},
                             pipeline=pipeline, split=split))
train_dataloader = loader('train', True)
val_dataloader = loader('val', False)
test_dataloader = loader('test', False)
train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
val_evaluator = [dict(type='SkeletonAccuracy')]
test_evaluator = [dict(type='SkeletonAccuracy')]
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.1, momentum=0.9),
                     clip_grad=dict(max_norm=10))
randomness = dict(seed=1)
custom_hooks = [dict(type='ProgressBarHook')]
agent = dict(label_map='demo', llm=dict(type='Offline'))
"""


def _config(tmp_path, extra: str = '', options: dict | None = None):
    path = tmp_path / 'mm.py'
    path.write_text(_CONFIG.format(work_dir=str(tmp_path / 'work')) + extra)
    return load_config(path, options)


def _spec(tmp_path, mode='train', extra='', cfg_options=None, **opts):
    return resolve_run(_config(tmp_path, extra, cfg_options), RunOptions(**opts), mode)


def test_an_mmengine_config_is_recognised_and_keeps_its_arguments(tmp_path):
    spec = _spec(tmp_path, validate=True)
    assert not spec.legacy
    kw = spec.runner_kwargs
    assert kw['train_cfg'] == dict(by_epoch=True, max_epochs=1, val_interval=1)
    assert kw['optim_wrapper']['type'] == 'OptimWrapper'
    assert kw['work_dir'] == str(tmp_path / 'work')
    assert [d.path for d in spec.datasets] == ['train_dataloader.dataset',
                                               'val_dataloader.dataset']
    assert spec.class_names.source == 'agent.label_map' and len(spec.class_names.names) == 12
    assert spec.layout == 'nturgb+d'


def test_seed_and_deterministic(tmp_path):
    assert _spec(tmp_path).runner_kwargs['randomness'] == dict(seed=1)
    kw = _spec(tmp_path, seed=7, deterministic=True).runner_kwargs
    assert kw['randomness'] == dict(seed=7, deterministic=True)


def test_amp_wraps_the_optimizer_and_keeps_the_wrapper_settings(tmp_path):
    kw = _spec(tmp_path, amp=True).runner_kwargs
    wrapper = kw['optim_wrapper']
    assert wrapper['type'] in ('AutocastOptimWrapper', 'AmpOptimWrapper')
    assert wrapper['optimizer'] == dict(type='SGD', lr=0.1, momentum=0.9)
    assert wrapper['clip_grad'] == dict(max_norm=10)


def test_amp_is_refused_for_a_wrapper_it_would_replace(tmp_path):
    with pytest.raises(ConfigError, match=r"^--amp cannot be applied .*'MyWrapper'"):
        _spec(tmp_path, cfg_options={'optim_wrapper.type': 'MyWrapper'}, amp=True)


def test_validate_keeps_validation_and_its_absence_drops_it(tmp_path):
    kw = _spec(tmp_path, validate=True).runner_kwargs
    assert kw['val_cfg'] == dict(type='ValLoop') and kw['val_dataloader']
    kw = _spec(tmp_path).runner_kwargs
    assert not {'val_dataloader', 'val_cfg', 'val_evaluator'} & set(kw)


def test_validate_is_refused_without_validation_settings(tmp_path):
    with pytest.raises(ConfigError, match='^--validate cannot be applied .*val_cfg'):
        _spec(tmp_path, extra='val_cfg = None\n', validate=True)


def test_resume_a_path_or_auto(tmp_path):
    kw = _spec(tmp_path, resume='run/epoch_3.pth').runner_kwargs
    assert kw['resume'] is True and kw['load_from'] == 'run/epoch_3.pth'
    spec = _spec(tmp_path, resume='auto')            # nothing saved yet: a new run
    assert spec.options.resume is None and not spec.runner_kwargs.get('resume')
    (tmp_path / 'work').mkdir()
    (tmp_path / 'work' / 'epoch_1.pth').write_bytes(b'x')
    spec = _spec(tmp_path, resume='auto')
    assert spec.options.resume == str(tmp_path / 'work' / 'epoch_1.pth')
    assert spec.runner_kwargs['resume'] is True


def test_the_agent_section_adds_its_hook_and_is_checked(tmp_path):
    spec = _spec(tmp_path)
    assert spec.plugin('agent') is not None
    hooks = [h['type'] for h in spec.new_runner_kwargs()['custom_hooks']]
    assert hooks == ['ProgressBarHook', 'AgentHook']
    assert _spec(tmp_path, 'test').new_runner_kwargs()['custom_hooks'] == \
        [dict(type='ProgressBarHook')]                # testing asks no agent
    with pytest.raises(ConfigError, match='unknown config key agent.intervall'):
        _spec(tmp_path, cfg_options={'agent.intervall': 3})


def test_extra_hooks_and_launcher(tmp_path):
    spec = _spec(tmp_path, extra_hooks=[dict(type='RunInfoHook')], launcher='pytorch')
    assert spec.runner_kwargs['launcher'] == 'pytorch'
    assert [h['type'] for h in spec.runner_kwargs['custom_hooks']] == ['ProgressBarHook',
                                                                       'RunInfoHook']


def test_test_work_dir_eval_and_out(tmp_path):
    spec = _spec(tmp_path, 'test')
    assert spec.work_dir == spec.runner_kwargs['work_dir'] == str(tmp_path / 'work' / 'test')
    spec = _spec(tmp_path, 'test', work_dir=str(tmp_path / 'logs'),
                 metrics=['mean_class_accuracy'], out_file='p.pkl')
    assert spec.runner_kwargs['work_dir'] == str(tmp_path / 'logs')
    assert spec.runner_kwargs['test_evaluator'] == [dict(type='SkeletonAccuracy',
                                                         metrics=['mean_class_accuracy'])]
    other = {'test_evaluator': [dict(type='Accuracy')]}
    with pytest.raises(ConfigError, match='^--eval cannot be applied'):
        _spec(tmp_path, 'test', cfg_options=other, metrics=['top_k_accuracy'])
    with pytest.raises(ConfigError, match='^--out cannot be applied'):
        _spec(tmp_path, 'test', cfg_options=other, out_file='p.pkl')


def test_compile_and_workers_reach_the_runner(tmp_path, monkeypatch):
    from skeletonagent.engine import runner as engine_runner
    compiled = []
    monkeypatch.setattr(engine_runner, 'compile_backbone', compiled.append)
    monkeypatch.setattr(engine_runner, 'SkeletonRunner',
                        lambda model, **kwargs: type('R', (), dict(register_hook=lambda s, h: None,
                                                                   kwargs=kwargs))())
    spec = _spec(tmp_path, 'test', compile=True,
                 cfg_options={'test_dataloader.num_workers': 4})
    built = engine_runner.build_runner(spec, workers=1)
    assert len(compiled) == 1
    assert built.kwargs['test_dataloader']['num_workers'] == 1


def test_an_mmengine_config_trains_validates_and_tests(tmp_path):
    """The whole way, as tools/train.py goes: resolve, check, train with --validate and a
    seed, test the last checkpoint."""
    from skeletonagent.datasets.synthetic import ensure_demo_data
    from skeletonagent.engine.preflight import preflight
    from skeletonagent.engine.runner import train
    ensure_demo_data(DEMO_PICKLE)
    cfg = _config(tmp_path, options={'agent.interval': 0})
    spec = preflight(resolve_run(cfg, RunOptions(validate=True, seed=3), 'train',
                                 ['train', 'val', 'test']))
    assert spec.plugin('agent').is_resolved
    results = train(spec, test_last=True, threads=1)
    assert 0.0 <= results['last']['acc/top1'] <= 1.0
    work = tmp_path / 'work'
    assert (work / 'epoch_1.pth').is_file() and (work / 'last_pred.pkl').is_file()
    assert list(work.glob('*/vis_data/scalars.json'))           # validation ran and logged
    assert any('val/acc/top1' in p.read_text() or 'acc/top1' in p.read_text()
               for p in work.glob('*/vis_data/scalars.json'))
