"""Tests of the RevCol backbone and its reversible autograd function."""
import copy
import os
import socket
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmdet.registry import MODELS
from torch import nn

from rtdetr_mm.models.backbones.revcol import RevCol
from rtdetr_mm.models.utils import load_pretrained_checkpoint

# A small arch for the numerical tests: 3 columns, all block kinds.
SMALL_ARCH = dict(
    channels=[16, 32, 48, 64],
    layers=[1, 1, 2, 1],
    num_columns=3,
    drop_path_rate=0.2)
# CPU bf16 depthwise convs take a slow per-channel path: fewer channels.
NARROW_ARCH = dict(
    channels=[8, 8, 16, 16],
    layers=[1, 1, 1, 1],
    num_columns=2,
    drop_path_rate=0.2)
PUBLISHED = {  # backbone parameters (M), out_channels for (1, 2, 3)
    'tiny': (29.9, (128, 256, 512)),
    'small': (60.1, (128, 256, 512)),
    'base': (138.0, (144, 288, 576)),
    'large': (272.1, (256, 512, 1024)),
    'xlarge': (832.0, (448, 896, 1792)),
}


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights of trained-network scale (layer scales and alphas far
    from their init, so every branch matters for the gradients)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith('gamma'):
                low, high = 0.05, 0.3
            elif 'alpha' in name:
                low, high = 0.3, 1.0
            elif name.endswith('bias'):
                low, high = -0.1, 0.1
            elif param.ndim == 1:  # norm weights
                low, high = 0.8, 1.2
            else:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.02)
                continue
            param.copy_(
                torch.rand(param.shape, generator=gen) * (high - low) + low)
    return model


def train_step(model: nn.Module, x: torch.Tensor, seed: int = 1):
    """Forward + backward of a random linear loss with a fixed RNG (the
    drop-path masks); returns the outputs and the gradients by name."""
    torch.manual_seed(seed)
    outs = model(x)
    weights = [
        torch.randn(o.shape,
                    generator=torch.Generator().manual_seed(i)).to(o.dtype)
        for i, o in enumerate(outs)
    ]
    sum((o * w).sum() for o, w in zip(outs, weights)).backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    return [o.detach() for o in outs], grads


def assert_grads_close(ref: dict, other: dict, rtol: float) -> None:
    assert ref.keys() == other.keys()
    for name, grad in ref.items():
        assert grad is not None and other[name] is not None, name
        err = (grad.float() - other[name].float()).norm()
        scale = grad.float().norm().clamp_min(1e-8)
        assert err <= rtol * scale, f'{name}: relative error {err / scale}'


@pytest.mark.parametrize('arch', list(PUBLISHED))
def test_variants_shapes_and_params(arch):
    params_m, out_channels = PUBLISHED[arch]
    with torch.device('meta'), torch.no_grad():
        model = RevCol(arch=arch).eval()
        assert model.out_channels == out_channels
        num_params = sum(p.numel() for p in model.parameters()) / 1e6
        assert abs(num_params - params_m) <= 0.005 * params_m, num_params
        for h, w in [(64, 64), (96, 160)]:
            outs = model(torch.empty(1, 3, h, w))
            assert [tuple(o.shape) for o in outs
                    ] == [(1, c, h // s, w // s)
                          for c, s in zip(out_channels, (8, 16, 32))]


def test_build_and_forward_real_weights():
    model = MODELS.build(
        dict(type='RevCol', arch='tiny', out_indices=(0, -1))).eval()
    assert model.out_channels == (64, 512)
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [(1, 64, 16, 24), (1, 512, 2, 3)]
    assert all(torch.isfinite(o).all() for o in outs)


def test_any_size_from_32_and_clear_error_below():
    model = RevCol(arch=SMALL_ARCH)
    model.init_weights()  # the default truncated-normal init
    model.eval()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 70, 45))  # not /32: up branch resizes
        assert [tuple(o.shape[-2:]) for o in outs] == [(8, 5), (4, 2), (2, 1)]
        with pytest.raises(ValueError, match='>= 32'):
            model(torch.rand(1, 3, 31, 64))


@pytest.mark.parametrize('frozen_stages', [-1, 1])
def test_reversible_equals_plain_with_drop_path(frozen_stages):
    plain = randomize(
        RevCol(
            arch=SMALL_ARCH, save_memory=False,
            frozen_stages=frozen_stages)).train()
    reversible = copy.deepcopy(plain)
    reversible.save_memory = True
    x = torch.randn(2, 3, 32, 32)
    outs_plain, grads_plain = train_step(plain, x)
    outs_rev, grads_rev = train_step(reversible, x)
    for a, b in zip(outs_plain, outs_rev):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    assert_grads_close(grads_plain, grads_rev, rtol=1e-4)
    # drop path is on: another RNG seed gives other outputs
    outs_other, _ = train_step(reversible, x, seed=2)
    assert not torch.allclose(outs_other[-1], outs_rev[-1])


