"""Tests of the FasterNet backbone (rtdetr_mm/models/backbones/fasternet.py).

timm's classifier is the reference: same weights must give the same stage
features. Official-layout files are written here from timm's state dict with
the renaming the official repository's ``models/fasternet.py`` implies
(``stages`` alternates BasicStage / PatchMerging, head ``avgpool_pre_head`` +
``head``, detection norms ``norm{0,2,4,6}``).
"""
import copy
import re

import pytest
import timm
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from timm.models.fasternet import FasterNet as TimmFasterNet
from torch import nn

from rtdetr_mm.models.backbones.fasternet import FasterNet
from rtdetr_mm.models.utils import load_pretrained_checkpoint
from rtdetr_mm.testing import calibrated, trained_like
from ..._utils import CONFIG_DIR

# Published parameter counts (M) of the classifiers (official README).
PUBLISHED_PARAMS = dict(t0=3.9, t1=7.6, t2=15.0, s=31.1, m=53.5, l=93.4)
EMBED_DIMS = dict(t0=40, t1=64, t2=96, s=128, m=144, l=192)
ALL_ARCHS = tuple(PUBLISHED_PARAMS)


def timm_classifier(arch, **kwargs):
    return timm.create_model(f'fasternet_{arch}', pretrained=False, **kwargs)


def timm_to_official(state_dict, detection_norms=None):
    """timm layout -> the official release layout (raw state dict)."""
    official = {}
    for key, value in state_dict.items():
        match = re.match(r'stages\.(\d)\.downsample\.(.+)', key)
        if match:
            key = f'stages.{2 * int(match[1]) - 1}.{match[2]}'
        match = re.match(r'stages\.(\d)\.blocks\.(.+)', key)
        if match:
            key = f'stages.{2 * int(match[1])}.blocks.{match[2]}'
        key = key.replace('conv_head.', 'avgpool_pre_head.1.')
        key = key.replace('classifier.', 'head.')
        official[key] = value
    for i, norm in (detection_norms or {}).items():
        for name, value in norm.state_dict().items():
            official[f'norm{2 * i}.{name}'] = value
    return official


def load(model, path, prefix=None):
    """What ``init_weights`` does, returning (missing, unexpected)."""
    return load_pretrained_checkpoint(
        model,
        str(path),
        prefix=prefix,
        convert=model.convert_checkpoint,
        ignore=model.ignored_checkpoint_keys)


@pytest.mark.parametrize('arch', ALL_ARCHS)
def test_output_shapes_on_meta(arch):
    """Every variant at two input sizes (meta device: shapes only)."""
    dims = EMBED_DIMS[arch]
    with torch.device('meta'):
        model = FasterNet(arch, out_indices=(0, 1, 2, 3))
        assert model.out_channels == (dims, 2 * dims, 4 * dims, 8 * dims)
        for size in (64, 96):
            outs = model(torch.empty(2, 3, size, size))
            assert [tuple(out.shape) for out in outs] == [
                (2, dims * 2**i, size // 2**(i + 2), size // 2**(i + 2))
                for i in range(4)
            ]
        assert FasterNet(arch).out_channels == (2 * dims, 4 * dims, 8 * dims)


@pytest.mark.parametrize('arch', ALL_ARCHS)
def test_parameter_counts(arch):
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    with torch.device('meta'):
        classifier = timm_classifier(arch)
        plain = FasterNet(arch, with_out_norm=False)
        normed = FasterNet(arch, out_indices=(0, 1, 2, 3))
    # The published figures are within 0.1M of timm's classifier.
    assert abs(count(classifier) / 1e6 - PUBLISHED_PARAMS[arch]) < 0.1
    head = count(classifier.conv_head) + count(classifier.classifier)
    assert count(plain) == count(classifier) - head
    # One BatchNorm (weight + bias) per returned map.
    assert count(normed) - count(plain) == 2 * sum(normed.out_channels)


# A small ReLU arch (t2/s/m/l use ReLU, t0/t1 GELU), to test both cheaply.
TINY_RELU = dict(
    embed_dims=16,
    depths=(1, 1, 2, 1),
    act_cfg=dict(type='ReLU', inplace=True))
REFERENCE_ARCHS = pytest.mark.parametrize(
    'arch', ['t0', TINY_RELU], ids=['t0-gelu', 'tiny-relu'])


@pytest.fixture(scope='module')
def references():
    """timm classifiers with random weights and BN statistics, by arch id."""
    torch.manual_seed(0)
    return {
        't0': calibrated(timm_classifier('t0')),
        'tiny-relu':
        calibrated(TimmFasterNet(embed_dim=16, depths=(1, 1, 2, 1))),
    }


def reference_of(arch, references):
    return references['t0' if arch == 't0' else 'tiny-relu']


@REFERENCE_ARCHS
def test_features_equal_timm(arch, references, tmp_path):
    """timm's own layout, loaded via init_cfg, gives timm's features."""
    reference = reference_of(arch, references)
    torch.save({'state_dict': reference.state_dict()}, tmp_path / 'timm.pth')
    model = FasterNet(
        arch,
        out_indices=(0, 1, 2, 3),
        with_out_norm=False,
        init_cfg=dict(
            type='Pretrained', checkpoint=str(tmp_path / 'timm.pth')))
    model.init_weights()
    model.eval()
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        expected = reference.forward_intermediates(x, intermediates_only=True)
        outs = model(x)
    assert len(outs) == len(expected) == 4
    for out, ref in zip(outs, expected):
        torch.testing.assert_close(out, ref)


def test_timm_layout_loads_without_missing_keys(references, tmp_path):
    reference = references['t0']
    torch.save(reference.state_dict(), tmp_path / 'timm.pth')
    model = FasterNet('t0', with_out_norm=False)
    missing, unexpected = load(model, tmp_path / 'timm.pth')
    assert missing == [] and unexpected == []  # classifier dropped silently
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, reference.state_dict()[key])


