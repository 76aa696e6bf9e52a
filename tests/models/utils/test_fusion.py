import pytest
import torch
from torch import nn

from rtdetr_mm.models.utils import (fuse_bn_conv, fuse_conv_bn,
                                    fuse_conv_norm_in, merge_parallel_convs,
                                    merge_sequential_convs, scale_linear)


def calibrated_bn(channels: int, seed: int) -> nn.BatchNorm2d:
    """An eval-mode BN with spread statistics and affine parameters."""
    gen = torch.Generator().manual_seed(seed)
    bn = nn.BatchNorm2d(channels).eval()
    for tensor, low, high in ((bn.weight, 0.5, 2.), (bn.bias, -1., 1.),
                              (bn.running_mean, -1., 1.), (bn.running_var, 0.2,
                                                           3.)):
        tensor.data.copy_(
            torch.empty(channels).uniform_(low, high, generator=gen))
    return bn


def conv(cin, cout, k, groups=1, padding=None, bias=True, seed=0):
    torch.manual_seed(seed)
    return nn.Conv2d(
        cin,
        cout,
        k,
        padding=k // 2 if padding is None else padding,
        groups=groups,
        bias=bias).eval()


X = torch.randn(2, 8, 9, 7, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize('groups,bias', [(1, True), (8, False), (2, True)])
def test_fuse_conv_bn(groups, bias):
    first, bn = conv(8, 8, 3, groups, bias=bias), calibrated_bn(8, 1)
    fused = fuse_conv_bn(first, bn)
    torch.testing.assert_close(fused(X), bn(first(X)), atol=1e-5, rtol=1e-5)
    assert fused.groups == groups and fused.bias is not None


def test_fuse_bn_conv_before_a_1x1_conv():
    bn, second = calibrated_bn(8, 2), conv(8, 6, 1, bias=False)
    torch.testing.assert_close(
        fuse_bn_conv(bn, second)(X), second(bn(X)), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match='unpadded dense 1x1'):
        fuse_bn_conv(bn, conv(8, 6, 3))


def test_merge_sequential_convs():
    first, second = conv(8, 5, 3, seed=1), conv(5, 6, 1, seed=2)
    merged = merge_sequential_convs(first, second)
    torch.testing.assert_close(
        merged(X), second(first(X)), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match='1x1 second conv'):
        merge_sequential_convs(first, conv(5, 6, 3))


def test_merge_parallel_convs():
    big, small = conv(8, 6, 3, seed=1), conv(8, 6, 1, seed=2)
    torch.testing.assert_close(
        merge_parallel_convs(big, small)(X),
        big(X) + small(X),
        atol=1e-5,
        rtol=1e-5)


def test_scale_linear():
    linear = nn.Linear(4, 3)
    scale = torch.tensor([0.5, -2., 3.])
    weight, bias = scale_linear(linear.weight, linear.bias, scale)
    x = torch.randn(5, 4)
    torch.testing.assert_close(x @ weight.T + bias, scale * linear(x))
    assert scale_linear(linear.weight, None, scale)[1] is None


def test_fuse_conv_norm_in_keeps_sequential_indices():
    block = nn.Sequential(conv(8, 8, 3), calibrated_bn(8, 4), nn.ReLU())
    expected = block(X)
    fuse_conv_norm_in(block, '0', '1')
    assert isinstance(block[1], nn.Identity) and len(block) == 3
    torch.testing.assert_close(block(X), expected, atol=1e-5, rtol=1e-5)
