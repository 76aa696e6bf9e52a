"""The backbone contract (docs/design.md), checked for every family.

Each family is built small (``FAMILIES``); a new backbone adds one entry and
inherits every test here. The family files keep what is specific to them
(published variants, official checkpoint layouts, reference parity).
"""
import copy
import re

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from rtdetr_mm.testing import calibrated, structured_images
from rtdetr_mm.utils import UnsafeCheckpointError
from ..._utils import write_malicious_checkpoint

FAMILIES = {
    'PResNetV1d':
    dict(arch=18, base_channels=8, stem_channels=8),
    'RIFormer':
    dict(
        arch=dict(
            layers=[1, 1, 2, 1],
            embed_dims=[8, 16, 24, 32],
            mlp_ratios=[2, 2, 2, 2],
            layer_scale_init_value=1e-5)),
    'MobileNetV4':
    dict(arch='conv_small'),
    'VanillaNet':
    dict(
        arch=dict(dims=[8, 8, 16, 32, 32, 48, 48], strides=[1, 2, 2, 1, 2, 1
                                                            ])),
    'FasterNet':
    dict(
        arch=dict(
            embed_dims=16, depths=(1, 1, 2, 1), act_cfg=dict(type='ReLU'))),
    'RevCol':
    dict(
        arch=dict(
            channels=[16, 32, 48, 64],
            layers=[1, 1, 2, 1],
            num_columns=3,
            drop_path_rate=0.)),
    # use_lab=False: a LearnableAffineBlock bias read only by 1x1 convs
    # followed by a training-mode BatchNorm gets no gradient (in D-FINE too);
    # test_hgnetv2.py covers the LAB archs.
    'HGNetv2':
    dict(
        arch=dict(
            stem_channels=(8, 8),
            stages=(
                (8, 8, 16, 1, False, False, 3, 2),
                (16, 8, 16, 2, True, False, 3, 1),
                (16, 8, 24, 1, True, True, 5, 2),
                (24, 8, 32, 1, True, True, 5, 2),
            ),
            use_lab=False)),
}
# Families whose default norm is not a BatchNorm get one for norm_eval;
# RevCol has LayerNorms only (norm_eval is accepted and has no effect).
WITH_BATCHNORM = dict(RIFormer=dict(norm_cfg=dict(type='BN')))
WITHOUT_BATCHNORM = {'RevCol'}
# RevCol's level i also reads level i + 1 of the earlier columns, so an
# output's gradient reaches later stages than its own.
MIXES_LEVELS = {'RevCol'}
# Parameters a family never trains: RevCol's first column starts from zero,
# so its alphas have no effect (kept for the official checkpoint layout).
NEVER_TRAINED = dict(RevCol=r'subnet0\.alpha\d')
family = pytest.mark.parametrize('name', list(FAMILIES))
SIZE = 64


def build(name: str, **kwargs) -> nn.Module:
    return MODELS.build(dict(type=name, **{**FAMILIES[name], **kwargs}))


def images(seed: int = 0, batch: int = 2) -> torch.Tensor:
    return structured_images(batch, SIZE, seed)


def trainable(model: nn.Module) -> dict:
    """Parameters by name, less those the family never trains."""
    never = re.compile(NEVER_TRAINED.get(type(model).__name__, '$^'))
    return {
        n: p
        for n, p in model.named_parameters() if not never.fullmatch(n)
    }


def frozen_names(model: nn.Module) -> set:
    return {n for n, p in trainable(model).items() if not p.requires_grad}


def stage_parameter_names(model: nn.Module, stages) -> set:
    """Names of the parameters in ``stages`` (modules and parameters)."""
    ids = set()
    for stage in stages:
        for part in stage if isinstance(stage, (list, tuple)) else [stage]:
            params = [part] if isinstance(part, nn.Parameter) else \
                part.parameters()
            ids.update(id(p) for p in params)
    return {n for n, p in trainable(model).items() if id(p) in ids}


@family
def test_registered_with_the_contract_attributes(name):
    model = build(name)
    assert isinstance(model, BaseModule)
    assert isinstance(type(model).arch_settings, dict) and \
        type(model).arch_settings
    assert model.out_indices == (1, 2, 3)  # the contract's default
    assert callable(model.switch_to_deploy)


@family
def test_unknown_arch_names_the_valid_ones(name):
    valid = str(next(iter(MODELS.get(name).arch_settings)))
    with pytest.raises(ValueError, match=f'unknown arch .*{valid}'):
        build(name, arch='no-such-arch')


