"""ResNet-vd exactly as RT-DETR's ``PResNet``, loading its official weights."""
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmcv.cnn import build_conv_layer, build_norm_layer
from mmdet.models.backbones import ResNetV1d
from mmdet.registry import MODELS
from torch import Tensor, nn

from ..utils import (PyramidBackboneMixin, check_frozen_stages,
                     fuse_conv_norm_in, normalize_out_indices)
from ..utils.rtdetr_official_keys import (describe_layout,
                                          official_backbone_to_mm)

# The ImageNet weights the official RT-DETR recipes start from (converted
# from Paddle by the RT-DETR authors), by depth.
OFFICIAL_IMAGENET_WEIGHTS = {
    depth:
    'https://github.com/lyuwenyu/storage/releases/download/v0.1/'
    f'ResNet{depth}_vd_{tag}pretrained_from_paddle.pth'
    for depth, tag in ((18, ''), (34, ''), (50, 'ssld_v2_'), (101, 'ssld_'))
}


@MODELS.register_module()
class PResNetV1d(PyramidBackboneMixin, ResNetV1d):
    """mmdet's :class:`ResNetV1d` with a projection shortcut in *every*
    stage's first block, as RT-DETR's ``PResNet`` (variant ``d``) has.

    mmdet's ResNet adds a shortcut conv only when the stride or the width
    changes. For ResNet-50/101 that is every first block, so mmdet's
    ``ResNetV1d`` already equals PResNet-50/101-vd. For ResNet-18/34 the
    first block of stage 1 keeps 64 channels at stride 1 and mmdet uses an
    identity, while PResNet uses a 1x1 conv + BN: this class adds it, laid
    out like mmdet's stride-1 ``avg_down`` shortcut (``downsample.1`` conv,
    ``downsample.2`` norm), so the official R18/R34 weights load.

    Args:
        arch (int | str, optional): the depth, a key of mmdet's
            ``ResNet.arch_settings`` (18, 34, 50, 101, 152); the backbone
            contract's name for ``depth``, which is also accepted (one of
            the two is required).
        out_indices (sequence[int]): pyramid stages 0..3 to return
            (negatives count from the end). Default: (1, 2, 3).
        frozen_stages (int): -1 nothing, 0 the stem, k the stem and stages
            1..k. Default: -1.
        deploy (bool): build the inference form (every BatchNorm folded into
            its conv, see :meth:`switch_to_deploy`), which loads checkpoints
            saved after the switch. Default: False.
        **kwargs: the other arguments of :class:`ResNetV1d`.

    ``init_cfg=dict(type='Pretrained', checkpoint=...)`` loads, strictly and
    safely, an mmdet-layout file or the official ImageNet PResNet-vd weights
    (``OFFICIAL_IMAGENET_WEIGHTS``, converted on load) into the train form.

    Example:
        >>> import torch
        >>> m = PResNetV1d(arch=18, out_indices=(1, 2, 3))
        >>> m.eval()
        >>> [tuple(o.shape) for o in m(torch.rand(1, 3, 64, 64))]
        [(1, 128, 8, 8), (1, 256, 4, 4), (1, 512, 2, 2)]
        >>> m.out_channels
        (128, 256, 512)
    """

    def __init__(self,
                 arch: Optional[Union[int, str]] = None,
                 out_indices=(1, 2, 3),
                 frozen_stages: int = -1,
                 deploy: bool = False,
                 depth: Optional[int] = None,
                 **kwargs) -> None:
        depth = self._resolve_depth(arch, depth)
        out_indices = normalize_out_indices(out_indices, 'PResNetV1d')
        check_frozen_stages(frozen_stages, 'PResNetV1d')
        self.deploy = False
        super().__init__(
            depth=depth,
            out_indices=out_indices,
            frozen_stages=frozen_stages,
            **kwargs)
        expansion = self.block.expansion
        self.out_channels = tuple(self.base_channels * 2**i * expansion
                                  for i in out_indices)
        if deploy:
            self.switch_to_deploy()

    @classmethod
    def _resolve_depth(cls, arch, depth) -> int:
        if (arch is None) == (depth is None):
            raise ValueError('PResNetV1d: give exactly one of arch and depth '
                             f'(got arch={arch!r}, depth={depth!r})')
        value = arch if depth is None else depth
        if str(value) not in map(str, cls.arch_settings):
            raise ValueError(f'PResNetV1d: unknown arch {value!r}; valid '
                             f'archs are {sorted(cls.arch_settings)} (the '
                             'depth)')
        return int(value)

    def make_res_layer(self, **kwargs) -> nn.Module:
        """Build a stage; give its first block a projection shortcut."""
        layer = super().make_res_layer(**kwargs)
        first = layer[0]
        if first.downsample is None:
            channels = kwargs['planes'] * kwargs['block'].expansion
            first.downsample = nn.Sequential(
                nn.Identity(),  # the (stride-1) pooling slot of avg_down
                build_conv_layer(
                    self.conv_cfg,
                    kwargs['inplanes'],
                    channels,
                    kernel_size=1,
                    bias=False),
                build_norm_layer(self.norm_cfg, channels)[1])
        return layer

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """(B, 3, H, W) -> one map per ``out_indices``, in their order
        (mmdet's ResNet returns them in network order)."""
        outs = dict(zip(sorted(self.out_indices), super().forward(x)))
        return tuple(outs[i] for i in self.out_indices)

    def stage_modules(self) -> List[nn.Module]:
        """The deep stem, then the four residual stages."""
        return [self.stem] + [getattr(self, name) for name in self.res_layers]

    @torch.no_grad()
    def switch_to_deploy(self) -> None:
        """Fold every BatchNorm into the conv before it, in place; idempotent.

        Stem convs, the convs of every block and the projection shortcuts
        become biased convs; the norms become ``nn.Identity`` (keeping the
        ``nn.Sequential`` indices). In eval mode outputs are unchanged up to
        float rounding.
        """
        if self.deploy:
            return
        for index in range(0, len(self.stem), 3):  # (conv, norm, ReLU) x 3
            fuse_conv_norm_in(self.stem, str(index), str(index + 1))
        for name in self.res_layers:
            for block in getattr(self, name):
                for n in (1, 2, 3):
                    if hasattr(block, f'conv{n}'):
                        fuse_conv_norm_in(block, f'conv{n}',
                                          getattr(block, f'norm{n}_name'))
                shortcut = block.downsample  # ([pool,] conv, norm)
                if shortcut is not None:
                    fuse_conv_norm_in(shortcut, str(len(shortcut) - 2),
                                      str(len(shortcut) - 1))
        self.deploy = True
        self._freeze_stages()

    def convert_checkpoint(self,
                           state_dict: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Official PResNet keys (``conv1.conv1_1.*``, ``res_layers.*``) ->
        ours; mmdet-layout checkpoints pass unchanged."""
        if describe_layout(state_dict) == 'official ImageNet PResNet backbone':
            return official_backbone_to_mm(state_dict)
        return state_dict
