"""Every convolution the backbones call runs cleanly under glibc's heap checks (issue 21).

On AVX-512 CPUs, oneDNN's backward of a 1×1 convolution with a temporal stride on
channels-last input with 2-15 channels corrupts the heap (``docs/upstream/
onednn_strided_pointwise.md``). The backbones never call that kernel
(``units.FrameStridedConv2d``); these tests replay every convolution they do call, in a child
process under heap checks, on whatever CPU runs them. The corrupting kernel itself is caught
only on an AVX-512 CPU; elsewhere the replay still runs and must pass.
"""
from __future__ import annotations

import re
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
from conftest import tool_env

from skeletonagent.models.gcn.units import FrameStridedConv2d
from skeletonagent.testing.conv_check import backbone_cases, heap_checked_env, record_convolutions
from skeletonagent.utils.cpu import onednn_isa

pytestmark = pytest.mark.usefixtures('single_thread')

#: what glibc prints when its checks find a corrupted heap
HEAP_MESSAGE = re.compile(r'malloc\(\)|free\(\)|corrupted|double free|realloc\(\)|munmap_chunk|heap')

#: the upstream reproduction: strided 1×1 convolution, channels-last input with 8 channels
UPSTREAM_REPRO = """
import torch, torch.nn.functional as F
for _ in range(5):
    x = torch.randn(16, 8, 100, 25).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = torch.randn(16, 8, 1, 1, requires_grad=True)
    b = torch.randn(16, requires_grad=True)
    y = F.conv2d(x, w, b, (2, 1))
    y.backward(torch.randn_like(y))
print('ok')
"""


def _heap_checked(args: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    env = heap_checked_env(tool_env())
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=timeout)


def _is_avx512() -> bool:
    return onednn_isa().startswith(('AVX-512', 'AMX'))


def test_every_backbone_convolution_runs_under_heap_checks():
    """GCN_Module_LLM, its K400 variant and STGCN, on 25, 17 and 21 joints, plain,
    ``with_cp=True``, 'selective', bfloat16 autocast and fused inference: each distinct
    convolution they call, replayed alone forward and backward, leaves the heap intact."""
    proc = _heap_checked(['-m', 'skeletonagent.testing.conv_check', '--base-channels', '8'])
    out = proc.stdout + proc.stderr
    last = [ln for ln in proc.stdout.splitlines() if ln.startswith(('recording', 'replay'))][-1:]
    assert proc.returncode == 0 and not HEAP_MESSAGE.search(proc.stderr), \
        f'exit {proc.returncode} on {onednn_isa()}; last step: {last}\n{out[-3000:]}'
    done = re.search(r'ok: (\d+) distinct convolutions', proc.stdout)
    # 3 backbones x 3 layouts x 5 paths record several hundred distinct calls
    assert done and int(done.group(1)) > 200, out[-2000:]


def test_the_heap_check_catches_the_upstream_kernel():
    """The harness is sensitive: the upstream reproduction dies under it on AVX-512. On a CPU
    without AVX-512 the kernel is not used, and the same script must pass."""
    proc = _heap_checked(['-c', UPSTREAM_REPRO], timeout=300)
    if not _is_avx512():
        assert proc.returncode == 0 and proc.stdout.strip() == 'ok', proc.stderr[-2000:]
        pytest.skip(f'oneDNN runs {onednn_isa()} here: the corrupting kernel is AVX-512 only')
    if proc.returncode == 0:
        pytest.skip('this torch/oneDNN no longer corrupts the heap on the upstream reproduction: '
                    'units.FrameStridedConv2d may be retired (docs/upstream/onednn_strided_pointwise.md)')
    assert proc.returncode != 0 and 'ok' not in proc.stdout


def test_no_backbone_calls_a_pointwise_convolution_with_a_temporal_stride():
    """On any CPU: the recorded calls of every backbone and path hold no 1×1 convolution with a
    stride (the kernel that corrupts), while strided k×1 temporal convolutions remain."""
    strided_pointwise, strided = [], 0
    for name, step in backbone_cases(base_channels=8, frames=20, paths=('plain', 'fused')):
        for call in record_convolutions(step):
            if call.stride[0] > 1:
                strided += 1
                if call.weight_size[2:] == (1, 1):
                    strided_pointwise.append((name, call.describe()))
    assert strided > 0
    assert not strided_pointwise, strided_pointwise


@pytest.mark.parametrize('channels_last', [False, True])
@pytest.mark.parametrize('frames', [20, 21])
def test_frame_strided_conv_computes_the_strided_convolution(channels_last, frames):
    """The same values and gradients as ``nn.Conv2d`` with stride (2, 1), odd frame counts
    included; channels-last output for channels-last input. 16 input channels: the plain
    strided kernel is safe there, so it can serve as the reference on any CPU."""
    torch.manual_seed(0)
    ref = nn.Conv2d(16, 24, 1, stride=(2, 1)).double()
    ours = FrameStridedConv2d(16, 24, 1, stride=(2, 1)).double()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, 16, frames, 5, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x_ref, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_ref, y_ours = ref(x_ref), ours(x_ours)
    assert y_ours.shape == y_ref.shape == (3, 24, (frames + 1) // 2, 5)
    assert y_ours.is_contiguous(memory_format=torch.channels_last) == channels_last
    torch.testing.assert_close(y_ours, y_ref, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(y_ref)
    y_ref.backward(grad)
    y_ours.backward(grad)
    torch.testing.assert_close(x_ours.grad, x_ref.grad, rtol=1e-12, atol=1e-12)
    for (name, p_ours), p_ref in zip(ours.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p_ours.grad, p_ref.grad, rtol=1e-12, atol=1e-12, msg=name)


def test_frame_strided_conv_leaves_other_convolutions_alone():
    """A k×1 strided convolution, a padded one and an unstrided 1×1 one run as ``nn.Conv2d``."""
    torch.manual_seed(0)
    x = torch.randn(2, 4, 10, 3)
    for kwargs in (dict(kernel_size=(3, 1), stride=(2, 1), padding=(1, 0)),
                   dict(kernel_size=1, stride=(2, 1), padding=(1, 0)), dict(kernel_size=1)):
        ref = nn.Conv2d(4, 6, **kwargs)
        ours = FrameStridedConv2d(4, 6, **kwargs)
        ours.load_state_dict(ref.state_dict())
        torch.testing.assert_close(ours(x), ref(x), rtol=0, atol=0, msg=str(kwargs))
