"""Official D-FINE decoder keys -> our DFINE detector's keys."""
import pytest
import torch

from rtdetr_mm.models.utils.dfine_decoder_keys import (dfine_decoder_key_map,
                                                       dfine_decoder_settings,
                                                       dfine_decoder_to_mm,
                                                       dfine_model_settings)
from ..detectors.test_dfine import build

WB = ('weight', 'bias')
BN = WB + ('running_mean', 'running_var', 'num_batches_tracked')


def official_keys(num_layers, proj_levels):
    """The keys of the official ``DFINETransformer`` (with denoising and
    ``eval_spatial_size``), as its ``state_dict()`` lists them."""
    keys = ['up', 'reg_scale', 'anchors', 'valid_mask']
    keys += ['decoder.up', 'decoder.reg_scale']
    for i in proj_levels:
        keys += [f'input_proj.{i}.conv.weight']
        keys += [f'input_proj.{i}.norm.{p}' for p in BN]
    layer = ['self_attn.in_proj_weight', 'self_attn.in_proj_bias']
    layer += [f'self_attn.out_proj.{p}' for p in WB]
    layer += ['cross_attn.num_points_scale']
    for name in ('norm1', 'cross_attn.sampling_offsets',
                 'cross_attn.attention_weights', 'gateway.gate',
                 'gateway.norm', 'linear1', 'linear2', 'norm3'):
        layer += [f'{name}.{p}' for p in WB]
    for i in range(num_layers):
        keys += [f'decoder.layers.{i}.{k}' for k in layer]
        keys += [
            f'decoder.lqe_layers.{i}.reg_conf.layers.{k}.{p}' for k in range(2)
            for p in WB
        ]
        keys += [f'dec_score_head.{i}.{p}' for p in WB]
        keys += [
            f'dec_bbox_head.{i}.layers.{k}.{p}' for k in range(3) for p in WB
        ]
    keys += ['denoising_class_embed.weight']
    keys += [f'query_pos_head.layers.{k}.{p}' for k in range(2) for p in WB]
    keys += [f'enc_output.{m}.{p}' for m in ('proj', 'norm') for p in WB]
    keys += [f'enc_score_head.{p}' for p in WB]
    for mlp in ('enc_bbox_head', 'pre_bbox_head'):
        keys += [f'{mlp}.layers.{k}.{p}' for k in range(3) for p in WB]
    return ['decoder.' + k for k in keys]


def official_state(model, keys, points=(2, 4, 2), up=0.5, reg_scale=4.0):
    """Tensors under official keys: ours where mapped, buffers made up."""
    ours = model.state_dict()
    mapping = dfine_decoder_key_map(keys)
    scale = torch.tensor([1 / n for n in points for _ in range(n)])
    state = {}
    for key in keys:
        if key in mapping:
            state[key] = ours[mapping[key]].clone() + 1
        elif key.endswith(('.up', 'decoder.up')):
            state[key] = torch.tensor([up])
        elif key.endswith('reg_scale'):
            state[key] = torch.tensor([reg_scale])
        elif key.endswith('num_points_scale'):
            state[key] = scale
        else:  # anchors, valid_mask
            state[key] = torch.zeros(1, 4)
    return state


@pytest.mark.parametrize('proj', [False, True])
def test_every_official_key_maps_and_loads_strictly(proj):
    model = build(**({'neck.hidden_dim': 48} if proj else {}))
    keys = official_keys(2, [0, 1, 2] if proj else [])
    state = official_state(model, keys)
    converted = dfine_decoder_to_mm(
        state, expected=dfine_model_settings(model))
    ours = {
        k
        for k in model.state_dict() if not k.startswith(('backbone.', 'neck.'))
    }
    assert set(converted) == ours
    missing, unexpected = model.load_state_dict(converted, strict=False)
    assert not unexpected
    assert all(k.startswith(('backbone.', 'neck.')) for k in missing)
    sd = model.state_dict()
    assert torch.equal(sd['bbox_head.reg_branches.2.4.bias'],
                       state['decoder.enc_bbox_head.layers.2.bias'])
    assert torch.equal(sd['bbox_head.pre_reg_branch.2.weight'],
                       state['decoder.pre_bbox_head.layers.1.weight'])
    assert torch.equal(sd['decoder.layers.1.norms.1.bias'],
                       state['decoder.decoder.layers.1.norm3.bias'])
    assert dfine_decoder_settings(state) == dict(
        num_layers=2,
        embed_dims=32,
        num_classes=4,
        reg_max=8,
        reg_scale=4.0,
        up=0.5,
        num_points=[2, 4, 2])


def test_errors_list_the_keys_and_settings():
    model = build()
    keys = official_keys(2, [])
    with pytest.raises(KeyError, match=r"1 key\(s\).*'decoder\.extra\.w'"):
        dfine_decoder_key_map(keys + ['decoder.extra.w'])
    with pytest.raises(KeyError, match=r"not under 'decoder\.'.*encoder"):
        dfine_decoder_key_map(keys + ['encoder.input_proj.0.conv.weight'])
    state = official_state(model, keys, reg_scale=8.0)
    with pytest.raises(ValueError, match=r'reg_scale: \(8\.0, 4\.0\)'):
        dfine_decoder_to_mm(state, expected=dfine_model_settings(model))
    state = official_state(model, keys, points=(3, 3, 2))
    with pytest.raises(ValueError, match=r'num_points: \(\[3, 3, 2\]'):
        dfine_decoder_to_mm(state, expected=dfine_model_settings(model))
    state = official_state(model, keys)
    state['decoder.decoder.up'] = torch.tensor([0.25])
    with pytest.raises(ValueError, match='must be present and equal'):
        dfine_decoder_settings(state)