def test_official_classification_layout(references, tmp_path):
    reference = references['t0']
    official = timm_to_official(reference.state_dict())
    assert 'stages.5.reduction.weight' in official
    assert 'stages.6.blocks.1.mlp.3.weight' in official
    assert 'avgpool_pre_head.1.weight' in official and 'head.bias' in official
    torch.save(official, tmp_path / 'fasternet_t0-epoch.281.pth')

    model = FasterNet('t0', out_indices=(0, 1, 2, 3), with_out_norm=False)
    missing, unexpected = load(model, tmp_path / 'fasternet_t0-epoch.281.pth')
    assert missing == [] and unexpected == []
    model.eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = reference.forward_intermediates(x, intermediates_only=True)
        for out, ref in zip(model(x), expected):
            torch.testing.assert_close(out, ref)

    # With output norms (the default): those layers are new to detection,
    # expected to be absent, and keep their initialisation (identity BN).
    model = FasterNet('t0')
    missing, unexpected = load(model, tmp_path / 'fasternet_t0-epoch.281.pth')
    assert missing == [] and unexpected == []
    for i in (1, 2, 3):
        norm = getattr(model, f'norm{i}')
        assert torch.equal(norm.weight, torch.ones_like(norm.weight))
        assert torch.equal(norm.running_var, torch.ones_like(norm.running_var))


def test_official_detection_layout_via_init_cfg(references, tmp_path):
    """An mmdet checkpoint of the official detection model (norm0/2/4/6)."""
    reference = references['t0']
    norms = {i: nn.BatchNorm2d(40 * 2**i) for i in range(4)}
    for norm in norms.values():
        trained_like(norm,
                     lambda: norm(torch.randn(4, norm.num_features, 2, 2)))
    detector = {
        f'backbone.{k}': v
        for k, v in timm_to_official(
            reference.state_dict(), detection_norms=norms).items()
        if not k.startswith(('head.', 'avgpool_pre_head.'))
    }
    detector['neck.lateral_convs.0.conv.weight'] = torch.rand(8, 80, 1, 1)
    torch.save({'meta': {}, 'state_dict': detector}, tmp_path / 'det.pth')

    model = FasterNet('t0')  # out_indices (1, 2, 3): norm2, norm4, norm6
    missing, unexpected = load(model, tmp_path / 'det.pth', prefix='backbone')
    # norm0 (an output this model does not return) is left out, logged
    assert missing == [] and unexpected == []
    assert 'norm0' not in dict(model.named_children())

    model = MODELS.build(
        dict(
            type='FasterNet',
            arch='t0',
            init_cfg=dict(
                type='Pretrained',
                checkpoint=str(tmp_path / 'det.pth'),
                prefix='backbone.')))
    model.init_weights()
    model.eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        feats = reference.forward_intermediates(x, intermediates_only=True)
        for i, out in zip((1, 2, 3), model(x)):
            torch.testing.assert_close(out, norms[i](feats[i]))


