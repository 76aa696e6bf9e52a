"""Tests of the RIFormer backbone (a subclass of mmpretrain's RIFormer)."""
import re

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmpretrain.models.backbones.riformer import RIFormer as MMPretrainRIFormer
from torch import nn

from rtdetr_mm.models.backbones import RIFormer
from rtdetr_mm.models.utils import load_pretrained_checkpoint
from rtdetr_mm.utils import CheckpointFileError, UnsafeCheckpointError
from ..._utils import CONFIG_DIR, write_malicious_checkpoint

# Published ImageNet parameter counts (mmpretrain's
# configs/riformer/metafile.yml) of the classifier: backbone + GAP + a
# 1000-way linear head.
PUBLISHED_PARAMS = dict(
    s12=11_915_000,
    s24=21_389_000,
    s36=30_863_000,
    m36=56_173_000,
    m48=73_473_000)
STAGE_CHANNELS = dict(
    s12=(64, 128, 320, 512),
    s24=(64, 128, 320, 512),
    s36=(64, 128, 320, 512),
    m36=(96, 192, 384, 768),
    m48=(96, 192, 384, 768))
# A small custom arch keeps the behavioural tests fast.
TINY = dict(
    layers=[1, 1, 2, 1],
    embed_dims=[8, 16, 24, 32],
    mlp_ratios=[2, 2, 2, 2],
    layer_scale_init_value=1e-5)


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give the blocks' norms, affine mixers and layer scales random values.

    Layer scales start at 1e-5, which would make every block an identity and
    the deploy-equivalence tests vacuous. The output norms ``norm{j}`` stay
    plain normalisations (unit-variance outputs, so absolute tolerances mean
    the same at every stage).
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=gen)
            if name.startswith('norm'):
                continue
            if 'layer_scale' in name:
                param.copy_(0.1 + 0.03 * noise)
            elif param.dim() == 1:  # norm weights/biases, conv biases
                param.copy_((1.0 if name.endswith('weight') else 0.0) +
                            0.3 * noise)
            elif 'token_mixer' in name:  # depthwise 1x1 affine weights
                param.copy_(noise)
    return model


def frozen_names(model: nn.Module) -> set:
    return {n for n, p in model.named_parameters() if not p.requires_grad}


