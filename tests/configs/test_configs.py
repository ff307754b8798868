"""The 48 benchmark configs ``configs/<dataset>/<stream>.py``.

They are checked against a table written here from the official SkeletonAgent configs
(github.com/firework8/SkeletonAgent ``configs/*/*.py``) independently of the generator's
table; they load and translate onto mmengine; every model shape builds and runs; the
pipelines run on small generated samples in each dataset's format; the label maps hold the
datasets' class counts. Kinetics is read from compressed kpfiles through memcached (its own
tests): here its pipeline runs on an in-memory compressed sample.
"""
from __future__ import annotations

import argparse
import copy
import importlib.util
import pickle
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from skeletonagent.engine.config import RunOptions, load_config
from skeletonagent.engine.translate import to_runner_kwargs

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / 'configs'
STREAMS = ('j', 'b', 'k', 'jm', 'bm', 'km')
MS_CFG = [(3, 1), (3, 2), (3, 3), (3, 4), ('max', 3), '1x1']
COCO_LEFT, COCO_RIGHT = (1, 3, 5, 7, 9, 11, 13, 15), (2, 4, 6, 8, 10, 12, 14, 16)  # official


def _w(jb, bb, kb):
    """(weight_1, weight_2) per stream from the pairs of j/jm, b/bm and k/km."""
    return dict(j=jb, jm=jb, b=bb, bm=bb, k=kb, km=kb)


def _aug(name, *streams):
    return dict.fromkeys(streams, name)


# The official values, per dataset (written from the official files, not from the generator).
OFFICIAL = {
    'ntu60_xsub': dict(kind='ntu', classes=60, graph='nturgb+d', V=25, label_map='ntu60',
                       ann='data/nturgbd/ntu60_3danno.pkl', split=('xsub_train', 'xsub_val'),
                       epochs=150, interval=5, w=_w((0.2, 0.5), (0.2, 0.2), (0.2, 0.2)),
                       aug=_aug('Spatial_Flip', 'b', 'bm', 'k', 'km')),
    'ntu60_xview': dict(kind='ntu', classes=60, graph='nturgb+d', V=25, label_map='ntu60',
                        ann='data/nturgbd/ntu60_3danno.pkl', split=('xview_train', 'xview_val'),
                        epochs=150, interval=5, w=_w((0.2, 0.5), (0.2, 0.2), (0.2, 0.2)),
                        aug=_aug('Part_Drop', 'k', 'km')),
    'ntu120_xsub': dict(kind='ntu', classes=120, graph='nturgb+d', V=25, label_map='ntu120',
                        ann='data/nturgbd/ntu120_3danno.pkl', split=('xsub_train', 'xsub_val'),
                        epochs=150, interval=5, w=_w((0.3, 0.1), (0.3, 0.3), (0.2, 0.3)),
                        aug={**_aug('Spatial_Flip', 'j', 'jm', 'b', 'bm'),
                             **_aug('Part_Drop', 'k', 'km')}),
    'ntu120_xset': dict(kind='ntu', classes=120, graph='nturgb+d', V=25, label_map='ntu120',
                        ann='data/nturgbd/ntu120_3danno.pkl', split=('xset_train', 'xset_val'),
                        epochs=150, interval=5, w=_w((0.3, 0.1), (0.3, 0.3), (0.2, 0.3)),
                        aug=_aug('Spatial_Flip', 'b', 'bm', 'k', 'km')),
    'k400': dict(kind='k400', classes=400, graph='coco_new', V=20, label_map='k400',
                 ann='data/k400/k400_hrnet.pkl', split=('train', 'val'), epochs=150,
                 interval=50, w=_w((0.005, 0.01), (0.005, 0.01), (0.005, 0.01)), aug={}),
    'finegym': dict(kind='gym', classes=99, graph='coco_new', V=20, label_map='finegym',
                    ann='data/gym/gym_hrnet.pkl', split=('train', 'val'), epochs=150,
                    interval=5, w=_w((0.1, 0.1), (0.1, 0.1), (0.05, 0.1)), aug={}),
    'uav_csv1': dict(kind='uav', classes=155, graph='uav', V=17, label_map='uav',
                     ann='data/uav/uav_human.pkl', split=('csv1_train', 'csv1_val'), epochs=300,
                     interval=5, w=_w((0.2, 0.2), (0.3, 0.2), (0.05, 0.2)), aug={}),
    'uav_csv2': dict(kind='uav', classes=155, graph='uav', V=17, label_map='uav',
                     ann='data/uav/uav_human.pkl', split=('csv2_train', 'csv2_val'), epochs=150,
                     interval=5, w=_w((0.2, 0.2), (0.3, 0.2), (0.05, 0.2)), aug={}),
}
KIND = dict(
    ntu=dict(backbone='GCN_Module_LLM', lr=0.025, batch=16, workers=4, num_person=None,
             metrics=['top_k_accuracy'],
             train=['PreNormalize3D', 'RandomRot', 'AUG', 'GenSkeFeat', 'UniformSampleDecode'],
             test=['PreNormalize3D', 'GenSkeFeat', 'UniformSampleDecode']),
    k400=dict(backbone='GCN_Module_LLM_K400', lr=0.1, batch=64, workers=16, num_person=2,
              metrics=['top_k_accuracy', 'mean_class_accuracy'],
              train=['DecompressPose', 'UniformSampleFrames', 'PoseDecode', 'Flip',
                     'Kinetics_Transform', 'GenSkeFeat'],
              test=['DecompressPose', 'UniformSampleFrames', 'PoseDecode', 'Kinetics_Transform',
                    'GenSkeFeat']),
    gym=dict(backbone='GCN_Module_LLM', lr=0.025, batch=16, workers=4, num_person=2,
             metrics=['top_k_accuracy', 'mean_class_accuracy'],
             train=['UniformSampleFrames', 'PoseDecode', 'Flip', 'Kinetics_Transform', 'GenSkeFeat'],
             test=['UniformSampleFrames', 'PoseDecode', 'Kinetics_Transform', 'GenSkeFeat']),
    uav=dict(backbone='GCN_Module_LLM', lr=0.025, batch=16, workers=4, num_person=2,
             metrics=['top_k_accuracy', 'mean_class_accuracy'],
             train=['UniformSampleFrames', 'PoseDecode', 'GenSkeFeat'],
             test=['UniformSampleFrames', 'PoseDecode', 'GenSkeFeat']),
)
TAIL = ['FormatGCNInput', 'Collect', 'ToTensor']
ALL = [(ds, s) for ds in OFFICIAL for s in STREAMS]
IDS = [f'{ds}/{s}' for ds, s in ALL]
#: One config per distinct model shape (layout, classes, backbone type).
SHAPES = ['ntu60_xsub/j', 'ntu120_xset/b', 'k400/k', 'finegym/jm', 'uav_csv1/km']


