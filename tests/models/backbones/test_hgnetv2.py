"""Tests of the HGNetv2 backbone (rtdetr_mm/models/backbones/hgnetv2.py).

timm's ``hgnetv2_b*`` classifiers are the reference: their stem and stage
keys are exactly those of D-FINE's ``PPHGNetV2_B*_stage1.pth`` files (checked
against the official code outside this repository), so an official-layout
file is timm's state dict without ``head.*``. The generic contract is in
test_backbone_contract.py.
"""
import pytest
import timm
import torch
from mmdet.registry import MODELS
from timm.models.hgnet import LearnableAffineBlock, model_cfgs
from torch.nn.modules.batchnorm import _BatchNorm

from rtdetr_mm.models.backbones.hgnetv2 import HGNetv2
from rtdetr_mm.models.layers import BATCH_NORMS
from rtdetr_mm.testing import trained_like

ALL_ARCHS = tuple(HGNetv2.arch_settings)
# A small arch with every kind of stage (plain and light HG blocks, two
# blocks for the residual path, two layers per block for the LAB folds).
TINY = dict(
    stem_channels=(8, 8),
    stages=(
        (8, 8, 16, 1, False, False, 3, 2),
        (16, 8, 16, 2, True, False, 3, 1),
        (16, 8, 24, 1, True, True, 5, 2),
        (24, 8, 32, 1, True, True, 5, 2),
    ),
    use_lab=True)


@pytest.fixture(autouse=True, scope='module')
def single_thread():
    """Small inputs gain nothing from threads; spare the shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def count(module):
    return sum(p.numel() for p in module.parameters())


def images(batch=2, height=64, width=96, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, height, width, generator=gen)


def spread(model, seed=0):
    """Trained-like weights, LearnableAffineBlocks away from identity."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, LearnableAffineBlock):
                module.scale.copy_(1 + 0.3 * torch.randn(1, generator=gen))
                module.bias.copy_(0.2 * torch.randn(1, generator=gen))
    x = images(seed=seed + 1)
    return trained_like(model, lambda: model(x), seed=seed)


def pretrained(path, **kwargs):
    model = HGNetv2(
        init_cfg=dict(type='Pretrained', checkpoint=str(path)), **kwargs)
    model.init_weights()
    return model.eval()


def without_head(state_dict):
    return {k: v for k, v in state_dict.items() if not k.startswith('head.')}


@pytest.mark.parametrize('arch', ALL_ARCHS)
def test_arch_matches_timm_and_counts_its_parameters(arch):
    """Table, use_lab default, keys and parameter count are timm's (minus
    the classifier head), for every variant (meta device: no memory)."""
    settings = HGNetv2.arch_settings[arch]
    cfg = model_cfgs[f'hgnetv2_{arch}']
    assert list(settings['stem_channels']) == cfg['stem_chs']
    assert [list(row) for row in settings['stages']
            ] == [cfg[f'stage{i}'] for i in range(1, 5)]
    with torch.device('meta'):
        reference = timm.create_model(f'hgnetv2_{arch}', pretrained=False)
        model = HGNetv2(arch, out_indices=(0, 1, 2, 3))
        default = HGNetv2(arch)
    assert model.use_lab is reference.use_lab is settings['use_lab']
    assert list(model.state_dict()) == list(
        without_head(reference.state_dict()))
    assert count(model) == count(reference) - count(reference.head)
    stage_channels = tuple(row[2] for row in settings['stages'])
    assert model.out_channels == stage_channels
    assert default.out_channels == stage_channels[1:]