def test_wrong_arch_checkpoint_raises(references, tmp_path):
    torch.save(references['tiny-relu'].state_dict(), tmp_path / 'tiny.pth')
    model = FasterNet(
        't0',
        init_cfg=dict(
            type='Pretrained', checkpoint=str(tmp_path / 'tiny.pth')))
    with pytest.raises(ValueError, match='wrong arch'):
        model.init_weights()


@REFERENCE_ARCHS
def test_switch_to_deploy(arch):
    torch.manual_seed(0)
    model = calibrated(FasterNet(arch, out_indices=(0, 1, 2, 3)))
    deployed = copy.deepcopy(model)
    deployed.switch_to_deploy()
    x = torch.rand(1, 3, 64, 64)
    x_copy = x.clone()
    with torch.no_grad():
        expected = model(x)
        outs = deployed(x)
    torch.testing.assert_close(x, x_copy)  # slicing clones, never in place
    for out, ref in zip(outs, expected):
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)

    # Only the output norms remain as BatchNorms; PConv uses slicing.
    norms = [
        name for name, m in deployed.named_modules()
        if isinstance(m, nn.BatchNorm2d)
    ]
    assert norms == ['norm0', 'norm1', 'norm2', 'norm3']
    pconv = deployed.stages[2].blocks[0].spatial_mixing
    assert pconv.forward.__func__ is type(pconv).forward_slicing


def test_deploy_shortcut_intact_in_every_block():
    """The residual input of each block must survive the slicing PConv."""
    model = calibrated(FasterNet('t0'))
    model.switch_to_deploy()
    block = model.stages[0].blocks[0]
    x = torch.rand(1, 40, 8, 8)
    x_copy = x.clone()
    with torch.no_grad():
        out = block(x)
        mixed = block.spatial_mixing(x_copy)
    torch.testing.assert_close(x, x_copy)
    torch.testing.assert_close(out, x_copy + block.mlp(mixed))


def test_custom_arch_dict():
    model = FasterNet(
        dict(embed_dims=16, depths=(1, 1, 2, 1), act_cfg=dict(type='ReLU')))
    assert model.out_channels == (32, 64, 128)
    assert [out.shape[1] for out in model(torch.rand(1, 3, 64, 64))] == \
        [32, 64, 128]


@pytest.mark.parametrize('kwargs, message', [
    (dict(arch='xl'), r"unknown arch 'xl'; valid archs are \['l', 'm', "),
    (dict(arch=dict(embed_dims=16)), 'missing'),
    (dict(
        arch=dict(embed_dims=16, depths=(1, 2, 2), act_cfg=dict(type='ReLU'))),
     '4 positive ints'),
    (dict(drop_path_rate=1.5), r'drop_path_rate must be in \[0, 1\)'),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FasterNet(**kwargs)


@pytest.mark.parametrize('arch', ALL_ARCHS)
def test_coco_configs(arch):
    cfg = Config.fromfile(CONFIG_DIR / f'rtdetr_fasternet_{arch}_coco.py')
    backbone = cfg.model.backbone
    assert backbone.type == 'FasterNet' and backbone.arch == arch
    with torch.device('meta'):
        model = MODELS.build(backbone)
    assert list(model.out_channels) == cfg.model.neck.in_channels
    assert re.fullmatch(
        'https://github.com/JierunChen/FasterNet/releases/download/v1.0/'
        rf'fasternet_{arch}-epoch\.\d+-val_acc1\.\d+\.\d+\.pth',
        backbone.init_cfg.checkpoint)
    official_drop_path = dict(s=0.15, m=0.2, l=0.3)
    if arch in official_drop_path:
        assert backbone.drop_path_rate == official_drop_path[arch]
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys.backbone.lr_mult == 0.1
