import pytest
import torch
from mmdet.registry import MODELS

from rtdetr_mm.models.necks import HybridEncoder


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


def randomize_bn(module):
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)


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


def test_switch_to_deploy_equivalence():
    neck = tiny_encoder()
    randomize_bn(neck)
    neck.eval()
    x = feats(64, 96)
    with torch.no_grad():
        ref = neck(x)
        neck.switch_to_deploy()
        neck.switch_to_deploy()  # idempotent
        out = neck(x)
    for a, b in zip(ref, out):
        assert torch.allclose(a, b, atol=1e-4)
    assert not any('conv1.conv' in k and 'bottlenecks' in k
                   for k in neck.state_dict())
    # a deploy-built neck loads the switched weights
    deployed = tiny_encoder(deploy=True).eval()
    deployed.load_state_dict(neck.state_dict())
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
