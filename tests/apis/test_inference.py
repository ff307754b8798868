"""Inference API and tools/infer.py: every input kind, class names, shape errors."""
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from skeletonagent.apis import (
    inference_recognizer,
    init_recognizer,
    input_spec,
    load_annotation_sample,
    load_keypoint_input,
)
from skeletonagent.apis.inference import _prepare
from skeletonagent.datasets.label_map import load_label_map
from skeletonagent.engine.checkpoint import CheckpointMismatchError

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / 'configs' / 'demo' / 'j.py'
sys.path.insert(0, str(ROOT / 'tools'))


# The demo config with one test clip instead of five (the tests stay fast on a busy CPU).
FAST_CONFIG = """
_base_ = [{base!r}]
data = dict(test=dict(pipeline=[
    dict(type='PreNormalize3D', align_spine=False),
    dict(type='GenSkeFeat', feats=['j']),
    dict(type='UniformSampleDecode', clip_len=24, num_clips=1),
    dict(type='FormatGCNInput'),
    dict(type='Collect', keys=['keypoint', 'label'], meta_keys=[]),
    dict(type='ToTensor', keys=['keypoint'])]))
"""


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    """A tiny demo pickle, a random-weight checkpoint of the demo model, and the model."""
    from skeletonagent.datasets.synthetic import ensure_demo_data
    root = tmp_path_factory.mktemp('infer')
    data = ensure_demo_data(root / 'demo.pkl', num_train_per_class=1, num_val_per_class=1,
                            num_test_per_class=1)
    config = root / 'fast.py'
    config.write_text(FAST_CONFIG.format(base=str(CONFIG)))
    torch.manual_seed(0)
    model = init_recognizer(config, fuse=False)     # a fused model's state_dict lacks the BN entries
    ckpt = root / 'ckpt.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    model = init_recognizer(config, ckpt)
    return dict(root=root, data=Path(data), ckpt=ckpt, model=model, config=config,
                anns=pickle.loads(Path(data).read_bytes())['annotations'])


def _scores(model, keypoints, **kwargs):
    """All class scores by class index (top_k = every class)."""
    results = inference_recognizer(model, keypoints, top_k=1000, **kwargs)
    return np.array([s for _, _, s in sorted(results)])