def _path(ds: str, stream: str) -> Path:
    return CONFIGS / ds / f'{stream}.py'


_CACHE: dict = {}


def cfg_of(ds: str, stream: str):
    """The loaded config (read once per test session; callers must not modify it)."""
    key = (ds, stream)
    if key not in _CACHE:
        _CACHE[key] = load_config(_path(ds, stream))
    return _CACHE[key]


def _generator():
    spec = importlib.util.spec_from_file_location('configs_generate', CONFIGS / '_generate.py')
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


# -- the files ---------------------------------------------------------------------------------
def test_committed_files_equal_generator_output():
    gen = _generator()
    paths = gen.config_paths()
    assert [(ds, s) for ds, s, _ in paths] == ALL
    stale = [str(p.relative_to(ROOT)) for ds, s, p in paths
             if not p.is_file() or p.read_text(encoding='utf-8') != gen.render(ds, s)]
    assert not stale, f'run python configs/_generate.py; out of date: {stale}'
    assert gen.main(['--check']) == 0


def test_generator_is_deterministic():
    gen = _generator()
    assert gen.render('uav_csv1', 'km') == gen.render('uav_csv1', 'km')
    texts = [gen.render(ds, s) for ds, s in ALL]
    assert len(set(texts)) == len(ALL)
    assert not any("'/data" in text for text in texts)  # no absolute official paths


