import copy
import os.path as osp
import sys

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

import rtdetr_mm  # noqa: F401
from rtdetr_mm.models.utils.rtdetr_official_keys import mm_to_official
from .._utils import write_malicious_checkpoint

ROOT = osp.join(osp.dirname(__file__), '..', '..')
sys.path.insert(0, osp.join(ROOT, 'tools', 'model_converters'))
import rtdetr_official_to_mm as converter  # noqa: E402

TINY = dict(
    data_preprocessor=dict(batch_augments=None),
    backbone=dict(base_channels=8, stem_channels=8),
    neck=dict(
        in_channels=[16, 32, 64],
        hidden_dim=16,
        encoder_layer=dict(
            self_attn_cfg=dict(num_heads=2),
            ffn_cfg=dict(feedforward_channels=32))),
    decoder=dict(
        num_layers=2,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=16, num_heads=2),
            cross_attn_cfg=dict(embed_dims=16, num_heads=2, num_points=2),
            ffn_cfg=dict(embed_dims=16, feedforward_channels=32))),
    bbox_head=dict(num_classes=3, embed_dims=16),
    num_queries=10,
    dn_cfg=dict(group_cfg=dict(num_dn_queries=4)))


def tiny_config(tmp_path, name, depth, family='rtdetr'):
    """Write a tiny config inheriting ``configs/{family}_{name}_coco.py``."""
    model = copy.deepcopy(TINY)
    model['backbone']['depth'] = depth
    if depth >= 50:
        model['neck']['in_channels'] = [64, 128, 256]
    base = osp.abspath(osp.join(ROOT, 'configs', f'{family}_{name}_coco.py'))
    path = str(tmp_path / f'tiny_{family}_{name}.py')
    with open(path, 'w') as f:
        f.write(f'_base_ = [{base!r}]\nmodel = {model!r}\n')
    return path, Config.fromfile(path)


def random_state(cfg):
    init_default_scope('mmdet')
    model = MODELS.build(copy.deepcopy(cfg.model))
    state = model.state_dict()
    return {
        k: torch.randn(v.shape) if v.is_floating_point() else v
        for k, v in state.items()
    }


# official key samples that must map exactly like this
EXPECTED = {
    'backbone.conv1.conv1_2.norm.running_mean': 'backbone.stem.4.running_mean',
    'backbone.res_layers.0.blocks.0.short.conv.weight':
    'backbone.layer1.0.downsample.1.weight',
    'backbone.res_layers.2.blocks.0.short.conv.norm.bias':
    'backbone.layer3.0.downsample.2.bias',
    'encoder.input_proj.1.1.running_var': 'neck.input_proj.1.bn.running_var',
    'encoder.encoder.0.layers.0.self_attn.in_proj_weight':
    'neck.encoder.0.layers.0.self_attn.attn.in_proj_weight',
    'encoder.encoder.0.layers.0.linear1.bias':
    'neck.encoder.0.layers.0.ffn.layers.0.0.bias',
    'encoder.fpn_blocks.0.bottlenecks.0.conv2.norm.weight':
    'neck.fpn_blocks.0.bottlenecks.0.conv2.bn.weight',
    'decoder.decoder.layers.1.norm3.weight': 'decoder.layers.1.norms.2.weight',
    'decoder.decoder.layers.0.cross_attn.sampling_offsets.weight':
    'decoder.layers.0.cross_attn.sampling_offsets.weight',
    'decoder.enc_output.1.bias': 'memory_trans_norm.bias',
    'decoder.enc_bbox_head.layers.2.weight':
    'bbox_head.reg_branches.2.4.weight',
    'decoder.dec_bbox_head.1.layers.1.bias': 'bbox_head.reg_branches.1.2.bias',
    'decoder.enc_score_head.bias': 'bbox_head.cls_branches.2.bias',
    'decoder.denoising_class_embed.weight':
    'dn_query_generator.label_embedding.weight',
    'decoder.query_pos_head.layers.1.weight':
    'decoder.ref_point_head.layers.1.weight',
    'decoder.input_proj.2.norm.weight': 'input_proj.2.bn.weight',
}


