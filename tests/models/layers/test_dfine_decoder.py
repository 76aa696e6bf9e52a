"""D-FINE's decoder: gate, per-level deformable attention, FDR refinement."""
import pytest
import torch
import torch.nn.functional as F

from rtdetr_mm.models.dense_heads import DFINEHead
from rtdetr_mm.models.layers import (DFINEDeformableAttention,
                                     DFINETransformerDecoder, Gate,
                                     ms_deform_attn)

DIM = 16
SHAPES = torch.tensor([[6, 8], [3, 4]])
START = torch.tensor([0, 48])


def test_gate_at_init_is_half_half_then_norm():
    gate = Gate(DIM)
    x1, x2 = torch.randn(2, 3, DIM), torch.randn(2, 3, DIM)
    expected = F.layer_norm(0.5 * x1 + 0.5 * x2, (DIM, ))
    torch.testing.assert_close(gate(x1, x2), expected)


def direct_attention(attn, query, value, boxes, shapes):
    """D-FINE's attention point by point with grid_sample on each level."""
    bs, nq, _ = query.shape
    heads, points = attn.num_heads, attn.num_points
    total = sum(points)
    offsets = attn.sampling_offsets(query).view(bs, nq, heads, total, 2)
    weights = attn.attention_weights(query).view(bs, nq, heads,
                                                 total).softmax(-1)
    level_of = [lvl for lvl, n in enumerate(points) for _ in range(n)]
    starts = [0] + shapes.prod(1).cumsum(0).tolist()
    out = torch.zeros(bs, nq, heads, DIM // heads)
    for b in range(bs):
        for q in range(nq):
            for h in range(heads):
                for p in range(total):
                    lvl = level_of[p]
                    height, width = shapes[lvl].tolist()
                    loc = boxes[b, q, :2] + offsets[b, q, h, p] / \
                        points[lvl] * boxes[b, q, 2:] * 0.5
                    feat = value[b, starts[lvl]:starts[lvl + 1]].view(
                        height, width, heads, -1)[..., h, :]
                    sample = F.grid_sample(
                        feat.permute(2, 0, 1)[None],
                        (2 * loc - 1).view(1, 1, 1, 2),
                        align_corners=False).flatten()
                    out[b, q, h] += weights[b, q, h, p] * sample
    return out.flatten(2)


@pytest.mark.parametrize('points', [[1, 2], [3, 3], [2, 5]])
def test_points_per_level_match_direct_grid_sample(points):
    torch.manual_seed(0)
    attn = DFINEDeformableAttention(
        embed_dims=DIM, num_heads=2, num_levels=2, num_points=points)
    with torch.no_grad():  # offsets and weights that vary with the query
        attn.sampling_offsets.weight.normal_(0, 0.5)
        attn.attention_weights.weight.normal_(0, 0.5)
    query, value = torch.randn(2, 3, DIM), torch.randn(2, 60, DIM)
    boxes = torch.rand(2, 3, 4) * 0.6 + 0.2
    out = attn(query, value, boxes, SHAPES, START)
    expected = direct_attention(attn, query, value, boxes, SHAPES)
    assert out.shape == (2, 3, DIM) and expected.std() > 0.1
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)