# -- values against the official table ---------------------------------------------------------
@pytest.mark.parametrize('ds,stream', ALL, ids=IDS)
def test_official_values(ds, stream):
    cfg, off = cfg_of(ds, stream), OFFICIAL[ds]
    kind = KIND[off['kind']]
    assert cfg.modality == stream and cfg.graph == off['graph']
    assert cfg.work_dir == f'./work_dirs/{ds}/{stream}'

    bb, head = cfg.model.backbone, cfg.model.cls_head
    assert cfg.model.type == 'RecognizerGCN'
    assert bb.type == kind['backbone'] and bb.num_classes == off['classes']
    assert bb.llm_model == 'gpt4o' and bb.llm_modality == stream
    assert [tuple(x) if isinstance(x, (list, tuple)) else x for x in bb.tcn_ms_cfg] == \
        [tuple(x) if isinstance(x, (list, tuple)) else x for x in MS_CFG]
    assert dict(bb.graph_cfg) == dict(layout=off['graph'], mode='random', num_filter=8,
                                      init_off=0.04, init_std=0.02)
    assert head.type == 'SimpleHead' and head.joint_cfg == off['graph']
    assert head.num_classes == off['classes'] and head.in_channels == 384
    assert (head.weight_1, head.weight_2) == off['w'][stream]
    assert head.interval_epoch == off['interval']
    assert head.work_dir == cfg.work_dir
    assert dict(cfg.model.text_encoder) == dict(type='CLIP', trainable=True)
    # the paper run: the imported official dialogues, masks and prompts, the official loop
    # and the official requests (no temperature or length set)
    assert dict(cfg.agent) == dict(
        label_map=off['label_map'], official_dir=f"data/agent/{off['label_map']}",
        transcripts='official', masks='official', prompts='official', official=True,
        llm=dict(type='OpenAIChat', model='gpt-4o', api_key_env='OPENAI_API_KEY',
                 temperature=None, max_tokens=None))

    # data
    assert cfg.ann_file == off['ann'] and not Path(cfg.ann_file).is_absolute()
    assert cfg.data.videos_per_gpu == kind['batch']
    assert cfg.data.workers_per_gpu == kind['workers']
    assert cfg.data.test_dataloader == dict(videos_per_gpu=1)
    train_split, test_split = off['split']
    for name, split in (('train', train_split), ('val', test_split), ('test', test_split)):
        d = cfg.data[name]
        assert d.type == 'PoseDataset' and d.ann_file == off['ann'] and d.split == split
        assert d.pipeline == cfg[f'{name}_pipeline']
        if off['kind'] == 'k400':
            assert d.memcached is True and d.box_thr == 0.5
            assert tuple(d.mc_cfg) == ('localhost', 22077)
            assert d.get('valid_ratio') == (0.0 if name == 'train' else None)
    if off['kind'] == 'k400':
        assert cfg.memcached is True

    # pipelines
    aug = off['aug'].get(stream)
    train_types = [t for t in kind['train'] if t != 'AUG' or aug]
    train_types = [aug if t == 'AUG' else t for t in train_types] + TAIL
    assert [t.type for t in cfg.train_pipeline] == train_types
    assert [t.type for t in cfg.val_pipeline] == kind['test'] + TAIL
    assert [t.type for t in cfg.test_pipeline] == kind['test'] + TAIL
    for name, clips in (('train', 1), ('val', 1), ('test', 10)):
        pipe = {t.type: t for t in cfg[f'{name}_pipeline']}
        sampler = pipe.get('UniformSampleDecode') or pipe['UniformSampleFrames']
        assert sampler.clip_len == 100 and sampler.get('num_clips', 1) == clips
        assert list(pipe['GenSkeFeat'].feats) == [stream]
        assert pipe['GenSkeFeat'].get('dataset', 'nturgb+d') == off['graph']
        assert pipe['FormatGCNInput'].get('num_person') == kind['num_person']
        assert list(pipe['Collect']['keys']) == ['keypoint', 'label']
        if off['kind'] == 'ntu':
            assert pipe['PreNormalize3D'].align_spine is False
    train = {t.type: t for t in cfg.train_pipeline}
    if off['kind'] == 'ntu':
        assert train['RandomRot'].theta == 0.2
    if aug == 'Spatial_Flip':
        assert train['Spatial_Flip'].p == 0.5 and train['Spatial_Flip'].dataset == 'nturgb+d'
    if aug == 'Part_Drop':
        assert train['Part_Drop'].p == 0.2 and train['Part_Drop'].dataset == 'nturgb+d'
    if 'Flip' in train:  # the layout's pairs are the official left_kp / right_kp
        from skeletonagent.skeleton import get_layout
        assert train['Flip'].flip_ratio == 0.5 and train['Flip'].dataset == 'coco'
        coco = get_layout('coco')
        assert (tuple(coco.left), tuple(coco.right)) == (COCO_LEFT, COCO_RIGHT)

    # schedule
    assert dict(cfg.optimizer) == dict(type='SGD', lr=kind['lr'], momentum=0.9,
                                       weight_decay=0.0005, nesterov=True)
    # the lr is the official one for videos_per_gpu samples and follows the total batch
    assert dict(cfg.auto_scale_lr) == dict(enable=True, base_batch_size=kind['batch'])
    assert cfg.optimizer_config == dict(grad_clip=None)
    assert dict(cfg.lr_config) == dict(policy='CosineAnnealing', min_lr=0, by_epoch=False)
    assert cfg.total_epochs == off['epochs']
    assert list(cfg.evaluation.metrics) == kind['metrics']