@pytest.mark.parametrize('name,depth', [('r18vd', 18), ('r50vd', 50)])
def test_round_trip_through_the_tool(tmp_path, name, depth):
    config, cfg = tiny_config(tmp_path, name, depth)
    ours = random_state(cfg)
    official = mm_to_official(ours)
    # the official layout has no BN counters for frozen-BN backbones
    official = {
        k: v
        for k, v in official.items() if not k.endswith('num_batches_tracked')
    }
    official['encoder.pos_embed2'] = torch.zeros(1, 4, 16)  # old buffer
    assert sum(
        k.startswith('backbone.res_layers.0.blocks.0.short.')
        for k in official) >= 5
    src, dst = str(tmp_path / 'official.pth'), str(tmp_path / 'mm.pth')
    torch.save(dict(ema=dict(module=official), last_epoch=71), src)
    converter.main([src, dst, '--config', config])
    ckpt = torch.load(dst, weights_only=False)
    assert ckpt['meta']['ignored_keys'] == ['encoder.pos_embed2']
    assert ckpt['state_dict'].keys() == ours.keys()
    for k, v in ours.items():
        if not k.endswith('num_batches_tracked'):
            assert torch.equal(ckpt['state_dict'][k], v), k
    # known official keys map to the expected rtdetr_mm keys
    if depth == 18:
        for off_key, mm_key in EXPECTED.items():
            assert official[off_key] is ours[mm_key], (off_key, mm_key)
    # the model loads the converted checkpoint strictly
    init_default_scope('mmdet')
    model = MODELS.build(copy.deepcopy(cfg.model))
    model.load_state_dict(ckpt['state_dict'], strict=True)


def test_errors(tmp_path):
    config, cfg = tiny_config(tmp_path, 'r18vd', 18)
    official = mm_to_official(random_state(cfg))
    src, dst = str(tmp_path / 'official.pth'), str(tmp_path / 'mm.pth')

    torch.save(
        dict(official, **{'decoder.tgt_embed.weight': torch.zeros(1)}), src)
    with pytest.raises(SystemExit, match='no mapping.*tgt_embed'):
        converter.main([src, dst, '--config', config])

    del official['decoder.enc_output.0.weight']
    torch.save(dict(model=official), src)
    with pytest.raises(SystemExit, match='1 missing.*memory_trans_fc.weight'):
        converter.main([src, dst, '--config', config])


def test_v2_layout(tmp_path):
    config, cfg = tiny_config(tmp_path, 'r18vd', 18)
    ours = random_state(cfg)
    official = mm_to_official(ours, 'v2')
    assert 'decoder.enc_output.proj.weight' in official
    assert 'encoder.input_proj.0.conv.weight' in official
    scale = 'decoder.decoder.layers.0.cross_attn.num_points_scale'
    official[scale] = torch.full((6, ), 0.5)  # 3 levels x 2 points
    src, dst = str(tmp_path / 'official.pth'), str(tmp_path / 'mm.pth')
    torch.save(dict(model=official), src)
    converter.main([src, dst, '--config', config, '--version', 'v2'])
    converted = torch.load(dst, weights_only=False)['state_dict']
    assert all(
        torch.equal(converted[k], v) for k, v in ours.items()
        if not k.endswith('num_batches_tracked'))
    official[scale] = torch.tensor([1., 1., .5, .5, .5, .5])
    torch.save(dict(model=official), src)
    with pytest.raises(SystemExit, match='per-level point counts'):
        converter.main([src, dst, '--config', config, '--version', 'v2'])


def test_deim_layout_needs_a_deim_config(tmp_path):
    """DEIM-RT-DETRv2: v2 keys with a 3-layer query-position MLP; its
    default config is DEIM's, and a plain v2 config refuses it."""
    config, cfg = tiny_config(tmp_path, 'r18vd', 18, 'deim_rtdetrv2')
    ours = random_state(cfg)
    official = mm_to_official(ours, 'v2')
    assert 'decoder.query_pos_head.layers.2.weight' in official
    assert converter.default_config(official, 'v2') == \
        'deim_rtdetrv2_r18vd_coco.py'
    src, dst = str(tmp_path / 'official.pth'), str(tmp_path / 'mm.pth')
    torch.save(dict(model=official), src)
    converter.main([src, dst, '--config', config, '--version', 'v2'])
    converted = torch.load(dst, weights_only=False)['state_dict']
    assert converted['decoder.ref_point_head.layers.2.weight'] is not None
    plain, _ = tiny_config(tmp_path, 'r18vd', 18, 'rtdetrv2')
    with pytest.raises(SystemExit, match='ref_point_head.layers.2'):
        converter.main([src, dst, '--config', plain, '--version', 'v2'])
    del official['decoder.query_pos_head.layers.2.weight']
    assert converter.default_config(official, 'v2') == \
        'rtdetrv2_r18vd_coco.py'
    assert converter.default_config(official, 'v1') == 'rtdetr_r18vd_coco.py'


