"""BoxDeformableAttention: mmcv's numbers, and a kernel choice that works
on GPUs whose mmcv was built without CUDA ops."""
from types import SimpleNamespace

import mmcv.ops
import pytest
import torch
from mmcv.ops import MultiScaleDeformableAttention

from rtdetr_mm.models.layers import BoxDeformableAttention, ms_deform_attn


def test_matches_mmcv_for_box_references():
    torch.manual_seed(0)
    kwargs = dict(
        embed_dims=32,
        num_heads=4,
        num_levels=2,
        num_points=3,
        batch_first=True)
    ours, theirs = BoxDeformableAttention(**kwargs), \
        MultiScaleDeformableAttention(**kwargs)
    with torch.no_grad():  # spread weights: offsets and attention vary
        for p in theirs.parameters():
            p.normal_(0, 0.5)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    ours.eval(), theirs.eval()
    shapes = torch.tensor([[8, 6], [4, 3]])
    start = torch.tensor([0, 48])
    query, value = torch.randn(2, 5, 32), torch.randn(2, 60, 32)
    pos = torch.randn(2, 5, 32)
    boxes = torch.rand(2, 5, 1, 4).expand(2, 5, 2, 4) * 0.5 + 0.25
    mask = torch.zeros(2, 60, dtype=torch.bool)
    mask[1, 50:] = True
    args = dict(
        query=query,
        value=value,
        query_pos=pos,
        reference_points=boxes,
        spatial_shapes=shapes,
        level_start_index=start,
        key_padding_mask=mask)
    expected = theirs(**args)
    assert expected.std() > 0.1
    torch.testing.assert_close(ours(**args), expected, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    'compiled,is_cuda,expected',
    [
        ('12.1', True, True),  # mmcv built with CUDA, GPU tensor
        ('not available', True, False),  # no nvcc at install: PyTorch path
        ('12.1', False, False),  # CPU tensors never use the CUDA kernel
    ])
def test_kernel_choice(monkeypatch, compiled, is_cuda, expected):
    monkeypatch.setattr(mmcv.ops, 'get_compiling_cuda_version',
                        lambda: compiled)
    ms_deform_attn.mmcv_has_cuda_ops.cache_clear()
    try:
        value = SimpleNamespace(is_cuda=is_cuda)
        assert ms_deform_attn.use_compiled_kernel(value) is expected
    finally:
        ms_deform_attn.mmcv_has_cuda_ops.cache_clear()