def test_reversible_input_gradient():
    model = randomize(RevCol(arch=SMALL_ARCH, drop_path_rate=0.)).train()
    x = torch.randn(1, 3, 32, 32, requires_grad=True)
    grads = []
    for save_memory in (False, True):
        model.save_memory = save_memory
        x.grad = None
        sum(o.sum() for o in model(x)).backward()
        grads.append(x.grad.clone())
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('save_memory', [True, False])
def test_frozen_stages_get_no_gradient(save_memory):
    model = randomize(
        RevCol(
            arch=SMALL_ARCH,
            frozen_stages=2,
            drop_path_rate=0.,
            save_memory=save_memory))
    model.train()
    frozen = [model.stem] + [m for c in model.columns for m in c.levels[:2]]
    assert all(not m.training for m in frozen)
    outs = model(torch.randn(1, 3, 64, 64))
    sum(o.sum() for o in outs).backward()
    for name, param in model.named_parameters():
        is_frozen = name.startswith('stem') or any(
            f'.{part}' in name
            for part in ('level0', 'level1', 'alpha0', 'alpha1'))
        first_alpha = name.startswith('subnet0.alpha')  # scales zero
        if is_frozen or first_alpha:
            assert not param.requires_grad and param.grad is None, name
        else:
            assert param.grad is not None and param.grad.abs().sum() > 0, \
                name


def test_autocast_bf16_cpu():
    plain = randomize(RevCol(arch=NARROW_ARCH, save_memory=False)).train()
    reversible = copy.deepcopy(plain)
    reversible.save_memory = True
    x = torch.randn(2, 3, 32, 32)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        outs_plain, grads_plain = train_step(plain, x)
        outs_rev, grads_rev = train_step(reversible, x)
    for a, b in zip(outs_plain, outs_rev):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # bf16 rounding of the reconstruction: close, not equal
    assert_grads_close(grads_plain, grads_rev, rtol=0.05)
    assert all(g.dtype == torch.float32 for g in grads_rev.values())


def test_eval_and_no_grad_match_train_forward():
    model = randomize(RevCol(arch=SMALL_ARCH, drop_path_rate=0.))
    x = torch.randn(1, 3, 64, 64)
    train_outs = model.train()(x)
    with torch.no_grad():
        eval_outs = model.eval()(x)
    for a, b in zip(train_outs, eval_outs):
        torch.testing.assert_close(a.detach(), b, rtol=0, atol=1e-6)


def test_eval_mode_traces_with_grad_enabled():
    """Tracing (as ONNX export does) without no_grad: the reversible
    autograd function once ran in eval mode and failed
    (RuntimeError: unordered_map::at)."""
    model = randomize(RevCol(arch=SMALL_ARCH, save_memory=True)).eval()
    x = torch.randn(1, 3, 64, 64)
    assert torch.is_grad_enabled()
    traced = torch.jit.trace(model, x)
    with torch.no_grad():
        expected = model(x)
    for a, b in zip(traced(x), expected):
        torch.testing.assert_close(a.detach(), b, rtol=0, atol=1e-6)


def test_alpha_clamped_in_training():
    model = RevCol(arch=SMALL_ARCH).train()
    with torch.no_grad():
        model.subnet1.alpha2.zero_()
        model.subnet1.alpha3.fill_(-1e-5)
    model(torch.randn(1, 3, 32, 32))
    assert (model.subnet1.alpha2 == 1e-3).all()
    assert (model.subnet1.alpha3 == -1e-3).all()


def official_state_dict(arch: dict) -> dict:
    """A state dict in the official checkpoint layout (models/revcol.py),
    written from the architecture facts, with the classification extras."""
    channels, layers = arch['channels'], arch['layers']
    sd = {
        'stem.0.weight': torch.randn(channels[0], 3, 4, 4),
        'stem.0.bias': torch.randn(channels[0]),
        'stem.1.weight': torch.randn(channels[0]),
        'stem.1.bias': torch.randn(channels[0])
    }
    for i in range(arch['num_columns']):
        for k, c in enumerate(channels):
            pre = f'subnet{i}.level{k}.'
            sd[f'subnet{i}.alpha{k}'] = torch.rand(1, c, 1, 1) + 0.5
            if k > 0:
                sd[pre + 'fusion.down.0.weight'] = torch.randn(
                    c, channels[k - 1], 2, 2)
                sd[pre + 'fusion.down.0.bias'] = torch.randn(c)
                sd[pre + 'fusion.down.1.weight'] = torch.randn(c)
                sd[pre + 'fusion.down.1.bias'] = torch.randn(c)
            if i > 0 and k < 3:
                up = pre + 'fusion.up.channel_reschedule.'
                sd[up + '0.weight'] = torch.randn(c, channels[k + 1])
                sd[up + '0.bias'] = torch.randn(c)
                sd[up + '1.weight'] = torch.randn(c)
                sd[up + '1.bias'] = torch.randn(c)
            for j in range(layers[k]):
                blk = f'{pre}blocks.{j}.'
                sd[blk + 'dwconv.weight'] = torch.randn(c, 1, 3, 3)
                sd[blk + 'dwconv.bias'] = torch.randn(c)
                sd[blk + 'norm.weight'] = torch.randn(c)
                sd[blk + 'norm.bias'] = torch.randn(c)
                sd[blk + 'pwconv1.weight'] = torch.randn(4 * c, c)
                sd[blk + 'pwconv1.bias'] = torch.randn(4 * c)
                sd[blk + 'pwconv2.weight'] = torch.randn(c, 4 * c)
                sd[blk + 'pwconv2.bias'] = torch.randn(c)
                sd[blk + 'gamma'] = torch.randn(c)
    sd['cls_blocks.0.classifier.1.weight'] = torch.randn(10, channels[3])
    sd['decoder_blocks.0.projback.0.weight'] = torch.randn(48, 16, 1, 1)
    sd['cls.classifier.1.bias'] = torch.randn(10)
    return sd


