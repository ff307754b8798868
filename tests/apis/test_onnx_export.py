"""ONNX export of the shared demo run (3D, nturgb+d): parity with torch on the test pipeline's
output, the dynamic axes at other sizes, the agent state in the metadata, files that are not
ours refused. Needs onnx and onnxruntime (the video extra)."""
from __future__ import annotations

import importlib.util
import json
import warnings

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ('onnx', 'onnxruntime')),
    reason='needs the video extra: pip install -e ".[video]"')


@pytest.fixture(scope='module')
def exported(demo_run, tmp_path_factory):
    from skeletonagent.apis.onnx_export import export_onnx
    out = tmp_path_factory.mktemp('onnx') / 'demo.onnx'
    torch.set_num_threads(1)
    result = export_onnx(str(demo_run.config), demo_run.work_dir / 'latest.pth', out, ann_file=demo_run.data)
    return demo_run, result


def test_parity_and_metadata(exported):
    from skeletonagent.engine.checkpoint import load_checkpoint_file
    demo_run, result = exported
    assert result.path.is_file() and not result.path.with_name(result.path.name + '.part').exists()
    assert result.max_abs_diff <= 1e-4 and result.max_abs_diff_unfused <= 1e-4
    assert result.inputs_shape[0] == 2 and result.inputs_shape[-2:] == (25, 3)
    state = load_checkpoint_file(demo_run.work_dir / 'latest.pth')['agent_state']
    meta = result.metadata
    assert json.loads(meta['agent_descriptions']) == list(state['descriptions'])
    assert meta['agent_version'] == str(state['version']) and len(meta['agent_masks_sha256']) == 64
    assert meta['layout'] == 'nturgb+d' and meta['num_joints'] == '25' and meta['is_2d'] == 'false'


def test_dynamic_axes_match_torch_at_other_sizes(exported):
    from skeletonagent.apis import init_recognizer
    from skeletonagent.apis.onnx_export import OnnxRecognizer
    demo_run, result = exported
    onnx_model = OnnxRecognizer(result.path, str(demo_run.config), threads=1)
    torch_model = init_recognizer(str(demo_run.config), demo_run.work_dir / 'latest.pth')
    assert onnx_model.class_names == list(torch_model.class_names)
    rng = np.random.default_rng(0)
    for shape in [(1, 1, 1, 17, 25, 3), (3, 2, 2, 40, 25, 3)]:   # batch, clips, persons, frames
        x = rng.normal(size=shape).astype(np.float32)
        got = onnx_model.scores(x)
        # the demo backbone's input batch norm spans 2 persons: torch takes exactly 2, the
        # graph pads a single person with zeros, as the test pipeline does
        padded = np.concatenate([x, np.zeros_like(x)], axis=2)[:, :, :2]
        with torch.no_grad():
            want = torch_model(torch.from_numpy(padded), mode='tensor').numpy()
        assert got.shape == (shape[0], len(onnx_model.class_names))
        assert np.abs(got - want).max() <= 1e-4, shape


def test_files_that_are_not_our_export_are_refused(tmp_path, demo_run):
    from skeletonagent.apis.onnx_export import OnnxRecognizer
    garbage = tmp_path / 'garbage.onnx'
    garbage.write_bytes(b'not a model')
    with pytest.raises(ValueError, match='not a model onnxruntime can load'):
        OnnxRecognizer(garbage, str(demo_run.config))
    plain = tmp_path / 'linear.onnx'
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)    # the TorchScript exporter's notice
        torch.onnx.export(torch.nn.Linear(3, 2), (torch.zeros(1, 3),), str(plain), dynamo=False)
    with pytest.raises(ValueError, match='no SkeletonAgent metadata'):
        OnnxRecognizer(plain, str(demo_run.config))
    with pytest.raises(FileNotFoundError):
        OnnxRecognizer(tmp_path / 'missing.onnx', str(demo_run.config))
