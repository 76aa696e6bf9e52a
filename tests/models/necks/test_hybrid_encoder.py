import pytest
import torch
from mmcv.cnn import ConvModule
from mmdet.registry import MODELS

from rtdetr_mm.models.layers import CSPRepLayer, RepNCSPELAN4, SCDown
from rtdetr_mm.models.necks import HybridEncoder
from rtdetr_mm.models.utils.dfine_official_keys import (dfine_encoder_key_map,
                                                        dfine_encoder_to_mm)
from rtdetr_mm.testing import trained_like


def tiny_encoder(**kwargs):
    cfg = dict(
        in_channels=[8, 16, 24],
        hidden_dim=16,
        encoder_layer=dict(
            self_attn_cfg=dict(num_heads=2),
            ffn_cfg=dict(feedforward_channels=32, act_cfg=dict(type='GELU'))),
        expansion=0.5,
        depth_mult=0.67)
    cfg.update(kwargs)
    return HybridEncoder(**cfg)


def feats(h, w, channels=(8, 16, 24), batch=2):
    return [
        torch.rand(batch, c, h // s, w // s)
        for c, s in zip(channels, (8, 16, 32))
    ]


@pytest.mark.parametrize('size', [(64, 64), (64, 128)])
def test_output_shapes(size):
    neck = tiny_encoder()
    outs = neck(feats(*size))
    h, w = size
    assert neck.out_channels == [16, 16, 16]
    assert [tuple(o.shape) for o in outs] == [(2, 16, h // s, w // s)
                                              for s in (8, 16, 32)]
    # round(3 * 0.67) = 2 RepVGG blocks, expansion 0.5 -> conv3 exists
    assert len(neck.fpn_blocks[0].bottlenecks) == 2
    assert not isinstance(neck.fpn_blocks[0].conv3, torch.nn.Identity)


def test_registered_and_no_aifi():
    neck = MODELS.build(
        dict(
            type='HybridEncoder',
            in_channels=[8, 16, 24],
            hidden_dim=16,
            num_encoder_layers=0))
    assert len(neck.encoder) == 0
    assert len(neck(feats(64, 64))) == 3


def test_position_embedding_layout():
    # official layout: flattened index i -> x = i // h, y = i % h
    w, h, dim = 3, 2, 8
    pos = HybridEncoder.build_2d_sincos_position_embedding(w, h, dim)
    assert pos.shape == (1, w * h, dim)
    omega = 1. / 10000**(torch.arange(2) / 2.)
    for i in range(w * h):
        x, y = i // h, i % h
        expected = torch.cat([
            torch.sin(x * omega),
            torch.cos(x * omega),
            torch.sin(y * omega),
            torch.cos(y * omega)
        ])
        assert torch.allclose(pos[0, i], expected, atol=1e-6)


@pytest.mark.parametrize('fusion_block', ['csp_rep', 'gelan'])
def test_switch_to_deploy_equivalence(fusion_block):
    """RT-DETR's and D-FINE's blocks fold; a deploy-built neck loads the
    switched weights."""
    build = tiny_encoder if fusion_block == 'csp_rep' else tiny_dfine
    neck = build()
    x = feats(64, 96)
    trained_like(neck, lambda: neck(x))
    with torch.no_grad():
        ref = neck(x)
        neck.switch_to_deploy()
        neck.switch_to_deploy()  # idempotent
        out = neck(x)
    for a, b in zip(ref, out):
        assert torch.allclose(a, b, atol=1e-4), (a - b).abs().max()
    assert not any('conv1.conv' in k and 'bottlenecks' in k
                   for k in neck.state_dict())
    deployed = build(deploy=True).eval()
    deployed.load_state_dict(neck.state_dict(), strict=True)
    with torch.no_grad():
        for a, b in zip(ref, deployed(x)):
            assert torch.allclose(a, b, atol=1e-4)


def test_bad_inputs():
    neck = tiny_encoder()
    with pytest.raises(
            ValueError, match=r'\[8, 16, 24\] \(in_channels\).*'
            r'\[8, 16, 32\]'):
        neck(feats(64, 64, channels=(8, 16, 32)))
    with pytest.raises(ValueError, match='got 2 feature maps'):
        neck(feats(64, 64)[:2])
    with pytest.raises(ValueError, match='at least two'):
        HybridEncoder(in_channels=[8])
    with pytest.raises(ValueError, match='use_encoder_idx'):
        HybridEncoder(in_channels=[8, 16], use_encoder_idx=[2])
    with pytest.raises(ValueError, match='divisible by 4'):
        HybridEncoder(in_channels=[8, 16], hidden_dim=18, use_encoder_idx=[1])


def tiny_dfine(channels=(8, 16, 24), **kwargs):
    cfg = dict(
        in_channels=list(channels),
        use_encoder_idx=[len(channels) - 1],
        fusion_block='gelan',
        downsample='scdown',
        lateral_act=False,
        expansion=0.5,
        depth_mult=0.34)
    cfg.update(kwargs)
    return tiny_encoder(**cfg)


def test_rtdetr_option_unchanged():
    neck = tiny_encoder()
    assert isinstance(neck.lateral_convs[0].activate, torch.nn.SiLU)
    assert isinstance(neck.downsample_convs[0], ConvModule)
    assert neck.downsample_convs[0].conv.stride == (2, 2)
    assert isinstance(neck.fpn_blocks[0], CSPRepLayer)
    assert isinstance(neck.pan_blocks[1], CSPRepLayer)


@pytest.mark.parametrize('channels,strides', [((16, 24), (16, 32)),
                                              ((8, 16, 24), (8, 16, 32))])
def test_dfine_output_shapes(channels, strides):
    # N-like (2 levels, AIFI on the last) and S-like (3 levels)
    neck = tiny_dfine(channels)
    x = [torch.rand(2, c, 64 // s, 96 // s) for c, s in zip(channels, strides)]
    outs = neck(x)
    assert [tuple(o.shape) for o in outs] == [(2, 16, 64 // s, 96 // s)
                                              for s in strides]
    assert not neck.lateral_convs[0].with_activation
    assert all(isinstance(m, SCDown) for m in neck.downsample_convs)
    block = neck.fpn_blocks[0]
    assert isinstance(block, RepNCSPELAN4)
    # c3 = 2 * hidden, c4 = round(0.5 * 16 // 2) = 4, round(3 * 0.34) = 1
    assert block.cv1.conv.out_channels == 32
    assert block.cv2[1].conv.out_channels == 4
    assert len(block.cv2[0].bottlenecks) == 1


def official_dfine_keys():
    """Official D-FINE HybridEncoder state-dict keys (Peterande/D-FINE
    ``src/zoo/dfine/hybrid_encoder.py``) for ``in_channels=[16, 24],
    hidden_dim=16, use_encoder_idx=[1], depth_mult=0.34``."""
    bn = ('weight', 'bias', 'running_mean', 'running_var',
          'num_batches_tracked')
    conv_norms = ['input_proj.0', 'input_proj.1', 'lateral_convs.0']
    conv_norms += [f'downsample_convs.0.0.cv{i}'
                   for i in (1, 2)]  # nn.Sequential(SCDown)
    for block in ('fpn_blocks.0', 'pan_blocks.0'):
        conv_norms += [f'{block}.cv1', f'{block}.cv4']
        for cv in ('cv2', 'cv3'):  # Sequential(CSPLayer, ConvNormLayer)
            conv_norms += [
                f'{block}.{cv}.0.conv1', f'{block}.{cv}.0.conv2',
                f'{block}.{cv}.0.bottlenecks.0.conv1',
                f'{block}.{cv}.0.bottlenecks.0.conv2', f'{block}.{cv}.1'
            ]
    keys = []
    for path in conv_norms:
        keys.append(f'{path}.conv.weight')
        keys += [f'{path}.norm.{p}' for p in bn]
    layer = 'encoder.0.layers.0.'
    keys += [
        layer + k for k in [
            'self_attn.in_proj_weight', 'self_attn.in_proj_bias',
            'self_attn.out_proj.weight', 'self_attn.out_proj.bias',
            'linear1.weight', 'linear1.bias', 'linear2.weight', 'linear2.bias',
            'norm1.weight', 'norm1.bias', 'norm2.weight', 'norm2.bias'
        ]
    ]
    return keys


def test_dfine_official_key_layout():
    neck = tiny_dfine((16, 24))
    official = official_dfine_keys()
    mapped = dfine_encoder_key_map(official, src_prefix='', dst_prefix='')
    assert list(mapped) == official
    assert sorted(mapped.values()) == sorted(neck.state_dict())
    # a detector checkpoint: encoder.* -> neck.*, recomputed buffers dropped
    prefixed = ['encoder.' + k for k in official] + ['encoder.pos_embed1']
    mapped = dfine_encoder_key_map(prefixed)
    assert sorted(mapped.values()) == sorted('neck.' + k
                                             for k in neck.state_dict())
    assert mapped['encoder.downsample_convs.0.0.cv2.norm.weight'] == \
        'neck.downsample_convs.0.cv2.bn.weight'
    # an official-layout state dict loads strictly after the renaming
    ours_to_official = {
        v[len('neck.'):]: k[len('encoder.'):]
        for k, v in mapped.items()
    }
    official_state = {
        ours_to_official[k]: v
        for k, v in neck.state_dict().items()
    }
    tiny_dfine((16, 24)).load_state_dict(
        dfine_encoder_to_mm(official_state, '', ''), strict=True)
    with pytest.raises(KeyError, match=r"fpn_blocks\.0\.conv1"):
        dfine_encoder_key_map(['encoder.fpn_blocks.0.conv1.conv.weight'])
    with pytest.raises(KeyError, match='not official D-FINE'):
        dfine_encoder_key_map(['decoder.input_proj.0.conv.weight'])


def test_dfine_bad_arguments():
    with pytest.raises(
            ValueError, match="fusion_block.*'csp_rep'.*'gelan'"
            ".*'elan'"):
        tiny_encoder(fusion_block='elan')
    with pytest.raises(ValueError, match="downsample.*'conv'.*'scdown'"):
        tiny_encoder(downsample='SCDown')
