"""The joint-mask format (skeleton/masks.py): one encoder, one reader, one decoder, and the
drawing geometry that moved to skeleton/geometry.py."""
import numpy as np
import pytest
import torch

from skeletonagent.skeleton import get_layout
from skeletonagent.skeleton.geometry import canonical_pose, is_3d, project_oblique, square_limits
from skeletonagent.skeleton.masks import (
    MaskFormat,
    check_mask_shape,
    encode_masks,
    mask_stream,
    row_weights,
    rows_of_mask,
)

NTU = get_layout('nturgb+d')


def test_encode_then_decode_gives_the_critical_joints_back():
    joints = [[3], [6, 7, 21, 22], []]
    masks = encode_masks(joints, NTU, 'j')
    assert masks.shape == (3, 25, 25) and masks.dtype == np.float32
    assert [rows_of_mask(masks, c) for c in range(3)] == joints
    # a joint's row is all ones, every other row all zeros
    assert masks[1, 6].sum() == 25 and masks[1, 5].sum() == 0


def test_backbone_reading_is_the_row_mean_on_torch_and_numpy_alike():
    masks = encode_masks([[0, 4], [2]], 'coco', 'b')
    weights = row_weights(masks)
    assert weights.shape == (2, 17)
    np.testing.assert_array_equal(weights, masks.mean(2))
    tensor = torch.as_tensor(masks)
    # bit for bit the reduction the backbone did before (examplar.mean(2))
    assert torch.equal(row_weights(tensor), tensor.mean(2))
    np.testing.assert_array_equal(row_weights(tensor).numpy(), weights)


def test_mask_format_encodes_as_the_functions_and_checks_shapes():
    fmt = MaskFormat('nturgb+d', 'bm')
    assert fmt.layout is NTU and fmt.stream == 'b' and fmt.num_joints == 25
    np.testing.assert_array_equal(fmt.encode([[20]]), encode_masks([[20]], NTU, 'b'))
    fmt.check((60, 25, 25), 60)
    with pytest.raises(ValueError, match=r"shape \(60, 17, 17\), expected \(60, 25, 25\) "
                                         r"\(classes, joints of layout 'nturgb\+d', joints\)"):
        fmt.check((60, 17, 17), 60, 'agent masks x.npy')
    with pytest.raises(ValueError, match='unknown modality'):
        MaskFormat('nturgb+d', 'x')
    with pytest.raises(ValueError, match='row_index'):
        MaskFormat('nturgb+d', 'j', 'bad')
    with pytest.raises(KeyError, match='unknown skeleton layout'):
        MaskFormat('no-such-layout')
    assert mask_stream('km') == 'k'
    check_mask_shape((2, 17, 17), 2, 17)
    with pytest.raises(ValueError, match=r'masks: shape \(2, 17, 17\), expected \(3, 17, 17\)'):
        check_mask_shape((2, 17, 17), 3, 17, 'masks')


def test_drawing_geometry():
    # the oblique view keeps y up and turns depth into a sideways shift
    flat = project_oblique(np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 1.0]]))
    assert flat.shape == (2, 2) and flat[0, 1] == pytest.approx(np.cos(np.radians(15)))
    assert flat[1, 0] < flat[0, 0]
    np.testing.assert_allclose(project_oblique(np.zeros((3, 3))), 0.0)
    xlim, ylim = square_limits(np.array([[0.0, 0.0], [2.0, 1.0]]), np.array([True, True]),
                               margin=0.0)
    assert xlim == (0.0, 2.0) and ylim == (-0.5, 1.5)
    assert square_limits(np.zeros((2, 2)), np.array([False, False])) == ((-1.0, 1.0), (-1.0, 1.0))
    pose = canonical_pose('coco')
    assert pose.shape == (17, 2)
    left = get_layout('coco').index('left wrist')
    right = get_layout('coco').index('right wrist')
    assert pose[left, 0] > 0 > pose[right, 0]
    assert is_3d(np.zeros((1, 2, 25, 3)), 'nturgb+d') and not is_3d(np.zeros((1, 2, 17, 2)))