@pytest.mark.parametrize('arch', ['b0', 'b4'])
def test_timm_and_official_layouts_load_and_give_timms_features(
        arch, tmp_path):
    """A timm checkpoint (head ignored), D-FINE's stage1 layout (no head)
    and a D-FINE detector checkpoint (``backbone.`` prefix, FrozenBatchNorm
    without ``num_batches_tracked``) load strictly; the features are timm's.
    """
    torch.manual_seed(0)
    reference = spread(timm.create_model(f'hgnetv2_{arch}', pretrained=False))
    state = reference.state_dict()
    official = without_head(state)
    detector = {
        f'backbone.{k}': v
        for k, v in official.items() if not k.endswith('num_batches_tracked')
    }
    detector['decoder.dummy'] = torch.zeros(1)
    torch.save(state, tmp_path / 'timm.pth')
    if arch == 'b0':
        torch.save(official, tmp_path / 'stage1.pth')
        torch.save(dict(model=detector), tmp_path / 'dfine.pth')

    x = images(batch=1)
    with torch.no_grad():
        expected = reference.forward_intermediates(x, intermediates_only=True)
    # b4 (large): timm's layout only; the official ones have the same keys
    names = ('timm.pth', ) if arch == 'b4' else ('timm.pth', 'stage1.pth',
                                                 'dfine.pth')
    for name in names:
        model = HGNetv2(
            arch,
            out_indices=(0, 1, 2, 3),
            init_cfg=dict(
                type='Pretrained',
                checkpoint=str(tmp_path / name),
                prefix='backbone' if name == 'dfine.pth' else None))
        model.init_weights()
        for key, value in official.items():
            if not key.endswith('num_batches_tracked'):
                assert torch.equal(model.state_dict()[key], value), key
        with torch.no_grad():
            outs = model.eval()(x)
        assert len(outs) == len(expected) == 4
        for out, ref in zip(outs, expected):
            assert ref.std() > 1e-2
            torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize('use_lab', [True, False])
def test_use_lab_mismatch_names_the_keys(use_lab, tmp_path):
    """A checkpoint of the other use_lab setting is refused by name."""
    source = HGNetv2(arch=TINY, use_lab=not use_lab)
    torch.save(source.state_dict(), tmp_path / 'other.pth')
    problem = 'missing' if use_lab else 'unexpected'
    with pytest.raises(
            ValueError,
            match=rf'{problem} key\(s\): stages\.0\.blocks\.0\.aggregation'
            r'\.0\.lab\.bias'):
        pretrained(tmp_path / 'other.pth', arch=TINY, use_lab=use_lab)