def kind_of(ds: str) -> dict:
    return KIND[OFFICIAL[ds]['kind']]


@pytest.mark.parametrize('ds,stream', ALL, ids=IDS)
def test_translates_onto_mmengine(ds, stream):
    cfg, off = cfg_of(ds, stream), OFFICIAL[ds]
    kw = to_runner_kwargs(copy.deepcopy(cfg), RunOptions(validate=True, seed=0))
    assert kw['train_cfg'] == dict(by_epoch=True, max_epochs=off['epochs'], val_interval=1)
    (sched,) = kw['param_scheduler']
    assert sched['type'] == 'CosineAnnealingLR' and sched['eta_min'] == 0
    assert sched['T_max'] == off['epochs'] and sched['convert_to_iter_based'] is True
    opt = kw['optim_wrapper']['optimizer']
    assert opt['type'] == 'SGD' and opt['nesterov'] is True and opt['weight_decay'] == 5e-4
    assert kw['train_dataloader']['dataset']['split'] == off['split'][0]
    assert kw['val_dataloader']['dataset']['split'] == off['split'][1]
    assert kw['val_dataloader']['dataset']['test_mode'] is True
    assert kw['test_dataloader']['batch_size'] == 1
    (agent,) = [h for h in kw['custom_hooks'] if h['type'] == 'AgentHook']
    assert agent['interval'] == off['interval'] and agent['layout'] == off['graph']
    assert agent['modality'] == stream and agent['num_classes'] == off['classes']
    assert agent['label_map'] == off['label_map']
    assert agent['llm'] == dict(type='OpenAIChat', model='gpt-4o', api_key_env='OPENAI_API_KEY',
                                temperature=None, max_tokens=None)
    assert agent['official'] is True and agent['transcripts'] == 'official'
    assert kw['auto_scale_lr'] == dict(enable=True, base_batch_size=kind_of(ds)['batch'])
    if off['kind'] == 'k400':
        assert kw['train_dataloader']['dataset']['memcached'] is True
    test_kw = to_runner_kwargs(copy.deepcopy(cfg), RunOptions(load_from='x.pth'), mode='test')
    assert test_kw['test_dataloader']['dataset']['split'] == off['split'][1]
    assert 'train_dataloader' not in test_kw


@pytest.mark.parametrize('ds', list(OFFICIAL))
def test_label_map_matches_classes(ds):
    from skeletonagent.datasets.label_map import DEFAULT_LABEL_MAPS, load_label_map
    off = OFFICIAL[ds]
    names = load_label_map(off['label_map'], num_classes=off['classes'])
    assert all(name == name.strip() and name for name in names)
    assert DEFAULT_LABEL_MAPS[off['classes']] == off['label_map']


def test_label_map_files():
    from skeletonagent.datasets.label_map import LABEL_MAP_DIR
    counts = dict(ntu60=60, ntu120=120, k400=400, finegym=99, uav=155)
    for name, count in counts.items():
        lines = (LABEL_MAP_DIR / f'{name}.txt').read_text(encoding='utf-8').splitlines()
        assert len(lines) == count and all(lines), name
    k400 = (LABEL_MAP_DIR / 'k400.txt').read_text(encoding='utf-8').splitlines()
    assert k400[0] == 'abseiling' and k400[-1] == 'zumba' and k400 == sorted(k400, key=str.lower)
    gym = (LABEL_MAP_DIR / 'finegym.txt').read_text(encoding='utf-8').splitlines()
    assert [g[:4] for g in (gym[0], gym[6], gym[41], gym[74])] == ['(VT)', '(FX)', '(BB)', '(UB)']
    uav = (LABEL_MAP_DIR / 'uav.txt').read_text(encoding='utf-8').splitlines()
    assert uav[0] == 'drink' and uav[-1] == 'close an umbrella'