def test_official_checkpoint_layout_loads(tmp_path):
    official = official_state_dict(SMALL_ARCH)
    path = str(tmp_path / 'revcol_official.pth')
    torch.save({'model': {
        f'module.{k}': v
        for k, v in official.items()
    }}, path)
    model = RevCol(arch=SMALL_ARCH)
    missing, unexpected = load_pretrained_checkpoint(
        model,
        path,
        convert=model.convert_checkpoint,
        ignore=model.ignored_checkpoint_keys)
    assert missing == [] and unexpected == []
    model = RevCol(
        arch=SMALL_ARCH, init_cfg=dict(type='Pretrained', checkpoint=path))
    model.init_weights()
    state = model.state_dict()
    assert all(
        torch.equal(state[k], v) for k, v in official.items() if k in state)
    assert len(state) == len(official) - 3


def test_switch_to_deploy_and_deploy_checkpoints(tmp_path):
    model = randomize(RevCol(arch=SMALL_ARCH)).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        expected = model(x)
        model.switch_to_deploy()
        model.switch_to_deploy()  # idempotent
        deployed = model(x)
    assert not any(k.endswith('gamma') for k in model.state_dict())
    for a, b in zip(expected, deployed):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    built = RevCol(arch=SMALL_ARCH, deploy=True).eval()
    built.load_state_dict(model.state_dict())  # strict
    # an official (training-form) checkpoint into a deploy-form model
    path = str(tmp_path / 'official.pth')
    torch.save(randomize(RevCol(arch=SMALL_ARCH)).state_dict(), path)
    reference = RevCol(
        arch=SMALL_ARCH, init_cfg=dict(type='Pretrained', checkpoint=path))
    reference.init_weights()
    missing, unexpected = load_pretrained_checkpoint(
        built, path, convert=built.convert_checkpoint)
    assert missing == [] and unexpected == []
    with torch.no_grad():
        for a, b in zip(reference.eval()(x), built(x)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('kwargs, match', [
    (dict(arch='huge'), 'unknown arch'),
    (dict(arch=dict(channels=[8, 16, 32, 64], layers=[1, 1, 1, 1])),
     'missing'),
    (dict(arch=dict(SMALL_ARCH, channels=[8, 16, 32])), '4 channels'),
    (dict(arch=dict(SMALL_ARCH, layers=[1, 0, 1, 1])), '>= 1'),
    (dict(arch=dict(SMALL_ARCH, num_columns=0)), 'num_columns'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        with torch.device('meta'):
            RevCol(**kwargs)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _ddp_worker(rank: int, world_size: int, port: int, result_dir: str):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=world_size)
    try:
        # same weights on every rank, a frozen stem, drop path on
        model = randomize(RevCol(arch=NARROW_ARCH, frozen_stages=0))
        ddp = nn.parallel.DistributedDataParallel(
            model, find_unused_parameters=False)
        torch.manual_seed(rank)  # different data and drop-path masks
        outs = ddp(torch.randn(2, 3, 32, 32))
        sum(o.square().mean() for o in outs).backward()
        grads = {
            n: p.grad
            for n, p in model.named_parameters() if p.requires_grad
        }
        torch.save(grads, os.path.join(result_dir, f'{rank}.pth'))
    finally:
        dist.destroy_process_group()


def test_ddp_reversible_training_step():
    with tempfile.TemporaryDirectory() as result_dir:
        mp.spawn(_ddp_worker, args=(2, _free_port(), result_dir), nprocs=2)
        grads = [
            torch.load(os.path.join(result_dir, f'{r}.pth')) for r in range(2)
        ]
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name, grad in grads[0].items():
        assert grad is not None and torch.isfinite(grad).all(), name
        torch.testing.assert_close(grad, grads[1][name])  # all-reduced
