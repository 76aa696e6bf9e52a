"""Tests of the VanillaNet backbone (rtdetr_mm/models/backbones/vanillanet.py).

Large variants are built on the ``meta`` device (shapes and parameter
counts only); numerics use VanillaNet-5 at 64x64 and small custom archs.
Official checkpoints are written by the tests in the official key layout,
generated from the official module definition (not from our module).
"""
import math

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from torch import nn

from rtdetr_mm.models.backbones.vanillanet import (PyramidAdaptiveMaxPool,
                                                   VanillaNet)
from rtdetr_mm.models.utils import load_pretrained_checkpoint
from rtdetr_mm.testing import calibrated
from ..._utils import CONFIG_DIR

ALL_ARCHS = ('5', '6', '7', '8', '9', '10', '11', '12', '13', '13_x1_5',
             '13_x1_5_ada_pool')
# published parameter counts (millions) with the 1000-class classifier
DEPLOY_PARAMS_M = {
    '5': 15.5,
    '6': 32.5,
    '7': 32.8,
    '8': 37.1,
    '9': 41.4,
    '10': 45.7,
    '11': 50.0,
    '12': 54.3,
    '13': 58.6,
    '13_x1_5': 127.8,
    '13_x1_5_ada_pool': 127.8
}
TRAIN_PARAMS_M = {'5': 22.33, '13': 107.70}
# small archs: stride-1 blocks in stages 0 and 2 and 3
SMALL = dict(dims=[8, 8, 16, 32, 32, 48, 48], strides=[1, 2, 2, 1, 2, 1])
SMALL_ADA = dict(SMALL, ada_pool=True)


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def head_params(channels: int, deploy: bool, num_classes: int = 1000) -> int:
    """Parameters of the official classifier (not part of the backbone).

    Train form: ``cls1`` = pool, dropout, 1x1 conv (C -> K, bias), BN(K);
    leaky-ReLU; ``cls2`` = 1x1 conv (K -> K, bias). Deploy form: ``cls`` =
    pool, dropout, one 1x1 conv (C -> K, bias).
    """
    fused = channels * num_classes + num_classes
    if deploy:
        return fused
    return fused + 2 * num_classes + num_classes * num_classes + num_classes


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def official_state_dict(dims,
                        strides,
                        act_num=3,
                        deploy=False,
                        num_classes=10):
    """Random tensors under the official ``models/vanillanet.py`` names."""

    def bn(prefix, n):
        return {
            f'{prefix}.weight': torch.rand(n) + 0.5,
            f'{prefix}.bias': torch.randn(n) * 0.1,
            f'{prefix}.running_mean': torch.randn(n) * 0.1,
            f'{prefix}.running_var': torch.rand(n) + 0.5,
            f'{prefix}.num_batches_tracked': torch.tensor(7)
        }

    def conv(prefix, cin, cout, k=1):
        return {
            f'{prefix}.weight':
            torch.randn(cout, cin, k, k) / math.sqrt(cin * k * k),
            f'{prefix}.bias':
            torch.randn(cout) * 0.1
        }

    k = 2 * act_num + 1
    sd = {}
    if deploy:
        sd.update(conv('stem.0', 3, dims[0], 4))
        sd['stem.1.weight'] = torch.randn(dims[0], 1, k, k) / k
        sd['stem.1.bias'] = torch.randn(dims[0]) * 0.1
    else:
        sd.update(conv('stem1.0', 3, dims[0], 4))
        sd.update(bn('stem1.1', dims[0]))
        sd.update(conv('stem2.0', dims[0], dims[0]))
        sd.update(bn('stem2.1', dims[0]))
        sd['stem2.2.weight'] = torch.randn(dims[0], 1, k, k) / k
        sd.update(bn('stem2.2.bn', dims[0]))
    for i in range(len(strides)):
        cin, cout = dims[i], dims[i + 1]
        p = f'stages.{i}'
        if deploy:
            sd.update(conv(f'{p}.conv', cin, cout))
            sd[f'{p}.act.bias'] = torch.randn(cout) * 0.1
        else:
            sd.update(conv(f'{p}.conv1.0', cin, cin))
            sd.update(bn(f'{p}.conv1.1', cin))
            sd.update(conv(f'{p}.conv2.0', cin, cout))
            sd.update(bn(f'{p}.conv2.1', cout))
            sd.update(bn(f'{p}.act.bn', cout))
        sd[f'{p}.act.weight'] = torch.randn(cout, 1, k, k) / k
    if deploy:
        sd.update(conv('cls.2', dims[-1], num_classes))
    else:
        sd.update(conv('cls1.2', dims[-1], num_classes))
        sd.update(bn('cls1.3', num_classes))
        sd.update(conv('cls2.0', num_classes, num_classes))
    return sd


