"""tools/model_converters/dfine_official_to_mm.py on tiny official-layout
checkpoints made from our own model by inverting the key maps."""
import copy
import os.path as osp
import re
import sys

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

import rtdetr_mm  # noqa: F401
from rtdetr_mm.models.backbones.hgnetv2 import HGNetv2
from rtdetr_mm.models.utils.conversion import build_model
from rtdetr_mm.models.utils.dfine_decoder_keys import (dfine_decoder_key_map,
                                                       dfine_model_settings)
from rtdetr_mm.models.utils.dfine_official_keys import dfine_encoder_key_map
from rtdetr_mm.models.utils.rtdetr_official_keys import mm_to_official
from rtdetr_mm.testing import structured_images, trained_like
from .._utils import CONFIG_DIR, write_malicious_checkpoint
from ..models.utils.test_dfine_decoder_keys import official_keys

ROOT = osp.join(osp.dirname(__file__), '..', '..')
sys.path.insert(0, osp.join(ROOT, 'tools', 'model_converters'))
import dfine_official_to_mm as converter  # noqa: E402
import rtdetr_official_to_mm as rtdetr_converter  # noqa: E402

# HGNetv2 stages: in, mid, out channels, blocks, downsample, light block,
# kernel size, layers per block
TINY_STAGES = (
    (8, 8, 16, 1, False, False, 3, 1),
    (16, 8, 24, 1, True, False, 3, 2),
    (24, 8, 32, 2, True, True, 5, 1),
    (32, 8, 40, 1, True, True, 5, 1),
)
# D-FINE-S's config with that HGNetv2, a 16-wide neck and decoder, 2 decoder
# layers, 3 classes
TINY = dict(
    data_preprocessor=dict(batch_augments=None),
    backbone=dict(
        arch=dict(
            _delete_=True,
            stem_channels=(8, 8),
            stages=TINY_STAGES,
            use_lab=True),
        init_cfg=None),
    neck=dict(
        in_channels=[24, 32, 40],
        hidden_dim=16,
        encoder_layer=dict(
            self_attn_cfg=dict(num_heads=2),
            ffn_cfg=dict(feedforward_channels=32))),
    decoder=dict(
        num_layers=2,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=16, num_heads=2),
            cross_attn_cfg=dict(
                embed_dims=16, num_heads=2, num_points=[2, 4, 2]),
            ffn_cfg=dict(embed_dims=16, feedforward_channels=32))),
    bbox_head=dict(num_classes=3, embed_dims=16, reg_max=8),
    num_queries=10,
    dn_cfg=dict(group_cfg=dict(num_dn_queries=4)))
# D-FINE-L/X-like: frozen backbone norms (no BN counters in the official
# file), an encoder wider than the decoder (input projections), reg_scale 8
WIDE = dict(
    backbone=dict(norm_cfg=dict(type='BN', requires_grad=False)),
    neck=dict(hidden_dim=24),
    bbox_head=dict(reg_scale=8.0))


def tiny_config(tmp_path):
    """A config inheriting ``configs/dfine_hgnetv2_s_coco.py`` with TINY."""
    base = str(CONFIG_DIR / 'dfine_hgnetv2_s_coco.py')
    path = str(tmp_path / 'tiny_dfine.py')
    with open(path, 'w') as f:
        f.write(f'_base_ = [{base!r}]\nmodel = {TINY!r}\n')
    return path, Config.fromfile(path)


def write_wide_config(tmp_path):
    """A child of the tiny config with :data:`WIDE`."""
    tiny, _ = tiny_config(tmp_path)
    path = str(tmp_path / 'tiny_dfine_wide.py')
    with open(path, 'w') as f:
        f.write(f'_base_ = [{tiny!r}]\nmodel = {WIDE!r}\n')
    return path, Config.fromfile(path)


def official_encoder_key(key):
    """Our ``neck.*`` key -> the official ``encoder.*`` key (CCFM part)."""
    key = re.sub(r'^neck\.(downsample_convs\.\d+)\.', r'encoder.\1.0.', key)
    key = re.sub(r'^neck\.', 'encoder.', key)
    return re.sub(r'\.bn\.(\w+)$', r'.norm.\1', key)


