import pytest
import torch
from torch import nn

from rtdetr_mm.models.layers import RTDETRTransformerDecoder


def build(num_layers=3, eval_idx=-1, **kwargs):
    return RTDETRTransformerDecoder(
        num_layers=num_layers,
        eval_idx=eval_idx,
        **kwargs,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=16, num_heads=2),
            cross_attn_cfg=dict(
                embed_dims=16,
                num_heads=2,
                num_levels=2,
                num_points=2,
                dropout=0.0,
                batch_first=True),
            ffn_cfg=dict(embed_dims=16, feedforward_channels=32,
                         ffn_drop=0.0)))


def run(decoder):
    shapes = torch.tensor([[4, 4], [2, 2]])
    reg = nn.ModuleList(nn.Linear(16, 4) for _ in range(decoder.num_layers))
    outputs = decoder(
        query=torch.rand(2, 5, 16),
        value=torch.rand(2, 20, 16),
        self_attn_mask=None,
        reference_points=torch.rand(2, 5, 4) * 0.8 + 0.1,
        spatial_shapes=shapes,
        level_start_index=torch.tensor([0, 16]),
        reg_branches=reg)
    return outputs['hidden_states'], outputs['references']


def test_train_runs_all_layers_eval_stops_at_eval_idx():
    decoder = build(eval_idx=1)
    assert not hasattr(decoder, 'norm') or decoder.post_norm_cfg is None
    hidden, refs = run(decoder.train())
    assert hidden.shape == (3, 2, 5, 16) and len(refs) == 4
    assert all(r.shape == (2, 5, 4) for r in refs)
    hidden, refs = run(decoder.eval())
    assert hidden.shape == (2, 2, 5, 16) and len(refs) == 3


def test_query_pos_is_mlp_of_box_and_bad_eval_idx():
    decoder = build()
    assert decoder.ref_point_head.layers[0].in_features == 4
    assert decoder.ref_point_head.layers[-1].out_features == 16
    with pytest.raises(ValueError, match=r'eval_idx must be in \[-3, 2\]'):
        build(eval_idx=3)


def test_query_position_mlp_layouts():
    """RT-DETR's 4 -> 32 -> 16 ReLU MLP; DEIM's as_reg 4 -> 16 -> 16 -> 16
    with SiLU, which changes the decoder's output."""
    default = build()
    widths = [(m.in_features, m.out_features)
              for m in default.ref_point_head.layers]
    assert widths == [(4, 32), (32, 16)]
    torch.manual_seed(0)
    as_reg = build(
        query_pos_method='as_reg', mlp_act_cfg=dict(type='SiLU')).eval()
    widths = [(m.in_features, m.out_features)
              for m in as_reg.ref_point_head.layers]
    assert widths == [(4, 16), (16, 16), (16, 16)]
    assert isinstance(as_reg.ref_point_head.act, nn.SiLU)
    torch.manual_seed(0)
    silu = run(as_reg)[0]
    as_reg.ref_point_head.act = nn.ReLU()
    torch.manual_seed(0)
    assert not torch.allclose(run(as_reg)[0], silu)
    with pytest.raises(ValueError, match="'as_reg', 'default'"):
        build(query_pos_method='sine')