# ---------------------------------------------------------------- shapes
@pytest.mark.parametrize('arch', ALL_ARCHS)
def test_shapes_and_out_channels_every_variant(arch):
    with torch.device('meta'):
        model = VanillaNet(arch=arch, out_indices=(0, 1, 2, 3))
        width = VanillaNet.arch_settings[arch]['dims'][-1] // 8  # 512, 768
        assert model.out_channels == (width, 2 * width, 4 * width, 8 * width)
        for size in (64, 96):
            outs = model(torch.empty(1, 3, size, size))
            if arch.endswith('ada_pool'):
                # stride-3 stem, then pools to 4c, 2c, c
                stem = (size + 2 - 4) // 3 + 1
                coarsest = math.ceil(stem / 8)
                sides = [stem, 4 * coarsest, 2 * coarsest, coarsest]
            else:
                sides = [size // 4, size // 8, size // 16, size // 32]
            assert [tuple(o.shape) for o in outs] == [
                (1, c, s, s) for c, s in zip(model.out_channels, sides)
            ]


def test_default_out_indices_and_negative_indices():
    with torch.device('meta'):
        model = VanillaNet(arch='13')
        assert model.out_indices == (1, 2, 3)
        assert model.out_channels == (1024, 2048, 4096)
        assert VanillaNet(arch='13', out_indices=(-1, )).out_indices == (3, )


def test_vanillanet13_taps_match_official_detection():
    """Official detection taps blocks [0, 1, 8, 10] (layer 0 is the stem)."""
    with torch.device('meta'):
        model = VanillaNet(arch='13', out_indices=(0, 1, 2, 3))
    assert [j - 1 for j in model.tap_layers] == [0, 1, 8, 10]
    with torch.device('meta'):
        model5 = VanillaNet(arch='5', out_indices=(0, 1, 2, 3))
    assert model5.tap_layers == [0, 1, 2, 3]  # stage 0 is the stem
    assert model5.out_channels == (512, 1024, 2048, 4096)


def test_ada_pool_keeps_the_pyramid_2x_apart_for_detection_inputs():
    with torch.device('meta'):
        model = VanillaNet(arch='13_x1_5_ada_pool', out_indices=(0, 1, 2, 3))
        for height, width in ((640, 640), (640, 480), (224, 224), (96, 160)):
            outs = model(torch.empty(1, 3, height, width))
            sizes = [tuple(o.shape[-2:]) for o in outs]
            stem = ((height - 2) // 3 + 1, (width - 2) // 3 + 1)
            assert sizes[0] == stem  # official stride-3, padding-1 stem
            for fine, coarse in zip(sizes[1:], sizes[2:]):
                assert fine == (2 * coarse[0], 2 * coarse[1])
            assert sizes[3] == tuple(math.ceil(s / 8) for s in stem)
    with torch.device('meta'):
        outs = model(torch.empty(1, 3, 640, 640))
    assert [o.shape[-1] for o in outs] == [213, 108, 54, 27]
    # the last pool is the official one: AdaptiveMaxPool2d(10) on 19x19 maps
    x = torch.randn(2, 4, 19, 19)
    torch.testing.assert_close(
        PyramidAdaptiveMaxPool(0)(x),
        nn.AdaptiveMaxPool2d((10, 10))(x))
    assert PyramidAdaptiveMaxPool(2)(torch.randn(1, 1, 75, 75)).shape[-1] == 40


# ------------------------------------------------------- parameter counts
@pytest.mark.parametrize('arch', ALL_ARCHS)
def test_param_counts_match_published(arch):
    with torch.device('meta'):
        train = VanillaNet(arch=arch)
        deploy = VanillaNet(arch=arch, deploy=True)
    channels = VanillaNet.arch_settings[arch]['dims'][-1]
    deploy_m = (num_params(deploy) + head_params(channels, True)) / 1e6
    train_m = (num_params(train) + head_params(channels, False)) / 1e6
    assert round(deploy_m, 1) == DEPLOY_PARAMS_M[arch]
    if arch in TRAIN_PARAMS_M:
        assert round(train_m, 2) == TRAIN_PARAMS_M[arch]
    assert train_m > deploy_m


# ------------------------------------------------------------- deploying
@pytest.mark.parametrize('arch', ['5', SMALL, SMALL_ADA])
def test_deploy_equivalence(arch):
    torch.manual_seed(0)
    model = calibrated(VanillaNet(arch=arch, out_indices=(0, 1, 2, 3)))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
        model.switch_to_deploy()
        model.switch_to_deploy()  # idempotent
        actual = model(x)
    assert model.deploy and not any(
        isinstance(m, nn.BatchNorm2d) for m in model.modules())
    for a, e in zip(actual, expected):
        assert a.shape == e.shape
        assert relative_error(a, e) <= 1e-4


def test_switch_to_deploy_refuses_unless_act_learn_is_1():
    model = VanillaNet(arch=SMALL)
    model.act_learn = 0.5
    with pytest.raises(RuntimeError, match=r'act_learn is \[0\.5\]'):
        model.switch_to_deploy()
    assert not model.deploy and hasattr(model.stem, 'conv1')
    model.act_learn = 1
    model.stages[2].act_learn = 0.9  # one layer off is refused as well
    with pytest.raises(RuntimeError, match='act_learn'):
        model.switch_to_deploy()
    assert all(hasattr(layer, 'conv1') for layer in model.layers())


def test_act_learn_control():
    model = VanillaNet(arch=SMALL).eval()
    assert model.act_learn == 1
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        identity = model(x)[-1]
        model.act_learn = 0
        assert {layer.act_learn for layer in model.layers()} == {0.0}
        relu = model(x)[-1]
        model.act_learn = 1
        again = model(x)[-1]
    assert not torch.allclose(identity, relu)
    torch.testing.assert_close(identity, again)
    for bad in (-0.1, 1.5, 'x', None, True):
        with pytest.raises(ValueError, match='act_learn must be'):
            model.act_learn = bad
    deploy = VanillaNet(arch=SMALL, deploy=True)
    deploy.act_learn = 1  # allowed, nothing to do
    with pytest.raises(RuntimeError, match='deploy form'):
        deploy.act_learn = 0.5


# ----------------------------------------------------------- checkpoints
def _save(tmp_path, obj, name):
    path = tmp_path / name
    torch.save(obj, path)
    return str(path)


STEM_MAP = {
    'stem1.0.': 'stem.conv1.0.',
    'stem1.1.': 'stem.conv1.1.',
    'stem2.0.': 'stem.conv2.0.',
    'stem2.1.': 'stem.conv2.1.',
    'stem2.2.': 'stem.act.',
    'stem.0.': 'stem.conv.',
    'stem.1.': 'stem.act.'
}


def _ours(official_key):
    for old, new in STEM_MAP.items():
        if official_key.startswith(old):
            return new + official_key[len(old):]
    return official_key


@pytest.mark.parametrize('arch,wrapper', [('5', 'model_ema'), (SMALL, 'model'),
                                          (SMALL, None)])
@pytest.mark.parametrize('deploy', [False, True])
def test_official_checkpoint_loads(tmp_path, arch, wrapper, deploy):
    settings = (
        VanillaNet.arch_settings[arch] if isinstance(arch, str) else arch)
    official = official_state_dict(
        settings['dims'], settings['strides'], deploy=deploy)
    path = _save(
        tmp_path, official if wrapper is None else {
            wrapper: official,
            'epoch': 299
        }, 'official.pth')
    model = VanillaNet(
        arch=arch,
        deploy=deploy,
        init_cfg=dict(type='Pretrained', checkpoint=path))
    missing, unexpected = load_pretrained_checkpoint(
        model,
        path,
        convert=model.convert_checkpoint,
        ignore=model.ignored_checkpoint_keys)
    assert missing == [] and unexpected == []
    fresh = VanillaNet(
        arch=arch,
        deploy=deploy,
        init_cfg=dict(type='Pretrained', checkpoint=path))
    fresh.init_weights()
    ours = fresh.state_dict()
    for key, value in official.items():
        if key.startswith('cls'):
            continue
        torch.testing.assert_close(ours[_ours(key)], value, rtol=0, atol=0)


def test_detector_checkpoint_with_prefix(tmp_path):
    official = official_state_dict(SMALL['dims'], SMALL['strides'])
    detector = {f'backbone.{k}': v for k, v in official.items()}
    detector['neck.weight'] = torch.zeros(1)
    path = _save(tmp_path, {'state_dict': detector}, 'det.pth')
    model = VanillaNet(
        arch=SMALL,
        init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.'))
    model.init_weights()
    torch.testing.assert_close(model.stem.act.weight,
                               official['stem2.2.weight'])


def test_train_form_checkpoint_fused_into_deploy_model(tmp_path):
    official = official_state_dict(SMALL['dims'], SMALL['strides'])
    path = _save(tmp_path, {'model_ema': official}, 'train.pth')
    reference = VanillaNet(
        arch=SMALL,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=path))
    reference.init_weights()
    deploy = VanillaNet(
        arch=SMALL,
        deploy=True,
        out_indices=(0, 1, 2, 3),
        init_cfg=dict(type='Pretrained', checkpoint=path))
    missing, unexpected = load_pretrained_checkpoint(
        deploy,
        path,
        convert=deploy.convert_checkpoint,
        ignore=deploy.ignored_checkpoint_keys)
    assert missing == [] and unexpected == []
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, e in zip(deploy.eval()(x), reference.eval()(x)):
            assert relative_error(a, e) <= 1e-4


def test_deploy_checkpoint_into_train_model_is_refused(tmp_path):
    official = official_state_dict(
        SMALL['dims'], SMALL['strides'], deploy=True)
    path = _save(tmp_path, {'model': official}, 'deploy.pth')
    model = VanillaNet(
        arch=SMALL, init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(ValueError, match='deploy=True'):
        model.init_weights()


def test_wrong_arch_checkpoint_is_refused(tmp_path):
    official = official_state_dict([8, 16, 32, 64], [2, 2, 2])
    path = _save(tmp_path, official, 'other.pth')
    model = VanillaNet(
        arch=dict(dims=[8, 16, 32, 96], strides=[2, 2, 2]),
        init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(ValueError, match='shape mismatch'):
        model.init_weights()


def test_registry_build_and_default_init():
    model = MODELS.build(dict(type='VanillaNet', arch=SMALL))
    assert isinstance(model, VanillaNet)
    model.init_weights()
    std = model.stages[0].conv1[0].weight.std().item()
    assert 0.005 < std < 0.04  # truncated normal, std 0.02
    assert model.stages[0].conv1[0].bias.abs().max() == 0


def test_norm_cfg_syncbn_keeps_official_eps():
    model = VanillaNet(arch=SMALL, norm_cfg=dict(type='SyncBN'))
    norms = [m for m in model.modules() if isinstance(m, nn.SyncBatchNorm)]
    assert norms and all(m.eps == 1e-6 for m in norms)


@pytest.mark.parametrize('kwargs,error,match', [
    (dict(arch='14'), ValueError, 'valid archs'),
    (dict(arch='vanillanet_5'), ValueError, 'valid archs'),
    (dict(arch=5), TypeError, 'str or a dict'),
    (dict(arch=dict(dims=[8, 16])), ValueError, 'strides'),
    (dict(arch=dict(dims=[8, 16, 32], strides=[2, 2])), ValueError,
     'exactly three 2s'),
    (dict(arch=dict(dims=[8, 16, 32, 64], strides=[2, 2, 3])), ValueError,
     '1 or 2'),
    (dict(arch=dict(dims=[8, 16, 32], strides=[2, 2, 2])), ValueError,
     'len\\(dims\\)'),
    (dict(act_num=-1), ValueError, 'act_num'),
    (dict(norm_cfg=dict(type='LN')), ValueError, 'BatchNorm'),
])
def test_bad_arguments(kwargs, error, match):
    with torch.device('meta'):
        with pytest.raises(error, match=match):
            VanillaNet(**kwargs)


# --------------------------------------------------------------- configs
@pytest.mark.parametrize('arch', ALL_ARCHS[:-1])
def test_coco_configs(arch):
    cfg = Config.fromfile(CONFIG_DIR / f'rtdetr_vanillanet_{arch}_coco.py')
    backbone = cfg.model.backbone
    assert backbone.type == 'VanillaNet' and backbone.arch == arch
    assert backbone.act_num == (4 if arch == '13' else 3)
    with torch.device('meta'):
        model = MODELS.build(backbone)
    assert list(model.out_channels) == cfg.model.neck.in_channels
    release = ('vanillanet_13_act_num_4_kd_pretrain.pth'
               if arch == '13' else f'vanillanet_{arch}.pth')
    assert backbone.init_cfg == dict(
        type='Pretrained',
        checkpoint='https://github.com/huawei-noah/VanillaNet/releases/'
        f'download/ckpt/{release}')
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys.backbone.lr_mult == 0.1
    hooks = {hook.type: hook for hook in cfg.custom_hooks}
    assert hooks['VanillaNetDeepTrainingHook'].decay_epochs == 24
    assert hooks['EMAHook'].momentum == 0.0001


def test_toy_config_trains_from_scratch_with_the_schedule():
    cfg = Config.fromfile(CONFIG_DIR / 'toy' / 'rtdetr_vanillanet_5_toy.py')
    backbone = cfg.model.backbone
    assert backbone.type == 'VanillaNet' and backbone.arch == '5'
    assert backbone.init_cfg is None  # so the deep-training hook is active
    hooks = {hook.type: hook for hook in cfg.custom_hooks}
    assert set(hooks) == {'EMAHook', 'VanillaNetDeepTrainingHook'}
    decay = hooks['VanillaNetDeepTrainingHook'].decay_epochs
    assert 0 < decay < cfg.train_cfg.max_epochs