def to_official(model, frozen_backbone_norms=False):
    """Our DFINE's state dict in the official layout: backbone keys as
    they are, the encoder and decoder key maps inverted, the official
    buffers (up, reg_scale, points, anchors) from the model's settings."""
    ours = model.state_dict()
    official = {}
    for key, value in ours.items():
        if key.startswith('backbone.') and not (
                frozen_backbone_norms and key.endswith('num_batches_tracked')):
            official[key] = value
    # input projections and AIFI as RT-DETR v2, the CCFM renamed
    shared = {
        k: v
        for k, v in ours.items()
        if k.startswith(('neck.input_proj.', 'neck.encoder.'))
    }
    encoder = dict(mm_to_official(shared, 'v2'))
    encoder.update((official_encoder_key(k), v) for k, v in ours.items()
                   if k.startswith('neck.') and k not in shared)
    name_of = {id(v): k for k, v in ours.items()}
    assert dfine_encoder_key_map(encoder) == {
        k: name_of[id(v)]
        for k, v in encoder.items()
    }
    official.update(encoder)
    settings = dfine_model_settings(model)
    proj = [
        i for i in range(len(settings['num_points']))
        if f'input_proj.{i}.conv.weight' in ours
    ]
    keys = official_keys(settings['num_layers'], proj)
    mapping = dfine_decoder_key_map(keys)
    scale = torch.tensor(
        [1 / n for n in settings['num_points'] for _ in range(n)])
    for key in keys:
        if key in mapping:
            official[key] = ours[mapping[key]]
        elif key.endswith('num_points_scale'):
            official[key] = scale.clone()
        elif key.endswith(('.up', '.reg_scale')):
            official[key] = torch.tensor([settings[key.rsplit('.', 1)[1]]])
        else:  # anchors, valid_mask: for eval_spatial_size, not loaded
            official[key] = torch.zeros(1, 5, 4 if 'anchors' in key else 1)
    return official


def build(cfg, seed=0):
    init_default_scope('mmdet')
    torch.manual_seed(seed)
    return MODELS.build(copy.deepcopy(cfg.model))


def outputs(model, images):
    with torch.no_grad():
        return model.bbox_head(
            **model.forward_transformer(model.extract_feat(images)))


def spread_model(cfg):
    """The tiny model with random, well-spread weights, in eval mode."""
    model = build(cfg)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.1 * torch.randn(param.shape, generator=gen))
    images = structured_images(2, 64)
    return trained_like(model, lambda: outputs(model, images))


# official key samples that must map exactly like this
EXPECTED = {
    'backbone.stages.2.blocks.1.layers.0.conv1.conv.weight':
    'backbone.stages.2.blocks.1.layers.0.conv1.conv.weight',
    'backbone.stem.stem1.lab.scale':
    'backbone.stem.stem1.lab.scale',
    'encoder.input_proj.2.norm.running_var':
    'neck.input_proj.2.bn.running_var',
    'encoder.encoder.0.layers.0.linear1.bias':
    'neck.encoder.0.layers.0.ffn.layers.0.0.bias',
    'encoder.downsample_convs.1.0.cv2.conv.weight':
    'neck.downsample_convs.1.cv2.conv.weight',
    'encoder.pan_blocks.0.cv3.0.bottlenecks.0.conv2.norm.bias':
    'neck.pan_blocks.0.cv3.0.bottlenecks.0.conv2.bn.bias',
    'decoder.decoder.layers.1.gateway.gate.weight':
    'decoder.layers.1.gate.linear.weight',
    'decoder.decoder.lqe_layers.1.reg_conf.layers.1.bias':
    'bbox_head.lqe_layers.1.mlp.layers.1.bias',
    'decoder.enc_output.proj.weight':
    'memory_trans_fc.weight',
    'decoder.enc_score_head.bias':
    'bbox_head.cls_branches.2.bias',
    'decoder.pre_bbox_head.layers.2.weight':
    'bbox_head.pre_reg_branch.4.weight',
    'decoder.dec_bbox_head.1.layers.1.bias':
    'bbox_head.reg_branches.1.2.bias',
    'decoder.denoising_class_embed.weight':
    'dn_query_generator.label_embedding.weight',
}