@pytest.mark.parametrize('arch', list(PUBLISHED_PARAMS))
def test_shapes_and_out_channels(arch):
    with torch.device('meta'):
        model = RIFormer(arch=arch)
    assert model.out_indices == (1, 2, 3)
    assert model.out_channels == STAGE_CHANNELS[arch][1:]
    for size in [(64, 96), (320, 256)]:
        with torch.device('meta'):
            outs = model(torch.empty(2, 3, *size))
        assert [tuple(o.shape) for o in outs] == [
            (2, channels, size[0] // 2**(stage + 2), size[1] // 2**(stage + 2))
            for stage, channels in zip((1, 2, 3), model.out_channels)
        ]


def test_forward_real_values():
    model = randomize(RIFormer(arch='s12', out_indices=(0, 1, 2, 3))).eval()
    assert model.out_channels == (64, 128, 320, 512)
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [(1, 64, 16, 24), (1, 128, 8, 12),
                                              (1, 320, 4, 6), (1, 512, 2, 3)]
    assert all(torch.isfinite(o).all() for o in outs)


@pytest.mark.parametrize('arch', list(PUBLISHED_PARAMS))
def test_param_counts_match_published(arch):
    # The published figures are those of the re-parameterised classifier:
    # backbone in deploy form with one output norm (norm6, stage 3), GAP and
    # a 1000-way linear head. They are rounded to thousands.
    with torch.device('meta'):
        deployed = RIFormer(arch=arch, out_indices=(3, ), deploy=True)
        training = RIFormer(arch=arch, out_indices=(3, ))
    head = deployed.out_channels[-1] * 1000 + 1000
    deploy_params = sum(p.numel() for p in deployed.parameters())
    assert abs(deploy_params + head - PUBLISHED_PARAMS[arch]) <= 500
    # The training form adds each block's affine token mixer (a depthwise
    # 1x1 conv: C weights + C biases); the fusion removes exactly these.
    settings = RIFormer.arch_settings[arch]
    mixer = sum(
        2 * depth * dim
        for depth, dim in zip(settings['layers'], settings['embed_dims']))
    assert sum(p.numel() for p in training.parameters()) == (
        deploy_params + mixer)


@pytest.mark.parametrize('out_indices,network', [
    ((1, 2, 3), (2, 4, 6)),
    ((0, 3), (0, 6)),
    (-1, (6, )),
    ((3, 1), (6, 2)),
])
def test_out_indices_map_onto_network(out_indices, network):
    model = randomize(RIFormer(arch=TINY, out_indices=out_indices)).eval()
    assert model.network_out_indices == network
    norms = {n for n, _ in model.named_children() if n.startswith('norm')}
    assert norms == {f'norm{j}' for j in network}
    # mmpretrain's class with the network indices computes the same maps
    # (it returns them in network order) from the same weights.
    reference = MMPretrainRIFormer(arch=TINY, out_indices=sorted(network))
    reference.load_state_dict(model.state_dict(), strict=True)
    reference.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ours = dict(zip(network, model(x)))
        theirs = dict(zip(sorted(network), reference(x)))
    for index in network:
        torch.testing.assert_close(ours[index], theirs[index], rtol=0, atol=0)


@pytest.mark.parametrize('frozen_stages', [1, 2, 3, 4])
def test_frozen_stages_map_onto_network(frozen_stages):
    model = RIFormer(
        arch=TINY, out_indices=(0, 1, 2, 3), frozen_stages=frozen_stages)
    # Stage k (k >= 1) is mmpretrain's network-level frozen_stages=2k-2.
    reference = MMPretrainRIFormer(
        arch=TINY,
        out_indices=[0, 2, 4, 6],
        frozen_stages=2 * frozen_stages - 2)
    assert frozen_names(model) == frozen_names(reference)
    assert frozen_names(model)  # not vacuous


def test_frozen_stem_only_and_none():
    model = RIFormer(arch=TINY, frozen_stages=0)
    assert frozen_names(model) == {
        'patch_embed.proj.weight', 'patch_embed.proj.bias'
    }
    assert not frozen_names(RIFormer(arch=TINY, frozen_stages=-1))


@pytest.mark.parametrize('mode', ['eval', 'train'])
@pytest.mark.parametrize('dtype,atol', [(torch.float32, 1e-5),
                                        (torch.float64, 1e-10)])
def test_switch_to_deploy_equivalence(mode, dtype, atol):
    # float64 shows the fusion is exact algebra; float32 that its rounding
    # stays within 1e-5 (this network's own float32-vs-float64 error is
    # about 2e-5 on these weights, the switch adds less than 1e-5).
    torch.manual_seed(0)
    model = randomize(RIFormer(arch='s12', out_indices=(0, 1, 2, 3)))
    model.to(dtype).train(mode == 'train')
    x = torch.randn(1, 3, 64, 64, dtype=dtype)
    with torch.no_grad():
        before = model(x)
        model.switch_to_deploy()
        after = model(x)
    assert model.deploy and model.training == (mode == 'train')
    keys = model.state_dict().keys()
    assert not any('token_mixer' in k or '.norm1.' in k for k in keys)
    assert any('norm_reparam' in k for k in keys)
    assert all(p.dtype == dtype for p in model.parameters())
    for b, a in zip(before, after):
        assert (b - a).abs().max() <= atol
    # Idempotent: a second switch changes nothing.
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.switch_to_deploy()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def mmpretrain_checkpoint(path, arch, deploy=False, seed=1):
    """Write a state dict in an mmpretrain ImageNet classifier's layout."""
    backbone = randomize(MMPretrainRIFormer(arch=arch), seed)  # norm6 only
    if deploy:
        backbone.switch_to_deploy()
    channels = backbone.norm6.weight.numel()
    state = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    state['head.fc.weight'] = torch.randn(1000, channels)
    state['head.fc.bias'] = torch.randn(1000)
    torch.save(dict(meta=dict(epoch=300), state_dict=state), path)
    return backbone.state_dict()


@pytest.mark.parametrize('prefix', ['backbone.', None])
def test_loads_mmpretrain_checkpoint(tmp_path, prefix):
    path = str(tmp_path / 'riformer-s12.pth')
    expected = mmpretrain_checkpoint(path, 's12')
    model = RIFormer(arch='s12')
    missing, unexpected = load_pretrained_checkpoint(
        model,
        path,
        prefix=prefix,
        convert=model.convert_checkpoint,
        ignore=model.ignored_checkpoint_keys)
    assert missing == [] and unexpected == []
    state = model.state_dict()
    for key, value in expected.items():
        assert torch.equal(state[key], value), key
    # Output norms the classifier does not have keep their initialisation.
    for name in ('norm2', 'norm4'):
        norm = getattr(model, name)
        assert torch.equal(norm.weight, torch.ones_like(norm.weight))
        assert torch.equal(norm.bias, torch.zeros_like(norm.bias))


def test_init_cfg_pretrained(tmp_path):
    path = str(tmp_path / 'riformer-s12.pth')
    expected = mmpretrain_checkpoint(path, 's12')
    model = RIFormer(
        arch='s12',
        frozen_stages=1,
        init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.'))
    model.init_weights()
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in expected.items())
    assert not model.patch_embed.proj.weight.requires_grad


def test_init_cfg_deploy_checkpoint(tmp_path):
    path = str(tmp_path / 'riformer-s12-deploy.pth')
    expected = mmpretrain_checkpoint(path, 's12', deploy=True)
    model = RIFormer(
        arch='s12',
        deploy=True,
        init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.'))
    missing, unexpected = load_pretrained_checkpoint(
        model, path, prefix='backbone.', convert=model.convert_checkpoint)
    assert missing == [] and unexpected == []
    model.init_weights()
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in expected.items())


def test_checkpoint_of_the_other_form_is_refused(tmp_path):
    train_form = str(tmp_path / 'train.pth')
    deploy_form = str(tmp_path / 'deploy.pth')
    mmpretrain_checkpoint(train_form, TINY)
    mmpretrain_checkpoint(deploy_form, TINY, deploy=True)
    with pytest.raises(ValueError, match='switch_to_deploy'):
        RIFormer(
            arch=TINY,
            deploy=True,
            init_cfg=dict(type='Pretrained',
                          checkpoint=train_form)).init_weights()
    with pytest.raises(ValueError, match='deploy=True'):
        RIFormer(
            arch=TINY,
            init_cfg=dict(type='Pretrained',
                          checkpoint=deploy_form)).init_weights()


def test_wrong_arch_checkpoint_raises(tmp_path):
    path = str(tmp_path / 'tiny.pth')
    mmpretrain_checkpoint(path, TINY)
    with pytest.raises(ValueError, match='shape mismatch'):
        RIFormer(
            arch=dict(TINY, embed_dims=[8, 16, 24, 40]),
            init_cfg=dict(
                type='Pretrained', checkpoint=path,
                prefix='backbone.')).init_weights()


def test_checkpoint_of_another_depth_is_refused(tmp_path):
    """s24 has s12's widths and twice its blocks: loading it into s12 once
    left half the checkpoint unused with only a warning."""
    path = str(tmp_path / 'riformer-s24.pth')
    mmpretrain_checkpoint(path, 's24')
    init_cfg = dict(type='Pretrained', checkpoint=path, prefix='backbone.')
    with pytest.raises(
            ValueError,
            match=r"riformer-s24.pth does not fit this "
            r"model \(wrong arch\? it looks like arch 's24'\); \d+ "
            r'unexpected key\(s\): network\.'):
        RIFormer(arch='s12', init_cfg=init_cfg).init_weights()
    # strict=False is the explicit way to load what fits
    model = RIFormer(arch='s12', init_cfg=dict(init_cfg, strict=False))
    model.init_weights()
    assert model._is_init


def test_checkpoint_missing_keys_is_refused(tmp_path):
    path = str(tmp_path / 'half.pth')
    mmpretrain_checkpoint(path, TINY)
    checkpoint = torch.load(path)
    state = checkpoint['state_dict']
    dropped = sorted(state)[::2]
    for key in dropped:
        del state[key]
    torch.save(checkpoint, path)
    with pytest.raises(
            ValueError,
            match=r'half.pth does not fit this model '
            r'\(wrong arch\? its keys match none of the published '
            r'archs.*\); '
            r'\d+ missing key\(s\): network'):
        RIFormer(
            arch=TINY,
            init_cfg=dict(
                type='Pretrained', checkpoint=path,
                prefix='backbone.')).init_weights()


def test_init_cfg_refuses_unsafe_and_broken_files(tmp_path):
    marker = tmp_path / 'pwned'
    evil = write_malicious_checkpoint(tmp_path / 'evil.pth', marker)
    with pytest.raises(UnsafeCheckpointError, match=r"'(io|builtins)\.open'"):
        RIFormer(
            arch=TINY, init_cfg=dict(type='Pretrained',
                                     checkpoint=str(evil))).init_weights()
    assert not marker.exists()
    text = tmp_path / 'notes.txt'
    text.write_text('not weights\n')
    with pytest.raises(
            CheckpointFileError,
            match='notes.txt is not a PyTorch checkpoint'):
        RIFormer(
            arch=TINY, init_cfg=dict(type='Pretrained',
                                     checkpoint=str(text))).init_weights()


@pytest.mark.parametrize('kwargs,match', [
    (dict(arch='s13'), r"unknown arch 's13'.*'m36', 'm48', 's12'"),
    (dict(arch=dict(layers=[2, 2, 6, 2])), 'missing'),
    (dict(arch=dict(TINY, layers=[1, 1, 1])), "'layers' needs 4 values"),
    (dict(arch=dict(TINY, embed_dims=[8, 16, 16, 32])), 'must change'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RIFormer(**kwargs)


@pytest.mark.parametrize('arch', list(PUBLISHED_PARAMS))
def test_coco_configs(arch):
    cfg = Config.fromfile(CONFIG_DIR / f'rtdetr_riformer_{arch}_coco.py')
    backbone = cfg.model.backbone
    assert backbone.type == 'RIFormer' and backbone.arch == arch
    with torch.device('meta'):
        model = MODELS.build(backbone)
    assert list(model.out_channels) == cfg.model.neck.in_channels
    assert backbone.init_cfg.prefix == 'backbone.'
    assert re.fullmatch(
        'https://download.openmmlab.com/mmclassification/v1/riformer/'
        rf'riformer-{arch}_32xb128_in1k_20230406-[0-9a-f]{{8}}\.pth',
        backbone.init_cfg.checkpoint)
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys.backbone.lr_mult == 0.1