# -- the LLM switches the configs' comment names ------------------------------------------------
def _switches(text: str) -> dict[str, list[str]]:
    """The ``--cfg-options`` of each backend named in a config's agent comment."""
    found = {}
    for line in text.splitlines():
        match = re.match(r'#\s+(DeepSeek|local[^:]*|offline[^:]*): (agent\.llm.*)$', line)
        if match:
            found[match.group(1).split()[0]] = match.group(2).split()
    return found


def test_llm_switches_in_the_comment_work(monkeypatch):
    from mmengine.config import DictAction

    from skeletonagent.agent import build_backend
    from skeletonagent.agent.llm import Offline

    switches = _switches(_path('ntu60_xsub', 'j').read_text(encoding='utf-8'))
    assert set(switches) == {'DeepSeek', 'local', 'offline'}
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    llm = {}
    for name, options in switches.items():
        options = [o.replace('<served-model-name>', 'my-model') for o in options]
        parsed = parser.parse_args(['--cfg-options', *options]).cfg_options
        cfg = load_config(_path('ntu60_xsub', 'j'), parsed)
        (hook,) = [h for h in to_runner_kwargs(cfg, RunOptions())['custom_hooks']
                   if h['type'] == 'AgentHook']
        llm[name] = dict(hook['llm'])
    official_requests = dict(temperature=None, max_tokens=None)
    assert llm['DeepSeek'] == dict(type='OpenAIChat', model='deepseek-chat',
                                   base_url='https://api.deepseek.com',
                                   api_key_env='DEEPSEEK_API_KEY', **official_requests)
    assert llm['local'] == dict(type='OpenAIChat', model='my-model',
                                base_url='http://127.0.0.1:8000/v1', api_key_env=None,
                                **official_requests)
    # the switch keeps the config's other keys; build_backend drops those Offline does not take
    assert llm['offline']['type'] == 'Offline'
    monkeypatch.setenv('DEEPSEEK_API_KEY', 'sk-test')
    for name in ('DeepSeek', 'local'):  # builds the client only: nothing is sent
        backend = build_backend(llm[name])
        assert llm[name]['base_url'].split('//')[1] in backend.describe()
        backend.close()
    assert isinstance(build_backend(llm['offline']), Offline)


# -- models --------------------------------------------------------------------------------------
def test_one_model_build_covers_every_config():
    """Streams differ only in what does not change the model's parameters."""
    volatile = ('llm_modality', 'work_dir', 'weight_1', 'weight_2', 'interval_epoch')

    def shape_of(model_cfg):
        m = copy.deepcopy(model_cfg.to_dict())
        for part in ('backbone', 'cls_head'):
            for key in volatile:
                m[part].pop(key, None)
        return m

    reps = {}
    for rep in SHAPES:
        cfg = cfg_of(*rep.split('/'))
        reps[(cfg.graph, cfg.model.backbone.num_classes, cfg.model.backbone.type)] = \
            shape_of(cfg.model)
    for ds, s in ALL:
        cfg = cfg_of(ds, s)
        key = (cfg.graph, cfg.model.backbone.num_classes, cfg.model.backbone.type)
        assert shape_of(cfg.model) == reps[key], f'{ds}/{s}'


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize('rep', SHAPES)
def test_model_builds_and_runs(rep, one_thread):
    importlib.import_module('skeletonagent.models')  # registers the models
    from skeletonagent.registry import MODELS
    ds, stream = rep.split('/')
    cfg, off = cfg_of(ds, stream), OFFICIAL[ds]
    torch.manual_seed(0)
    np.random.seed(0)
    model = MODELS.build(copy.deepcopy(cfg.model)).eval()
    assert model.text_encoder is None  # built lazily, for training: no weights needed here
    sd = model.state_dict()
    V, nc = off['V'], off['classes']
    assert tuple(sd['backbone.examplar'].shape) == (nc, V, V)
    head = sd['backbone.linear_head.ViT-B/32.weight']
    assert tuple(head.shape) == (512, 384)
    assert tuple(sd['cls_head.fc_cls.weight'].shape) == (nc, 384)
    assert not any(k.startswith('text_encoder.') for k in sd)
    assert type(model.backbone).__name__ == KIND[off['kind']]['backbone']
    x = torch.randn(1, 1, 2, 8, V, 3)
    with torch.no_grad():
        scores = model(x, mode='tensor')
    assert tuple(scores.shape) == (1, nc) and torch.isfinite(scores).all()