@pytest.mark.parametrize('wide', [False, True])
def test_round_trip_loads_strictly_with_identical_outputs(tmp_path, wide):
    config, cfg = (
        write_wide_config(tmp_path) if wide else tiny_config(tmp_path))
    source = spread_model(cfg)
    official = to_official(source, frozen_backbone_norms=wide)
    assert ('decoder.input_proj.0.conv.weight' in official) == wide
    src, dst = str(tmp_path / 'official.pth'), str(tmp_path / 'mm.pth')
    # the official trainer's file: the EMA copy is the one to take
    decoy = {k: torch.zeros_like(v) for k, v in official.items()}
    torch.save(
        dict(
            model=decoy,
            ema=dict(module=official, updates=100, warmups=1000),
            last_epoch=131), src)
    converter.main([src, dst, '--config', config])

    ckpt = torch.load(dst, weights_only=False)
    ours = source.state_dict()
    assert list(ckpt['state_dict']) == list(ours)
    assert ckpt['meta']['source_layout'] == 'official D-FINE (ema.module)'
    assert all(
        k.endswith(('.up', '.reg_scale', 'num_points_scale', 'anchors',
                    'valid_mask')) for k in ckpt['meta']['ignored_keys'])
    assert len(ckpt['meta']['ignored_keys']) == 6 + 2
    for key, value in ours.items():
        if not (wide and key.endswith('num_batches_tracked')):
            assert torch.equal(ckpt['state_dict'][key], value), key
    if not wide:
        for off_key, mm_key in EXPECTED.items():
            # the very same tensor (state dicts share the parameters')
            assert official[off_key].data_ptr() == ours[mm_key].data_ptr(), \
                (off_key, mm_key)

    target = build(cfg, seed=1).eval()
    images = structured_images(2, 64, seed=3)
    before = outputs(target, images)
    target.load_state_dict(ckpt['state_dict'], strict=True)
    expected, got = outputs(source, images), outputs(target, images)
    assert not torch.equal(before[0][-1], expected[0][-1])
    assert expected[0][-1].std() > 0.5  # logits of well-spread weights
    for a, b in zip(expected, got):
        assert torch.equal(a, b)


def test_lists_missing_unmapped_and_wrong_settings(tmp_path):
    config, cfg = tiny_config(tmp_path)
    official = to_official(build(cfg))
    src, dst = str(tmp_path / 'official.pth'), str(tmp_path / 'mm.pth')

    broken = dict(official)
    del broken['decoder.enc_output.proj.weight']
    del broken['backbone.stages.0.blocks.0.layers.0.conv.weight']
    torch.save(dict(model=broken), src)
    with pytest.raises(
            SystemExit,
            match=r'2 missing key\(s\): backbone\.stages\.0\.blocks\.0\.'
            r'layers\.0\.conv\.weight, memory_trans_fc\.weight'):
        converter.main([src, dst, '--config', config])

    torch.save(
        dict(official, **{'decoder.tgt_embed.weight': torch.zeros(1)}), src)
    with pytest.raises(
            SystemExit, match='not official D-FINE decoder keys.*tgt_embed'):
        converter.main([src, dst, '--config', config])
    torch.save(dict(official, **{'head.fc.weight': torch.zeros(1)}), src)
    with pytest.raises(SystemExit, match='no mapping.*head.fc.weight'):
        converter.main([src, dst, '--config', config])

    for key in ('decoder.reg_scale', 'decoder.decoder.reg_scale'):
        official[key] = torch.tensor([8.0])
    torch.save(official, src)
    with pytest.raises(
            SystemExit,
            match=r'official\.pth does not fit .*tiny_dfine\.py'
            r'.*reg_scale: \(8\.0, 4\.0\)'):
        converter.main([src, dst, '--config', config])
    # without --config the size is read from the keys: none published
    with pytest.raises(
            SystemExit,
            match=r"none of the published D-FINE sizes \({'backbone "
            r"arch': None, 'encoder width': 16.*pass --config"):
        converter.main([src, dst])
    assert not osp.exists(dst)


