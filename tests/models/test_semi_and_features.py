"""Official model names and test options: the "semi" models (fixed texts, no rounds), official
configs without an agent section, and PYSKL's feature / score extraction at test time."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from skeletonagent.agent.settings import agent_settings
from skeletonagent.engine import RunOptions, load_config, to_runner_kwargs
from skeletonagent.registry import MODELS

ROOT = Path(__file__).resolve().parents[2]


def _official_style(semi: bool):
    """Our NTU-60 joint config as the official file writes it: no ``agent`` section, and the
    semi classes when asked."""
    cfg = load_config(ROOT / 'configs/ntu60_xsub/j.py')
    cfg.pop('agent')
    cfg.pop('auto_scale_lr')
    if semi:
        cfg.model.type = 'RecognizerGCN_Semi'
        cfg.model.cls_head.type = 'SimpleHead_Semi'
    return cfg


@pytest.mark.parametrize('head_type', ['SimpleHead_Semi', 'BaseHead_Semi'])
def test_semi_models_build_as_ours(head_type):
    import skeletonagent.models  # noqa: F401
    cfg = _official_style(semi=True)
    cfg.model.cls_head.type = head_type
    model = MODELS.build(cfg.model)
    reference = MODELS.build(_official_style(semi=False).model)
    assert type(model).__name__ == 'RecognizerGCN_Semi' and model.fixed_texts
    assert type(model.cls_head).__name__ == 'SimpleHead_Semi' and model.cls_head.fixed_texts
    assert model.state_dict().keys() == reference.state_dict().keys()


def test_semi_trains_from_the_official_texts_without_rounds():
    settings = agent_settings(_official_style(semi=True))
    assert settings['interval'] == 0
    assert (settings['transcripts'], settings['masks']) == ('official', 'official')
    assert settings['label_map'] == 'ntu60'
    (hook,) = [h for h in to_runner_kwargs(_official_style(semi=True), RunOptions())['custom_hooks']
               if h['type'] == 'AgentHook']
    assert hook['interval'] == 0


def test_an_official_config_means_the_official_recipe():
    settings = agent_settings(_official_style(semi=False))
    assert settings['interval'] == 5 and settings['official'] is True
    assert (settings['transcripts'], settings['masks'], settings['prompts']) == ('official',) * 3
    assert settings['llm'] == dict(type='OpenAIChat', model='gpt-4o',
                                   api_key_env='OPENAI_API_KEY', temperature=None,
                                   max_tokens=None)
    # our configs say what they want: the demo keeps its offline agent
    demo = agent_settings(load_config(ROOT / 'configs/demo/j.py'))
    assert demo['llm'] == dict(type='Offline') and 'transcripts' not in demo


# ---------------------------------------------------------------------- feature extraction
def _demo_model(**test_cfg):
    from skeletonagent.engine.runner import build_model
    torch.manual_seed(0)
    cfg = load_config(ROOT / 'configs/demo/j.py')
    cfg.model.test_cfg = test_cfg
    model = build_model(cfg, for_training=False)
    return model.eval()


@pytest.fixture(scope='module')
def clips():
    return torch.randn(2, 3, 2, 32, 25, 3, generator=torch.Generator().manual_seed(3))


def _features(model, clips):
    """The backbone features of each sample's clips, computed here the plain way."""
    with torch.no_grad():
        return [model.extract_feat(sample) for sample in clips]   # clips × M × C × T × V


@pytest.mark.parametrize('pool_opt,dims', [('all', (0, 1, 3, 4)), ('nmtv', (0, 1, 3, 4)),
                                           ('none', ()), ('nt', (0, 3)), ('v', (4,))])
def test_feat_ext_pools_the_named_dimensions(clips, pool_opt, dims):
    model = _demo_model(feat_ext=True, pool_opt=pool_opt)
    with torch.no_grad():
        out = model(clips, label=torch.tensor([4, 7]), mode='predict')
    assert [o['gt_label'] for o in out] == [4, 7]
    for got, feat in zip(out, _features(model, clips)):
        want = feat
        for d in dims:
            want = want.mean(d, keepdim=True)
        assert got['feature'].dtype == np.float16 and got['feature'].shape == tuple(want.shape)
        np.testing.assert_allclose(got['feature'], want.numpy(), rtol=2e-3, atol=2e-3)


def test_score_ext_applies_the_classifier_at_each_position(clips):
    model = _demo_model(score_ext=True, pool_opt='mtv')
    with torch.no_grad():
        out = model(clips, mode='predict')
        logits = model.cls_head(model.extract_feat(clips[0]))          # clips × Class
    first = out[0]['feature']
    assert first.shape == (1, 3, 1, model.num_classes, 1, 1)          # PYSKL's leading axis
    # pooling persons, time and joints then the classifier = the head's logits per clip
    np.testing.assert_allclose(first[0, :, 0, :, 0, 0], logits.numpy(), rtol=2e-3, atol=2e-3)


def test_unknown_pool_dimension_is_refused(clips):
    model = _demo_model(feat_ext=True, pool_opt='nx')
    with pytest.raises(ValueError, match=r"pool_opt='nx': unknown dimension\(s\) \['x'\]"):
        model(clips, mode='predict')


def test_metric_dumps_features_instead_of_scoring(tmp_path):
    from skeletonagent.evaluation import SkeletonAccuracy
    metric = SkeletonAccuracy(out_file=str(tmp_path / 'feat.pkl'))
    arrays = [np.full((1, 1, 4, 1, 1), i, dtype=np.float16) for i in range(3)]
    metric.process(None, [dict(feature=a, gt_label=i) for i, a in enumerate(arrays)])
    assert metric.compute_metrics(metric.results) == {}
    dumped = pickle.loads((tmp_path / 'feat.pkl').read_bytes())
    assert len(dumped) == 3 and all(np.array_equal(d, a) for d, a in zip(dumped, arrays))