# -- pipelines on generated samples -------------------------------------------------------------
def _ntu_annotations():
    from skeletonagent.datasets.synthetic import make_demo_annotations
    demo = make_demo_annotations(num_train_per_class=1, num_val_per_class=1,
                                 num_test_per_class=0, second_person_prob=1.0)
    a, b = demo['annotations'][0], demo['annotations'][12 + 3]
    return [a, b]


def _pose2d_annotations(V: int, rng: np.random.Generator):
    anns = []
    for i, (M, T) in enumerate(((1, 37), (2, 130))):
        xy = rng.uniform([100, 50], [1180, 670], size=(M, T, V, 2)).astype(np.float32)
        anns.append(dict(frame_dir=f'sample{i}', label=i + 2, total_frames=T,
                         img_shape=(720, 1280), original_shape=(720, 1280), keypoint=xy,
                         keypoint_score=rng.uniform(0.2, 1, size=(M, T, V)).astype(np.float32)))
    return anns


@pytest.fixture(scope='module')
def sample_files(tmp_path_factory):
    """A tiny pickle per data format, holding every split name its configs use."""
    rng = np.random.default_rng(0)
    tmp = tmp_path_factory.mktemp('ann')
    anns = dict(ntu=_ntu_annotations(), gym=_pose2d_annotations(17, rng),
                uav=_pose2d_annotations(17, rng))
    for a in anns['uav']:
        a.pop('img_shape'), a.pop('original_shape')
        a['keypoint_score'] = np.ones_like(a['keypoint_score'])
    files = {}
    for kind, items in anns.items():
        split = {}
        for off in OFFICIAL.values():
            if off['kind'] == kind:
                split[off['split'][0]] = [items[0]['frame_dir']]
                split[off['split'][1]] = [items[1]['frame_dir']]
        files[kind] = tmp / f'{kind}.pkl'
        with open(files[kind], 'wb') as f:
            pickle.dump(dict(split=split, annotations=items), f)
    return files


@pytest.mark.parametrize('ds,stream', [x for x in ALL if OFFICIAL[x[0]]['kind'] != 'k400'],
                         ids=[i for i, x in zip(IDS, ALL) if OFFICIAL[x[0]]['kind'] != 'k400'])
def test_datasets_and_pipelines_run(ds, stream, sample_files):
    importlib.import_module('skeletonagent.datasets')  # registers PoseDataset, transforms
    from skeletonagent.registry import DATASETS
    cfg, off = cfg_of(ds, stream), OFFICIAL[ds]
    kw = to_runner_kwargs(copy.deepcopy(cfg), RunOptions(validate=True))
    for loader, clips in (('train_dataloader', 1), ('val_dataloader', 1), ('test_dataloader', 10)):
        ds_cfg = copy.deepcopy(kw[loader]['dataset'])
        ds_cfg['ann_file'] = str(sample_files[off['kind']])
        dataset = DATASETS.build(ds_cfg)
        assert len(dataset) == 1
        item = dataset[0]
        assert tuple(item['keypoint'].shape) == (clips, 2, 100, off['V'], 3), loader
        assert item['keypoint'].dtype == torch.float32
        assert torch.isfinite(item['keypoint']).all()
        assert 0 <= int(item['label']) < off['classes']


def _compressed_sample(rng: np.random.Generator) -> dict:
    """One video in PYSKL's compressed Kinetics format (one row per detected person)."""
    frame_inds = np.repeat(np.arange(0, 60, dtype=np.int16), 2)[:-7]   # 1-2 persons per frame
    rows = len(frame_inds)
    kp = np.concatenate([rng.uniform(0, 300, (rows, 17, 2)), rng.uniform(0.3, 1, (rows, 17, 1))],
                        axis=-1).astype(np.float16)
    return dict(frame_dir='kin0', label=7, total_frames=60, frame_inds=frame_inds, keypoint=kp,
                img_shape=(340, 256), original_shape=(340, 256), box_score=np.ones(rows, np.float16))


@pytest.mark.parametrize('stream', STREAMS)
def test_kinetics_pipelines_on_a_compressed_sample(stream):
    from skeletonagent.datasets.pipelines import Compose
    cfg = cfg_of('k400', stream)
    rng = np.random.default_rng(1)
    for name, clips in (('train', 1), ('val', 1), ('test', 10)):
        sample = _compressed_sample(rng)
        sample['test_mode'] = name != 'train'
        out = Compose(copy.deepcopy(cfg[f'{name}_pipeline']))(sample)
        assert tuple(out['keypoint'].shape) == (clips, 2, 100, 20, 3), name
        assert torch.isfinite(out['keypoint']).all()