def test_names_the_kind_of_checkpoint_it_got(tmp_path):
    config, cfg = tiny_config(tmp_path)
    model = build(cfg)
    official = to_official(model)
    src, dst = str(tmp_path / 'src.pth'), str(tmp_path / 'mm.pth')

    torch.save(dict(state_dict=model.state_dict(), meta=dict(epoch=1)), src)
    with pytest.raises(
            SystemExit,
            match='is an rtdetr_mm detector checkpoint, not an official '
            'D-FINE detector one.*needs no conversion'):
        converter.main([src, dst, '--config', config])

    backbone = {
        k[len('backbone.'):]: v
        for k, v in official.items() if k.startswith('backbone.')
    }
    torch.save(backbone, src)
    with pytest.raises(
            SystemExit,
            match='is an HGNetv2 ImageNet backbone checkpoint.*needs no '
            r"conversion: HGNetv2 loads it with init_cfg=dict\(type="
            "'Pretrained'"):
        converter.main([src, dst, '--config', config])

    rtdetr = {
        'backbone.conv1.conv1_1.conv.weight': torch.zeros(1),
        'encoder.input_proj.0.0.weight': torch.zeros(1),
        'decoder.decoder.layers.0.linear1.weight': torch.zeros(1),
    }
    torch.save(dict(ema=dict(module=rtdetr)), src)
    with pytest.raises(
            SystemExit,
            match='is an official RT-DETR v1 detector checkpoint, not an '
            'official D-FINE detector one.*rtdetr_official_to_mm.py'):
        converter.main([src, dst, '--config', config])

    # and the other way round: the RT-DETR tool names a D-FINE checkpoint
    torch.save(dict(model=official), src)
    with pytest.raises(
            SystemExit,
            match='is an official D-FINE detector checkpoint, not an '
            'official RT-DETR v2 detector one.*dfine_official_to_mm.py'):
        rtdetr_converter.main([src, dst, '--version', 'v2'])
    assert not osp.exists(dst)


def test_refuses_malicious_files(tmp_path):
    config, _ = tiny_config(tmp_path)
    marker = tmp_path / 'pwned'
    evil = write_malicious_checkpoint(tmp_path / 'evil.pth', marker)
    dst = str(tmp_path / 'mm.pth')
    with pytest.raises(
            SystemExit,
            match="evil.pth wants to load "
            r"'(io|builtins)\.open'.*--unsafe-load"):
        converter.main([str(evil), dst, '--config', config])
    assert not marker.exists() and not osp.exists(dst)
    with pytest.raises(SystemExit, match='missing.pth does not exist'):
        converter.main([str(tmp_path / 'missing.pth'), dst])


def test_size_inference_picks_the_published_config():
    # the official layout of every published size, on the meta device
    for size in converter.SIZES:
        config = str(CONFIG_DIR / f'dfine_hgnetv2_{size}_coco.py')
        with torch.device('meta'):
            model = build_model(config)
        official = to_official(model)  # the buffers on the CPU
        assert converter.infer_size(official) == size
        if size == 's':  # an Objects365 model: its size and class count
            with torch.device('meta'):
                official['decoder.dec_score_head.0.weight'] = torch.empty(
                    366, 256)
            with pytest.raises(
                    ValueError,
                    match="D-FINE-S with 366 classes.*dfine_hgnetv2_s_coco"
                    r".*num_classes=366"):
                converter.infer_size(official)
    for arch in HGNetv2.arch_settings:
        with torch.device('meta'):
            backbone = HGNetv2(arch=arch).state_dict()
        assert converter.hgnetv2_arch(backbone, prefix='') == arch


def test_deim_checkpoints_convert_with_the_deim_config(tmp_path):
    """DEIM-D-FINE has D-FINE's keys (its SiLU MLPs show in none), so
    --deim picks the DEIM config of the size read from the keys."""
    deim = build_model(str(CONFIG_DIR / 'deim_dfine_hgnetv2_n_coco.py'))
    with torch.device('meta'):
        dfine = build_model(str(CONFIG_DIR / 'dfine_hgnetv2_n_coco.py'))
    assert deim.state_dict().keys() == dfine.state_dict().keys()
    src, dst = str(tmp_path / 'official.pth'), str(tmp_path / 'mm.pth')
    torch.save(dict(model=to_official(deim)), src)
    converter.main([src, dst, '--deim'])
    ckpt = torch.load(dst, weights_only=False)
    assert ckpt['meta']['config'].endswith('deim_dfine_hgnetv2_n_coco.py')
    deim.load_state_dict(ckpt['state_dict'], strict=True)