def test_switch_to_deploy_folds_norms_and_exact_labs():
    """Every BatchNorm folds; LABs fold where exact (stem3, the squeeze
    convs, light-block layers); outputs stay; deploy=True reloads."""
    torch.manual_seed(0)
    model = spread(HGNetv2('b0', out_indices=(0, 1, 2, 3)))
    labs = {
        n
        for n, m in model.named_modules()
        if isinstance(m, LearnableAffineBlock)
    }
    x = images(batch=1, seed=2)
    with torch.no_grad():
        expected = model(x)
        model.switch_to_deploy()
        outs = model(x)
    for out, ref in zip(outs, expected):
        assert ref.std() > 1e-2
        torch.testing.assert_close(
            out, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
    assert not any(isinstance(m, _BatchNorm) for m in model.modules())
    kept = {
        n
        for n, m in model.named_modules()
        if isinstance(m, LearnableAffineBlock)
    }
    folded = labs - kept
    # b0: 5 HG blocks (1, 1, 2, 1 per stage) of 3 layers; stages 2, 3 light
    expected_folds = {'stem.stem3.lab'}
    for stage, block in ((0, 0), (1, 0), (2, 0), (2, 1), (3, 0)):
        prefix = f'stages.{stage}.blocks.{block}'
        expected_folds.add(f'{prefix}.aggregation.0.lab')
        if stage < 2:  # plain block: the last layer only
            expected_folds.add(f'{prefix}.layers.2.lab')
        else:  # light block: every layer
            expected_folds.update(f'{prefix}.layers.{i}.conv2.lab'
                                  for i in range(3))
    assert folded == expected_folds
    # before padding/pooling, a padded conv, a residual sum or an output
    assert len(kept) == 13

    rebuilt = HGNetv2('b0', out_indices=(0, 1, 2, 3), deploy=True)
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        for out, ref in zip(rebuilt.eval()(x), outs):
            torch.testing.assert_close(out, ref, rtol=0, atol=0)


def test_frozen_stages_0_freezes_only_the_stem():
    """D-FINE's freeze_at=0 with freeze_stem_only (its default)."""
    model = HGNetv2(arch=TINY, frozen_stages=0).train()
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {
        n
        for n, _ in model.named_parameters() if n.startswith('stem.')
    }
    assert not any(m.training for m in model.stem.modules())
    assert all(m.training for m in model.stages.modules())


@pytest.mark.parametrize('norm', [
    dict(norm_cfg=dict(type='FrozenBatchNorm2d')),
    dict(norm_cfg=dict(type='BN', requires_grad=False), norm_eval=True)
])
def test_dfine_l_x_config_freezes_every_norm(norm):
    """D-FINE L/X (stem frozen, FrozenBatchNorm everywhere): no trainable
    norm parameter, running statistics used and kept in training; FrozenBN
    (the official arithmetic) and a frozen eval-mode BN train the same."""
    model = MODELS.build(
        dict(
            type='HGNetv2',
            arch={
                **TINY, 'use_lab': False
            },
            frozen_stages=0,
            **norm))
    model = spread(model).train()
    norms = [m for m in model.modules() if isinstance(m, BATCH_NORMS)]
    assert norms and not any(
        m.training for m in norms if isinstance(m, _BatchNorm))
    assert not any(p.requires_grad for m in norms for p in m.parameters())
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {
        n
        for n, _ in model.named_parameters()
        if n.startswith('stages.') and n.endswith('conv.weight')
    }
    statistics = [m.running_mean.clone() for m in norms]
    x = images()
    outs = model(x)
    sum(o.square().mean() for o in outs).backward()
    assert all(
        torch.equal(m.running_mean, s) for m, s in zip(norms, statistics))
    with torch.no_grad():
        for out, ref in zip(outs, model.eval()(x)):
            torch.testing.assert_close(out, ref, rtol=0, atol=0)


def test_frozen_bn_loads_bn_weights_gives_their_outputs_and_folds():
    bn = spread(MODELS.build(dict(type='HGNetv2', arch=TINY))).eval()
    frozen = MODELS.build(
        dict(
            type='HGNetv2', arch=TINY,
            norm_cfg=dict(type='FrozenBatchNorm2d')))
    # BN files carry num_batches_tracked, which FrozenBN drops
    frozen.load_state_dict(bn.state_dict())
    x = images()
    with torch.no_grad():
        for out, ref in zip(frozen.eval()(x), bn(x)):
            torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
        expected = frozen(x)
        frozen.switch_to_deploy()
        assert not any(isinstance(m, BATCH_NORMS) for m in frozen.modules())
        for out, ref in zip(frozen(x), expected):
            torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    'kwargs,match',
    [
        (dict(arch='B4'), r"unknown arch 'B4'.*'b0'.*'b6'"),  # D-FINE's name
        (dict(arch={
            **TINY, 'stages': TINY['stages'][:3]
        }), 'arch stages must be 4 rows'),
        (dict(
            arch={
                **TINY, 'stages': ((8, 8, 16, 1, True, False, 3, 2), ) +
                TINY['stages'][1:]
            }), r'down-sample as \(False, True, True, True\)'),
        (dict(arch={
            **TINY, 'stem_channels': (8, 12)
        }), 'stage 0 has in_channels=8, but the stem gives 12'),
        (dict(
            arch={
                **TINY, 'stages':
                TINY['stages'][:3] + ((24, 8, 32, 1, True, True, 5, 0), )
            }), 'stage 3 .* must be positive ints'),
        (dict(arch=TINY, use_lab=1), 'use_lab must be None'),
        (dict(arch=TINY, norm_cfg=dict(type='LN')), 'only BatchNorm types'),
    ])
def test_bad_arguments_say_what_is_allowed(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HGNetv2(**kwargs)


def test_use_lab_overrides_the_arch():
    """use_lab adds two scalars per activated conv, nothing else; b0 with
    D-FINE N's out_indices (its return_idx [2, 3])."""
    with torch.device('meta'):
        plain = HGNetv2('b0', use_lab=False, out_indices=(2, 3))
        lab = HGNetv2('b0')
        b4_lab = HGNetv2('b4', use_lab=True)
    assert plain.out_channels == (512, 1024)
    labs = [m for m in lab.modules() if isinstance(m, LearnableAffineBlock)]
    assert not any(
        isinstance(m, LearnableAffineBlock) for m in plain.modules())
    assert count(lab) - count(plain) == 2 * len(labs) > 0
    assert b4_lab.use_lab and isinstance(b4_lab.stem.stem3.lab,
                                         LearnableAffineBlock)