@family
def test_out_indices_give_the_pyramid(name):
    model = build(name, out_indices=(0, 1, 2, 3)).eval()
    assert len(model.out_channels) == 4
    with torch.no_grad():
        outs = model(images(batch=1))
    assert isinstance(outs, tuple)
    assert [tuple(o.shape)
            for o in outs] == [(1, c, SIZE // 2**(i + 2), SIZE // 2**(i + 2))
                               for i, c in enumerate(model.out_channels)]
    picked = build(name, out_indices=(-1, 1)).eval()
    assert picked.out_indices == (3, 1)
    assert tuple(picked.out_channels) == (model.out_channels[3],
                                          model.out_channels[1])
    with torch.no_grad():
        assert [o.shape[1] for o in picked(images(batch=1))] == \
            list(picked.out_channels)


@family
@pytest.mark.parametrize('out_indices,match',
                         [((1, 4), r'out_indices .* has 4'),
                          ((True, ), 'out_indices'),
                          ((2, 2), 'repeats a stage'), ((), 'non-empty')])
def test_bad_out_indices(name, out_indices, match):
    with pytest.raises(ValueError, match=match):
        build(name, out_indices=out_indices)


@family
@pytest.mark.parametrize('frozen_stages', [5, -2, True, 1.0])
def test_bad_frozen_stages(name, frozen_stages):
    with pytest.raises(
            ValueError, match=f'frozen_stages={frozen_stages!r} is out of'):
        build(name, frozen_stages=frozen_stages)


@family
def test_frozen_stages_grow_to_the_whole_backbone(name):
    """-1 freezes nothing, each step freezes more, 4 freezes everything."""
    counts = [
        len(frozen_names(build(name, frozen_stages=k))) for k in range(-1, 5)
    ]
    assert counts[0] == 0
    assert all(a < b for a, b in zip(counts, counts[1:])), counts
    assert counts[-1] == len(frozen_names(build(name).requires_grad_(False)))


@family
@pytest.mark.parametrize('frozen_stages', [0, 2])
def test_frozen_stages_freeze_train_and_deploy(name, frozen_stages):
    model = build(name, out_indices=(0, 1, 2, 3), frozen_stages=frozen_stages)
    stages = model.stage_modules()
    expected = stage_parameter_names(model, stages[:frozen_stages + 1])
    assert frozen_names(model) == expected
    model.eval().train()  # train() re-applies the freezing
    for stage in stages[:frozen_stages + 1]:
        for part in stage if isinstance(stage, list) else [stage]:
            assert isinstance(part,
                              nn.Parameter) or not any(m.training
                                                       for m in part.modules())
    outs = model(images())
    sum(o.square().mean() for o in outs).backward()
    for param_name, param in model.named_parameters():
        if not param.requires_grad:
            assert param.grad is None, param_name
        else:
            assert param.grad is not None, f'no gradient: {param_name}'
            assert param.grad.abs().sum() > 0, f'zero gradient: {param_name}'
    if name not in MIXES_LEVELS and frozen_stages > 0:
        # the output of a frozen stage depends on no trainable parameter
        assert not model(images())[frozen_stages - 1].requires_grad
    model.switch_to_deploy()  # fused layers stay frozen
    assert frozen_names(model) == stage_parameter_names(
        model,
        model.stage_modules()[:frozen_stages + 1])


@family
@pytest.mark.parametrize('norm_eval', [True, False])
def test_norm_eval(name, norm_eval):
    model = build(name, norm_eval=norm_eval, **WITH_BATCHNORM.get(name, {}))
    model.train()
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert bool(norms) is (name not in WITHOUT_BATCHNORM)
    assert all(m.training is not norm_eval for m in norms)
    assert any(m.training for m in model.modules()
               if not isinstance(m, _BatchNorm))


@family
def test_switch_to_deploy_is_equivalent_idempotent_and_reloadable(name):
    model = calibrated(build(name, out_indices=(0, 1, 2, 3)))
    x = images(seed=1)
    with torch.no_grad():
        expected = model(x)
        model.switch_to_deploy()
        outs = model(x)
        for out, ref in zip(outs, expected):
            assert ref.std() > 1e-2  # well-spread features
            torch.testing.assert_close(
                out, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())
        state = copy.deepcopy(model.state_dict())
        model.switch_to_deploy()
        assert model.state_dict().keys() == state.keys()
        for out, ref in zip(model(x), outs):
            torch.testing.assert_close(out, ref, rtol=0, atol=0)
        rebuilt = build(name, out_indices=(0, 1, 2, 3), deploy=True)
        rebuilt.load_state_dict(state, strict=True)
        for out, ref in zip(rebuilt.eval()(x), outs):
            torch.testing.assert_close(out, ref, rtol=0, atol=0)


@family
def test_init_cfg_pretrained_loads_strictly_and_safely(name, tmp_path):
    source = calibrated(build(name))
    path = tmp_path / 'backbone.pth'
    torch.save(dict(state_dict=source.state_dict()), path)
    model = build(name, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key

    partial = dict(source.state_dict())
    dropped = next(k for k in partial if k.endswith('weight'))
    del partial[dropped]
    torch.save(partial, path)
    with pytest.raises(ValueError, match=dropped.replace('.', r'\.')):
        build(
            name, init_cfg=dict(type='Pretrained',
                                checkpoint=str(path))).init_weights()

    marker = tmp_path / 'pwned'
    write_malicious_checkpoint(path, marker)
    with pytest.raises(UnsafeCheckpointError):
        build(
            name, init_cfg=dict(type='Pretrained',
                                checkpoint=str(path))).init_weights()
    assert not marker.exists()