def test_infer_depth():

    def keys(counts, bottleneck):
        out = {}
        for i, n in enumerate(counts):
            for j in range(n):
                out[f'backbone.res_layers.{i}.blocks.{j}.branch2a.conv.'
                    'weight'] = 0
                if bottleneck:
                    out[f'backbone.res_layers.{i}.blocks.{j}.branch2c.conv.'
                        'weight'] = 0
        return out

    assert converter.infer_depth(keys((2, 2, 2, 2), False)) == 18
    assert converter.infer_depth(keys((3, 4, 6, 3), False)) == 34
    assert converter.infer_depth(keys((3, 4, 6, 3), True)) == 50
    assert converter.infer_depth(keys((3, 4, 23, 3), True)) == 101
    with pytest.raises(ValueError, match='unknown PResNet layout'):
        converter.infer_depth(keys((1, 1, 1, 1), False))


def test_backbone_only(tmp_path):
    config, cfg = tiny_config(tmp_path, 'r18vd', 18)
    ours = random_state(cfg)
    official = {
        k[len('backbone.'):]: v
        for k, v in mm_to_official(ours).items() if k.startswith('backbone.')
    }
    assert 'conv1.conv1_1.conv.weight' in official
    src, dst = str(tmp_path / 'presnet.pth'), str(tmp_path / 'backbone.pth')
    torch.save(official, src)
    converter.main([src, dst, '--config', config, '--backbone-only'])
    converted = torch.load(dst, weights_only=False)['state_dict']
    expected = {
        k[len('backbone.'):]: v
        for k, v in ours.items() if k.startswith('backbone.')
    }
    assert converted.keys() == expected.keys()
    assert all(torch.equal(converted[k], v) for k, v in expected.items())
    # a backbone built with this checkpoint as Pretrained init loads it
    init_default_scope('mmdet')
    backbone_cfg = copy.deepcopy(cfg.model.backbone)
    backbone_cfg.init_cfg = dict(type='Pretrained', checkpoint=dst)
    backbone = MODELS.build(backbone_cfg)
    backbone.init_weights()
    assert torch.equal(backbone.stem[0].weight, expected['stem.0.weight'])


def test_refuses_malicious_and_broken_files(tmp_path):
    config, _ = tiny_config(tmp_path, 'r18vd', 18)
    marker = tmp_path / 'pwned'
    evil = write_malicious_checkpoint(tmp_path / 'evil.pth', marker)
    dst = str(tmp_path / 'mm.pth')
    with pytest.raises(
            SystemExit,
            match="evil.pth wants to load "
            r"'(io|builtins)\.open'.*--unsafe-load"):
        converter.main([str(evil), dst, '--config', config])
    assert not marker.exists() and not osp.exists(dst)
    for name, data in (('empty.pth', b''), ('text.pth', b'hello\n')):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(
                SystemExit, match=f'{name} is not a PyTorch '
                'checkpoint'):
            converter.main([str(tmp_path / name), dst, '--config', config])
    with pytest.raises(SystemExit, match='missing.pth does not exist'):
        converter.main([str(tmp_path / 'missing.pth'), dst])


def test_names_the_kind_of_checkpoint_it_got(tmp_path):
    config, cfg = tiny_config(tmp_path, 'r18vd', 18)
    ours = random_state(cfg)
    src, dst = str(tmp_path / 'src.pth'), str(tmp_path / 'mm.pth')

    torch.save(dict(ema=dict(module=mm_to_official(ours))), src)
    with pytest.raises(
            SystemExit,
            match='is an official RT-DETR v1 detector '
            'checkpoint, not an official ImageNet PResNet backbone '
            'one.*drop --backbone-only'):
        converter.main([src, dst, '--config', config, '--backbone-only'])
    with pytest.raises(SystemExit, match='pass --version v1'):
        converter.main([src, dst, '--config', config, '--version', 'v2'])

    torch.save(dict(model=mm_to_official(ours, 'v2')), src)
    with pytest.raises(
            SystemExit,
            match='is an official RT-DETR v2 detector '
            'checkpoint.*pass --version v2'):
        converter.main([src, dst, '--config', config])

    backbone = {
        k[len('backbone.'):]: v
        for k, v in mm_to_official(ours).items() if k.startswith('backbone.')
    }
    torch.save(backbone, src)
    with pytest.raises(
            SystemExit,
            match='is an official ImageNet PResNet '
            'backbone checkpoint.*add --backbone-only'):
        converter.main([src, dst, '--config', config])

    torch.save(dict(state_dict=ours, meta=dict(epoch=72)), src)
    with pytest.raises(
            SystemExit,
            match='is an rtdetr_mm detector checkpoint'
            '.*needs no conversion'):
        converter.main([src, dst, '--config', config])
    assert not osp.exists(dst)