def test_kernel_path_gets_virtual_levels_into_the_same_memory(monkeypatch):
    """What the CUDA kernel is given (no GPU here): repeated shapes and
    start indices into the unchanged value; a stand-in that reads value
    the way the kernel does must give the PyTorch path's output."""
    torch.manual_seed(0)
    attn = DFINEDeformableAttention(
        embed_dims=DIM, num_heads=2, num_levels=2, num_points=[2, 4])
    with torch.no_grad():
        attn.attention_weights.weight.normal_(0, 0.5)
    query, value = torch.randn(2, 3, DIM), torch.randn(2, 60, DIM)
    boxes = torch.rand(2, 3, 4) * 0.6 + 0.2
    expected = attn(query, value, boxes, SHAPES, START)
    calls = []

    def kernel(value, shapes, starts, locations, weights, step):
        calls.append((shapes.tolist(), starts.tolist(), value.shape))
        levels = [
            value[:, s:s + h * w]
            for (h, w), s in zip(shapes.tolist(), starts.tolist())
        ]
        return ms_deform_attn.multi_scale_deformable_attn_pytorch(
            torch.cat(levels, 1), shapes, locations, weights)

    monkeypatch.setattr(ms_deform_attn, 'use_compiled_kernel', lambda v: 1)
    monkeypatch.setattr(ms_deform_attn.MultiScaleDeformableAttnFunction,
                        'apply', kernel)
    torch.testing.assert_close(
        attn(query, value, boxes, SHAPES, START), expected, rtol=0, atol=0)
    assert calls == [([[6, 8], [3, 4], [3, 4]], [0, 48,
                                                 48], (2, 60, 2, DIM // 2))]


def test_virtual_levels_and_init():
    attn = DFINEDeformableAttention(
        embed_dims=32, num_heads=4, num_levels=3, num_points=[3, 6, 3])
    assert attn.virtual_levels == [0, 1, 1, 2]
    assert attn.points_per_virtual_level == 3
    assert DFINEDeformableAttention(
        num_levels=2, num_points=[6, 6]).virtual_levels == [0, 1]
    # D-FINE's init: head h points in its direction, at 1..n on each level
    bias = attn.sampling_offsets.bias.view(4, 12, 2)
    torch.testing.assert_close(bias[0, :3, 0], torch.tensor([1., 2., 3.]))
    torch.testing.assert_close(bias[1, 3:9, 1], torch.arange(1., 7.))
    assert attn.sampling_offsets.weight.abs().max() == 0
    assert attn.attention_weights.weight.abs().max() == 0
    assert 'num_points_scale' not in attn.state_dict()


def test_bad_attention_arguments():
    with pytest.raises(ValueError, match=r'num_levels=3 positive ints'):
        DFINEDeformableAttention(num_levels=3, num_points=[3, 6])
    with pytest.raises(ValueError, match='num_points'):
        DFINEDeformableAttention(num_levels=2, num_points=[3, 0])
    with pytest.raises(ValueError, match='divisible'):
        DFINEDeformableAttention(embed_dims=30, num_heads=8)
    with pytest.raises(ValueError, match='batch first'):
        DFINEDeformableAttention(batch_first=False)


def build(num_layers=3, eval_idx=-1, reg_max=8):
    decoder = DFINETransformerDecoder(
        num_layers=num_layers,
        eval_idx=eval_idx,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=DIM, num_heads=2),
            cross_attn_cfg=dict(
                embed_dims=DIM, num_heads=2, num_levels=2, num_points=[2, 4]),
            ffn_cfg=dict(embed_dims=DIM, feedforward_channels=32)))
    decoder.init_weights()
    head = DFINEHead(
        num_classes=3,
        embed_dims=DIM,
        num_pred_layer=num_layers + 1,
        as_two_stage=True,
        reg_max=reg_max)
    head.init_weights()
    return decoder, head


def run(decoder, head, refs=None):
    torch.manual_seed(1)
    if refs is None:
        refs = torch.rand(2, 5, 4) * 0.5 + 0.25
    return decoder(
        query=torch.randn(2, 5, DIM),
        value=torch.randn(2, 60, DIM),
        self_attn_mask=None,
        reference_points=refs,
        spatial_shapes=SHAPES,
        level_start_index=START,
        reg_branches=head.reg_branches,
        pre_reg_branch=head.pre_reg_branch,
        decode_corners=head.decode_corners)


def test_outputs_and_eval_idx_truncation():
    decoder, head = build(eval_idx=1)
    out = run(decoder.train(), head)
    assert out['hidden_states'].shape == (3, 2, 5, DIM)
    assert out['pred_corners'].shape == (3, 2, 5, 4 * 9)
    assert out['pred_bboxes'].shape == (3, 2, 5, 4)
    assert out['ref_points'].shape == out['pre_bboxes'].shape == (2, 5, 4)
    assert not out['ref_points'].requires_grad
    with torch.no_grad():
        out = run(decoder.eval(), head)
    assert out['hidden_states'].shape[0] == 2  # stopped after layer 1
    assert all(v.shape[0] == 2 for k, v in out.items()
               if k.startswith(('hidden', 'pred')))
    with pytest.raises(ValueError, match=r'eval_idx must be in \[-3, 2\]'):
        build(eval_idx=3)
    with pytest.raises(ValueError, match='no final norm'):
        DFINETransformerDecoder(
            num_layers=1,
            post_norm_cfg=dict(type='LN'),
            layer_cfg=build(1)[0].layer_cfg)


def test_fdr_at_init_keeps_the_reference_box():
    decoder, head = build()
    refs = torch.rand(2, 5, 4) * 0.5 + 0.25
    out = run(decoder.train(), head, refs)
    # zero pre/distribution branches: pre box = input box, every layer's
    # box = the fixed reference (distance 0)
    torch.testing.assert_close(out['pre_bboxes'], refs)
    torch.testing.assert_close(out['ref_points'], refs)
    for boxes in out['pred_bboxes']:
        torch.testing.assert_close(boxes, refs)


def test_corners_are_residual_across_layers():
    decoder, head = build()
    for branch in head.reg_branches:
        torch.nn.init.normal_(branch[-1].weight, std=0.1)
    with torch.no_grad():
        out = run(decoder.eval(), head)
    hidden, corners = out['hidden_states'], out['pred_corners']
    torch.testing.assert_close(corners[0], head.reg_branches[0](hidden[0]))
    for i in (1, 2):
        expected = head.reg_branches[i](hidden[i] + hidden[i - 1]) + \
            corners[i - 1]
        torch.testing.assert_close(corners[i], expected)
        torch.testing.assert_close(
            out['pred_bboxes'][i],
            head.decode_corners(out['ref_points'], corners[i]))
