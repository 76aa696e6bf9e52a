"""Re-parameterisation helpers shared by every model component."""
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights


@torch.no_grad()
def fuse_conv_bn(conv: nn.Conv2d, bn: nn.modules.batchnorm._BatchNorm
                 ) -> nn.Conv2d:
    """Return a new conv equal to ``bn(conv(x))`` with BN in eval mode.

    Uses the BN running statistics (the inference behaviour); the result
    always has a bias. Works for grouped/depthwise convs.
    """
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                      conv.stride, conv.padding, conv.dilation, conv.groups,
                      bias=True, padding_mode=conv.padding_mode).to(
                          conv.weight.device, conv.weight.dtype)
    weight, bias = fuse_conv_bn_weights(conv.weight, conv.bias,
                                        bn.running_mean, bn.running_var,
                                        bn.eps, bn.weight, bn.bias)
    fused.weight.copy_(weight)
    fused.bias.copy_(bias)
    return fused