def _same(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def _check_top(results, k, names):
    assert len(results) == k
    scores = [s for _, _, s in results]
    assert scores == sorted(scores, reverse=True)
    for index, name, score in results:
        assert name == names[index] and 0.0 <= score <= 1.0


def test_init_recognizer_keeps_cfg_and_class_names(demo):
    model = demo['model']
    assert not model.training
    assert model.class_names == load_label_map('demo')
    assert model.cfg.model.type == 'RecognizerGCN'
    spec = input_spec(model)
    assert (spec.num_joints, spec.channels, spec.is_2d) == (25, 3, False)
    assert spec.shape == '(M, T, 25, 3)'


def test_every_input_kind_gives_the_same_answer(demo):
    ann = demo['anns'][4]
    root, model = demo['root'], demo['model']
    top = inference_recognizer(model, ann, top_k=3)
    _check_top(top, 3, model.class_names)
    expected = _scores(model, ann)
    assert len(expected) == 12 and [i for i, _, _ in top] == list(np.argsort(-expected)[:3])
    # the three kinds of input file go through the model
    np.save(root / 'kp.npy', ann['keypoint'])
    (root / 'kp.json').write_text(json.dumps({'keypoint': ann['keypoint'].tolist()}))
    for path, kwargs in ((demo['data'], dict(index=4)), (root / 'kp.npy', {}),
                         (root / 'kp.json', {})):
        _same(_scores(model, load_keypoint_input(path, **kwargs)), expected)
    # the other ways of giving the same sample read the same keypoints
    (root / 'one.pkl').write_bytes(pickle.dumps(ann))
    (root / 'bare.json').write_text(json.dumps(ann['keypoint'].tolist()))
    spec = input_spec(model)
    reference = _prepare(spec, ann, None)[1]
    for given in (load_keypoint_input(demo['data'], frame_dir=ann['frame_dir']),
                  load_keypoint_input(root / 'one.pkl'), load_keypoint_input(root / 'bare.json'),
                  torch.from_numpy(ann['keypoint']), ann['keypoint'].tolist()):
        np.testing.assert_array_equal(_prepare(spec, given, None)[1], reference)
    if ann['keypoint'].shape[0] == 1:       # T×V×C: one person
        np.testing.assert_array_equal(_prepare(spec, ann['keypoint'][0], None)[1], reference)


def test_same_scores_as_the_test_dataset(demo):
    """The results dict is built as PoseDataset builds it: same pipeline output, same scores."""
    from skeletonagent.datasets.demo import DemoPoseDataset
    model = demo['model']
    ds = DemoPoseDataset(ann_file=str(demo['data']), pipeline=model.cfg.data.test.pipeline,
                         split='test', test_mode=True)
    sample = ds[0]
    ann = next(a for a in demo['anns'] if a['frame_dir'] == ds.frame_dirs[0])
    with torch.no_grad():
        scores = model(sample['keypoint'][None], mode='predict')[0]['pred_score']
    _same(_scores(model, ann), scores.numpy())


@pytest.mark.parametrize('shape, needle', [
    ((1, 20, 17, 3), 'V=17'),              # a COCO / UAV skeleton for an NTU model
    ((1, 20, 25, 2), 'C=2'),               # 2D keypoints for a 3D model
    ((1, 20, 3, 25), 'transposed'),        # channels and joints swapped
    ((20, 25), '2-d'),
    ((2, 1, 20, 25, 3), '5-d'),
])
def test_wrong_shape_names_the_expected_shape(demo, shape, needle):
    with pytest.raises(ValueError) as info:
        inference_recognizer(demo['model'], np.zeros(shape, np.float32))
    message = str(info.value)
    assert '(M, T, 25, 3)' in message and needle in message and "'nturgb+d'" in message


def test_bad_inputs_are_refused_clearly(demo, tmp_path):
    model = demo['model']
    kp = demo['anns'][0]['keypoint']
    with pytest.raises(ValueError, match='keypoint_score'):
        inference_recognizer(model, kp, keypoint_score=np.ones((1, 3, 25)))
    with pytest.raises(ValueError, match='NaN'):
        inference_recognizer(model, np.full((1, 10, 25, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match='no "keypoint"'):
        inference_recognizer(model, {'label': 1})
    with pytest.raises(ValueError, match='--index'):
        load_keypoint_input(demo['data'])                      # several samples, no choice
    with pytest.raises(ValueError, match='out of range'):
        load_annotation_sample(demo['data'], index=10_000)
    with pytest.raises(ValueError, match='nope'):
        load_annotation_sample(demo['data'], frame_dir='nope')
    (tmp_path / 'x.csv').write_text('1,2')
    with pytest.raises(ValueError, match='.npy'):
        load_keypoint_input(tmp_path / 'x.csv')
    (tmp_path / 'x.json').write_text('{"points": []}')
    with pytest.raises(ValueError, match='"keypoint"'):
        load_keypoint_input(tmp_path / 'x.json')


def test_checkpoint_that_does_not_fit_is_refused(demo, tmp_path):
    state = dict(demo['model'].state_dict())
    state.pop(next(iter(state)))
    bad = tmp_path / 'bad.pth'
    torch.save({'state_dict': state}, bad)
    with pytest.raises(CheckpointMismatchError, match='does not fit'):
        init_recognizer(CONFIG, bad)
    with pytest.raises(FileNotFoundError):
        init_recognizer(CONFIG, tmp_path / 'missing.pth')


def test_2d_model_fills_missing_scores_and_names_its_shape(demo):
    """A COCO 2D model: (x, y) alone, (x, y) + keypoint_score and (x, y, score) all work."""
    from skeletonagent.engine import load_config
    cfg = load_config(CONFIG)
    cfg.model.backbone.graph_cfg.layout = 'coco'
    cfg.model.cls_head.joint_cfg = 'coco'
    cfg.agent.label_map = 'no_such_label_map'                 # falls back to 'class N'
    cfg.data.test.pipeline = [
        dict(type='PreNormalize2D'), dict(type='GenSkeFeat', dataset='coco', feats=['j']),
        dict(type='UniformSampleDecode', clip_len=16, num_clips=1),
        dict(type='FormatGCNInput'), dict(type='Collect', keys=['keypoint', 'label'],
                                          meta_keys=[]),
        dict(type='ToTensor', keys=['keypoint'])]
    model = init_recognizer(cfg)
    spec = input_spec(model)
    assert (spec.num_joints, spec.channels, spec.is_2d) == (17, 3, True)
    assert model.class_names[0] == 'class 0'
    rng = np.random.default_rng(0)
    xy = rng.uniform(100, 900, (1, 12, 17, 2)).astype(np.float32)
    ones = _scores(model, xy)
    _same(_scores(model, xy, keypoint_score=np.ones((1, 12, 17))), ones)
    packed = np.concatenate([xy, np.ones((1, 12, 17, 1), np.float32)], -1)
    _same(_scores(model, dict(keypoint=packed, img_shape=(1080, 1920))), ones)
    with pytest.raises(ValueError, match=r'\(M, T, 17, 3\)'):
        inference_recognizer(model, np.zeros((1, 12, 25, 3), np.float32))
    # Kinetics: the graph has 20 joints, the input the 17 COCO ones the pipeline extends
    cfg.model.backbone.graph_cfg.layout = 'coco_new'
    cfg.model.cls_head.joint_cfg = 'coco_new'
    cfg.data.test.pipeline[1] = dict(type='GenSkeFeat', dataset='coco_new', feats=['j'])
    cfg.data.test.pipeline.insert(1, dict(type='Kinetics_Transform'))
    cfg.data.test.classes = [f'action {i}' for i in range(12)]
    model = init_recognizer(cfg)
    spec = input_spec(model)
    assert (spec.num_joints, spec.input_layout, spec.layout) == (17, 'coco', 'coco_new')
    assert model.class_names[3] == 'action 3'
    assert len(_scores(model, xy)) == 12
    with pytest.raises(ValueError, match=r"\(M, T, 17, 3\).*'coco'"):
        inference_recognizer(model, np.zeros((1, 12, 20, 2), np.float32))


def _parse(out):
    """'1. name  0.1234  (class 7)' lines → [(class, score)] (the 'true label' line aside)."""
    rows = []
    for line in out.strip().splitlines():
        if line.startswith('true label: '):
            continue
        head, _, tail = line.rpartition('(class ')
        rows.append((int(tail.rstrip(')')), float(head.split()[-1])))
    return rows


def test_infer_tool_prints_top5_for_each_input_kind(demo, capsys):
    import infer
    ann = demo['anns'][2]
    np.save(demo['root'] / 'tool.npy', ann['keypoint'])
    (demo['root'] / 'tool.json').write_text(json.dumps(
        {'keypoint': ann['keypoint'].tolist(), 'keypoint_score': None}))
    names = load_label_map('demo')
    config, ckpt = str(demo['config']), str(demo['ckpt'])
    outputs = []
    for args in ([str(demo['data']), '--frame-dir', ann['frame_dir']],
                 [str(demo['root'] / 'tool.npy'), '--top-k', '5'],
                 [str(demo['root'] / 'tool.json')]):
        infer.main([config, ckpt, *args])
        outputs.append(capsys.readouterr().out)
    expected = inference_recognizer(demo['model'], ann)
    for out in outputs:
        lines = [ln for ln in out.strip().splitlines() if not ln.startswith('true label: ')]
        assert len(lines) == 5 and lines[0].startswith('1. ')
        assert all(names[i] in line for line, (i, _) in zip(lines, _parse(out)))
        assert _parse(out)[0][0] == expected[0][0]
        np.testing.assert_allclose([s for _, s in _parse(out)], [s for *_, s in expected],
                                   atol=2e-4)
    bad = demo['root'] / 'bad.npy'
    np.save(bad, np.zeros((1, 10, 17, 3), np.float32))
    with pytest.raises(SystemExit) as info:
        infer.main([config, ckpt, str(bad)])
    assert '(M, T, 25, 3)' in str(info.value.code)


def test_infer_tool_names_the_true_label_and_its_rank(demo, capsys):
    """A pickle's sample (and a JSON with a label) has a true label: the last line names it
    (number and name) and says where the model ranks it; a bare array has none."""
    import infer
    model, names = demo['model'], load_label_map('demo')
    config, ckpt = str(demo['config']), str(demo['ckpt'])
    for i in (0, 5):
        ann = demo['anns'][i]
        ranking = [index for index, _, _ in inference_recognizer(model, ann, top_k=12)]
        rank = ranking.index(ann['label']) + 1
        infer.main([config, ckpt, str(demo['data']), '--index', str(i), '--top-k', '3'])
        lines = capsys.readouterr().out.strip().splitlines()
        assert len(lines) == 4
        assert lines[-1] == (f'true label: {names[ann["label"]]} (class {ann["label"]}), '
                             f'ranked {rank} of 12')
    ann = demo['anns'][5]
    (demo['root'] / 'labelled.json').write_text(json.dumps(
        {'keypoint': ann['keypoint'].tolist(), 'label': int(ann['label'])}))
    infer.main([config, ckpt, str(demo['root'] / 'labelled.json')])
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith(
        f'true label: {names[ann["label"]]} (class {ann["label"]}), ranked ')
    np.save(demo['root'] / 'bare.npy', ann['keypoint'])
    infer.main([config, ckpt, str(demo['root'] / 'bare.npy')])
    assert 'true label' not in capsys.readouterr().out


def test_sample_label():
    from skeletonagent.apis.inference import sample_label
    assert sample_label({'keypoint': 0, 'label': 3}) == 3
    assert sample_label({'keypoint': 0, 'label': np.array([4])}) == 4
    assert sample_label({'keypoint': 0, 'label': -1}) is None      # unlabelled (inference)
    assert sample_label({'keypoint': 0}) is None
    assert sample_label(np.zeros((1, 2, 25, 3))) is None
