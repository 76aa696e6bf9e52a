"""Re-parameterisation math, in one place for every model component.

Each function returns new layers (or tensors) computing, in eval mode, what
the layers it was given compute together; blocks call them from their own
``switch_to_deploy()``, and :func:`switch_submodules_to_deploy` is the one
walk over a model.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.utils.fusion import fuse_conv_bn_weights


def _conv_like(conv: nn.Conv2d, **changes) -> nn.Conv2d:
    """An empty biased ``nn.Conv2d`` with ``conv``'s geometry, device and
    dtype, except for the fields in ``changes``."""
    geometry = dict(
        in_channels=conv.in_channels,
        out_channels=conv.out_channels,
        kernel_size=conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        padding_mode=conv.padding_mode)
    geometry.update(changes)
    return nn.Conv2d(
        **geometry,
        bias=True,
        device=conv.weight.device,
        dtype=conv.weight.dtype)


def _filled(conv: nn.Conv2d, weight: Tensor, bias: Tensor) -> nn.Conv2d:
    conv.weight.copy_(weight)
    conv.bias.copy_(bias)
    return conv


def _norm_scale_shift(norm: _BatchNorm) -> Tuple[Tensor, Tensor]:
    """``norm(x) == x * scale + shift`` per channel (running statistics)."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    return scale, norm.bias - norm.running_mean * scale


@torch.no_grad()
def fuse_conv_bn(conv: nn.Conv2d, bn: _BatchNorm) -> nn.Conv2d:
    """Return a new conv equal to ``bn(conv(x))`` with BN in eval mode.

    Uses the BN running statistics (the inference behaviour); the result
    always has a bias. Works for grouped/depthwise convs.
    """
    weight, bias = fuse_conv_bn_weights(conv.weight, conv.bias,
                                        bn.running_mean, bn.running_var,
                                        bn.eps, bn.weight, bn.bias)
    return _filled(_conv_like(conv), weight, bias)


@torch.no_grad()
def fuse_bn_conv(norm: _BatchNorm, conv: nn.Conv2d) -> nn.Conv2d:
    """Return a 1x1 conv equal to ``conv(norm(x))`` with ``norm`` in eval
    mode (the norm *before* the conv).

    Exact only for an unpadded, ungrouped 1x1 conv: zero padding would not
    see the norm's shift.
    """
    if conv.kernel_size != (1, 1) or conv.groups != 1 or any(conv.padding):
        raise ValueError(f'fuse_bn_conv: {conv} is not an unpadded dense 1x1 '
                         'conv; folding a norm into it would change the '
                         'borders')
    scale, shift = _norm_scale_shift(norm)
    bias = conv.weight.flatten(1) @ shift  # (out, in) @ (in,) -> (out,)
    if conv.bias is not None:
        bias = bias + conv.bias
    return _filled(
        _conv_like(conv), conv.weight * scale.view(1, -1, 1, 1), bias)


@torch.no_grad()
def merge_sequential_convs(first: nn.Conv2d, second: nn.Conv2d) -> nn.Conv2d:
    """Return one conv equal to ``second(first(x))``; ``second`` is 1x1.

    ``W = W2 @ W1`` over the middle channels and ``b = W2 @ b1 + b2``. Exact
    because a 1x1 convolution commutes with the spatial sum of ``first``
    (``first``'s padding applies to ``x``, not to the middle map). Both
    convs need biases and ``first`` must be ungrouped.
    """
    if second.kernel_size != (1, 1) or first.groups != 1:
        raise ValueError('merge_sequential_convs: needs an ungrouped first '
                         'conv and a 1x1 second conv')
    w2 = second.weight[:, :, 0, 0]  # (C_out, C_mid)
    weight = torch.einsum('om,mikl->oikl', w2, first.weight)
    return _filled(
        _conv_like(first, out_channels=second.out_channels), weight,
        w2 @ first.bias + second.bias)


@torch.no_grad()
def merge_parallel_convs(big: nn.Conv2d, small: nn.Conv2d) -> nn.Conv2d:
    """Return one conv equal to ``big(x) + small(x)`` (RepVGG branches).

    ``small``'s kernel is zero-padded to ``big``'s; both are centred, have
    biases and the same stride and groups.
    """
    pad_h = (big.kernel_size[0] - small.kernel_size[0]) // 2
    pad_w = (big.kernel_size[1] - small.kernel_size[1]) // 2
    weight = big.weight + F.pad(small.weight, [pad_w, pad_w, pad_h, pad_h])
    return _filled(_conv_like(big), weight, big.bias + small.bias)


def scale_linear(weight: Tensor, bias: Optional[Tensor],
                 scale: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
    """Weight and bias of ``scale * linear(x)`` (a per-output layer scale),
    for a Linear's ``(out, in)`` weight or a state dict's tensors."""
    return (weight * scale[:, None], None if bias is None else bias * scale)


def fuse_conv_norm_in(module: nn.Module,
                      conv_path: str,
                      norm_path: str,
                      remainder: Optional[nn.Module] = None) -> None:
    """Replace ``module.<conv_path>`` by its fusion with the BatchNorm at
    ``module.<norm_path>``, and that norm by ``remainder`` (default
    ``nn.Identity``, which keeps ``nn.Sequential`` indices such as
    ``mlp.3``)."""
    fused = fuse_conv_bn(
        module.get_submodule(conv_path), module.get_submodule(norm_path))
    replacements = {
        conv_path: fused,
        norm_path: nn.Identity() if remainder is None else remainder
    }
    for path, new in replacements.items():
        parent, _, name = path.rpartition('.')
        setattr(module.get_submodule(parent), name, new)
