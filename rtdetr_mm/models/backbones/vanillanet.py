"""VanillaNet backbone (Chen et al., NeurIPS 2023), written for rtdetr_mm.

VanillaNet has no shortcuts and no attention: a stem and a chain of blocks,
each ``conv -> BN -> leaky-ReLU(act_learn) -> 1x1 conv -> BN -> pool ->
series activation``. ``act_learn`` is the slope of the leaky-ReLU between the
two convolutions of every block: the deep-training schedule moves it from 0
(a ReLU, two non-linear layers per block) to 1 (the identity), after which
the two convolutions and all BatchNorms merge into one convolution per block
(:meth:`VanillaNet.switch_to_deploy`).

Key layout. Blocks keep the official names (``stages.i.conv1.0``,
``stages.i.conv2.1``, ``stages.i.act.weight``, ``stages.i.act.bn`` in the
train form; ``stages.i.conv``, ``stages.i.act.{weight,bias}`` in the deploy
form). The stem is a block too (``stem.conv1`` / ``stem.conv2`` /
``stem.act``, or ``stem.conv`` / ``stem.act`` when fused); the official
``stem1.*`` / ``stem2.*`` / ``stem.0`` / ``stem.1`` keys are mapped onto it by
:meth:`VanillaNet.convert_checkpoint`.
"""
import math
import re
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..utils import (PyramidBackboneMixin, arch_table, check_frozen_stages,
                     fuse_conv_bn, merge_sequential_convs,
                     normalize_out_indices, resolve_arch)

FAMILY = 'VanillaNet'


class SeriesActivation(nn.Conv2d):
    """VanillaNet's series-informed activation: ReLU -> depthwise conv -> BN.

    A depthwise ``(2 * act_num + 1)`` square convolution after the ReLU mixes
    the activations of neighbouring positions. It is a ``Conv2d`` subclass so
    its state-dict keys are the official ones (``weight``, ``bn.*`` in the
    train form, ``weight``, ``bias`` in the deploy form).

    Args:
        channels (int): number of input and output channels.
        act_num (int): half the kernel size; the kernel is
            ``2 * act_num + 1`` wide.
        norm_cfg (dict): config of the norm layer after the convolution
            (a BatchNorm type; ignored in the deploy form).
        deploy (bool): build the fused form (conv with bias, no norm).

    Shape:
        (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self,
                 channels: int,
                 act_num: int,
                 norm_cfg: dict,
                 deploy: bool = False):
        super().__init__(
            channels,
            channels,
            2 * act_num + 1,
            padding=act_num,
            groups=channels,
            bias=deploy)
        self.act_num = act_num
        self.deploy = deploy
        if not deploy:
            self.bn = build_norm_layer(norm_cfg, channels)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._conv_forward(F.relu(x), self.weight, self.bias)
        return x if self.deploy else self.bn(x)

    @torch.no_grad()
    def switch_to_deploy(self) -> None:
        """Fold the BN (running statistics) into the depthwise conv."""
        if self.deploy:
            return
        fused = fuse_conv_bn(self, self.bn)
        self.weight = fused.weight
        self.bias = fused.bias
        del self.bn
        self.deploy = True


class PyramidAdaptiveMaxPool(nn.Module):
    """Adaptive max pooling that halves and keeps a pyramid 2x apart.

    The official ``13_x1_5_ada_pool`` model (stride-3 stem) pools to fixed
    sizes, 38, 19 and 10, chosen for 224x224 inputs. For any input this
    module pools ``n`` to ``ceil(n / 2**(r + 1)) * 2**r``, where ``r`` is the
    number of halvings still to come, so the three pooled levels are exactly
    ``4c, 2c, c``, as a detection neck that upsamples by 2 needs. The last
    pool is ``ceil(n / 2)``, the official 19 -> 10; at 224 the first two give
    40 and 20 instead of 38 and 19.

    Args:
        remaining (int): stride-2 layers after this one (2, 1 or 0).

    Shape:
        (B, C, H, W) -> (B, C, H', W').
    """

    def __init__(self, remaining: int):
        super().__init__()
        self.remaining = remaining

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        step = 2**self.remaining
        return F.adaptive_max_pool2d(
            x, tuple(math.ceil(n / (2 * step)) * step for n in x.shape[-2:]))


class VanillaBlock(nn.Module):
    """One VanillaNet layer (the stem is one too).

    Train form: ``conv1 (k x k, stride s) -> BN -> leaky_relu(act_learn) ->
    conv2 (1x1) -> BN -> pool -> SeriesActivation``. Deploy form: ``conv ->
    pool -> SeriesActivation`` with BN folded in and the two convolutions
    merged, which equals the train form only at ``act_learn == 1``.

    Args:
        in_channels (int): input channels.
        mid_channels (int): channels between ``conv1`` and ``conv2``
            (the input width in a block, the output width in the stem).
        out_channels (int): output channels.
        act_num (int): see :class:`SeriesActivation`.
        norm_cfg (dict): BatchNorm config of every norm layer.
        kernel_size (int): ``conv1``'s kernel (1 in blocks, 4 in the stem).
        stride (int): ``conv1``'s stride (1 in blocks, 4 or 3 in the stem).
        padding (int): ``conv1``'s padding.
        pool (nn.Module, optional): down-sampling after ``conv2``
            (``None``: identity).
        deploy (bool): build the fused form.

    Shape:
        (B, in_channels, H, W) -> (B, out_channels, H', W').
    """

    def __init__(self,
                 in_channels: int,
                 mid_channels: int,
                 out_channels: int,
                 act_num: int,
                 norm_cfg: dict,
                 kernel_size: int = 1,
                 stride: int = 1,
                 padding: int = 0,
                 pool: Optional[nn.Module] = None,
                 deploy: bool = False):
        super().__init__()
        self.deploy = deploy
        self.act_learn = 1.0
        if deploy:
            self.conv = nn.Conv2d(in_channels, out_channels, kernel_size,
                                  stride, padding)
        else:
            self.conv1 = nn.Sequential(
                nn.Conv2d(in_channels, mid_channels, kernel_size, stride,
                          padding),
                build_norm_layer(norm_cfg, mid_channels)[1])
            self.conv2 = nn.Sequential(
                nn.Conv2d(mid_channels, out_channels, 1),
                build_norm_layer(norm_cfg, out_channels)[1])
        self.pool = pool if pool is not None else nn.Identity()
        self.act = SeriesActivation(out_channels, act_num, norm_cfg, deploy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.deploy:
            x = self.conv(x)
        else:
            x = self.conv1(x)
            if self.act_learn != 1:  # slope 1 is the identity
                x = F.leaky_relu(x, self.act_learn)
            x = self.conv2(x)
        return self.act(self.pool(x))

    @torch.no_grad()
    def switch_to_deploy(self) -> None:
        """Fold every BN and merge ``conv1``/``conv2``; needs act_learn 1."""
        if self.deploy:
            return
        if self.act_learn != 1:
            raise RuntimeError(
                f'VanillaBlock.switch_to_deploy: act_learn is '
                f'{self.act_learn}; merging conv1 and conv2 is exact only '
                'at act_learn == 1 (the end of the deep-training schedule)')
        self.conv = merge_sequential_convs(
            fuse_conv_bn(*self.conv1), fuse_conv_bn(*self.conv2))
        del self.conv1, self.conv2
        self.act.switch_to_deploy()
        self.deploy = True


@MODELS.register_module()
class VanillaNet(PyramidBackboneMixin, BaseModule):
    """VanillaNet backbone for detection (no classifier).

    The official networks are a stem (stride 4) followed by blocks of
    stride 1 or 2; pyramid stage ``i`` (stride ``4 * 2**i``) is the output
    of the last layer at that stride: the stem or the stride-1 blocks after
    it (stage 0), then each block with stride 2 and the stride-1 blocks that
    follow it. For VanillaNet-13 the taps are blocks 0, 1, 8 and 10, those of
    the official detection code.

    ``13_x1_5_ada_pool`` (the official stride-3 stem and adaptive max pooling
    to fixed sizes for 224x224 inputs) works for any input size: its pools
    are sized from the input so that pyramid stages 1..3 are exactly 2x apart
    (:class:`PyramidAdaptiveMaxPool`; a 640 input gives 213, 108, 54 and 27
    pixels). Its strides are then about 3/6/12/24 instead of 4/8/16/32 (1.8x
    the tokens of ``13_x1_5``, the resolution gain the variant exists for),
    so the neck and head must take positions from the map sizes, as
    RT-DETR's do.

    Args:
        arch (str | dict): ``'5'``, ``'6'``, ..., ``'13'``, ``'13_x1_5'`` or
            ``'13_x1_5_ada_pool'``, or a dict with ``dims`` (stem width then
            the width of every block), ``strides`` (1 or 2 per block, three
            2s) and optionally ``ada_pool`` (bool). Default: ``'5'``.
        in_channels (int): input channels. Default: 3.
        act_num (int): half the kernel size of the series activation
            (official: 3 for ImageNet, 4 for the detection pretraining).
            Default: 3.
        out_indices (Sequence[int]): pyramid stages to return (0..3 at
            strides 4/8/16/32; negatives count from the end).
            Default: (1, 2, 3).
        frozen_stages (int): -1 freezes nothing, 0 the stem, k the stem and
            the layers of pyramid stages 0..k-1. Default: -1.
        norm_eval (bool): keep BatchNorm layers in eval mode in training.
            Default: False.
        norm_cfg (dict): BatchNorm config (``BN`` or ``SyncBN``; ``eps``
            defaults to the official 1e-6). Default: ``dict(type='BN')``.
        deploy (bool): build the fused inference form, which loads
            checkpoints saved after :meth:`switch_to_deploy` and official
            deploy-form files (and official train-form files, fused on load).
            Default: False.
        init_cfg (dict | list[dict], optional): ``dict(type='Pretrained',
            checkpoint=..., prefix=...)`` loads an official release file
            (raw, ``model`` or ``model_ema`` wrapped, train or deploy form).
            Default: truncated-normal (std 0.02) convolutions, the official
            initialisation.

    Attributes:
        out_channels (tuple[int]): channels of the returned maps.
        act_learn (float): slope of the leaky-ReLU of every layer; setting it
            sets it on every layer (see ``VanillaNetDeepTrainingHook``).

    Example:
        >>> import torch
        >>> from rtdetr_mm.models.backbones.vanillanet import VanillaNet
        >>> model = VanillaNet(arch='5', out_indices=(1, 2, 3)).eval()
        >>> model.out_channels
        (1024, 2048, 4096)
        >>> for out in model(torch.rand(1, 3, 64, 64)):
        ...     print(tuple(out.shape))
        (1, 1024, 8, 8)
        (1, 2048, 4, 4)
        (1, 4096, 2, 2)
        >>> model.switch_to_deploy()  # exact in eval mode at act_learn == 1
    """

    # yapf: disable
    # the official variants: widths and strides of the stem and the blocks,
    # adaptive pooling (the stride-3 stem of 13_x1_5_ada_pool)
    arch_settings = arch_table(('dims', 'strides', 'ada_pool'), {
        '5': ([512, 1024, 2048, 4096], [2, 2, 2], False),
        '6': ([512, 1024, 2048, 4096, 4096], [2, 2, 2, 1], False),
        '7': ([512, 512, 1024] + [2048] * 1 + [4096] * 2,
              [1, 2, 2, 2, 1], False),
        '8': ([512, 512, 1024] + [2048] * 2 + [4096] * 2,
              [1, 2, 2, 1, 2, 1], False),
        '9': ([512, 512, 1024] + [2048] * 3 + [4096] * 2,
              [1, 2, 2, 1, 1, 2, 1], False),
        '10': ([512, 512, 1024] + [2048] * 4 + [4096] * 2,
               [1, 2, 2, 1, 1, 1, 2, 1], False),
        '11': ([512, 512, 1024] + [2048] * 5 + [4096] * 2,
               [1, 2, 2, 1, 1, 1, 1, 2, 1], False),
        '12': ([512, 512, 1024] + [2048] * 6 + [4096] * 2,
               [1, 2, 2, 1, 1, 1, 1, 1, 2, 1], False),
        '13': ([512, 512, 1024] + [2048] * 7 + [4096] * 2,
               [1, 2, 2, 1, 1, 1, 1, 1, 1, 2, 1], False),
        '13_x1_5': ([768, 768, 1536] + [3072] * 7 + [6144] * 2,
                    [1, 2, 2, 1, 1, 1, 1, 1, 1, 2, 1], False),
        '13_x1_5_ada_pool': ([768, 768, 1536] + [3072] * 7 + [6144] * 2,
                             [1, 2, 2, 1, 1, 1, 1, 1, 1, 2, 1], True),
    })
    # yapf: enable
    # the classifier: train form cls1/cls2, deploy form cls
    ignored_checkpoint_keys = r'^(cls\d?|head|fc)\.'

    def __init__(self,
                 arch: Union[str, dict] = '5',
                 in_channels: int = 3,
                 act_num: int = 3,
                 out_indices: Sequence[int] = (1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 norm_cfg: dict = dict(type='BN'),
                 deploy: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        if init_cfg is None:
            init_cfg = dict(
                type='TruncNormal', layer='Conv2d', std=0.02, bias=0.)
        super().__init__(init_cfg=init_cfg)
        if isinstance(arch, dict):
            arch = dict(dict(ada_pool=False), **arch)
        settings = resolve_arch(arch, self.arch_settings, FAMILY)
        dims, strides = list(settings['dims']), list(settings['strides'])
        self._check_arch(dims, strides)
        if not isinstance(act_num, int) or act_num < 0:
            raise ValueError(f'{FAMILY}: act_num must be an int >= 0 (the '
                             'series activation kernel is 2*act_num+1), got '
                             f'{act_num!r}')
        norm_cfg = dict(dict(eps=1e-6), **norm_cfg)
        norm = build_norm_layer(norm_cfg, 1)[1]
        if not (isinstance(norm, _BatchNorm) and norm.track_running_stats):
            raise ValueError(f'{FAMILY}: norm_cfg {norm_cfg} must build a '
                             'BatchNorm with running statistics (BN or '
                             'SyncBN), which switch_to_deploy folds')
        self.arch_kwargs = dict(
            arch=settings,
            in_channels=in_channels,
            act_num=act_num,
            norm_cfg=norm_cfg)
        self.out_indices = normalize_out_indices(out_indices, FAMILY)
        self.frozen_stages = check_frozen_stages(frozen_stages, FAMILY)
        self.norm_eval = norm_eval
        self.deploy = deploy
        self.ada_pool = bool(settings['ada_pool'])

        # the official ada_pool stem has stride 3 and padding 1
        stem_stride, stem_padding = (3, 1) if self.ada_pool else (4, 0)
        self.stem = VanillaBlock(
            in_channels,
            dims[0],
            dims[0],
            act_num,
            norm_cfg,
            kernel_size=4,
            stride=stem_stride,
            padding=stem_padding,
            deploy=deploy)
        self.stages = nn.ModuleList()
        for i, stride in enumerate(strides):
            pool = None
            if stride == 2:
                remaining = strides[i + 1:].count(2)
                pool = (
                    PyramidAdaptiveMaxPool(remaining)
                    if self.ada_pool else nn.MaxPool2d(2))
            self.stages.append(
                VanillaBlock(
                    dims[i],
                    dims[i],
                    dims[i + 1],
                    act_num,
                    norm_cfg,
                    pool=pool,
                    deploy=deploy))

        # pyramid_levels[j]: pyramid stage of layer j (0 = stem)
        self.pyramid_levels = [0]
        for stride in strides:
            self.pyramid_levels.append(self.pyramid_levels[-1] + (stride == 2))
        # the last layer of every pyramid stage
        self.tap_layers = [
            max(j for j, level in enumerate(self.pyramid_levels)
                if level == stage) for stage in range(4)
        ]
        self.out_channels = tuple(dims[self.tap_layers[i]]
                                  for i in self.out_indices)
        self._freeze_stages()

    @staticmethod
    def _check_arch(dims: List[int], strides: List[int]) -> None:
        if len(dims) != len(strides) + 1:
            raise ValueError(f'{FAMILY}: arch needs len(dims) == '
                             f'len(strides) + 1 (stem width, then one per '
                             f'block), got {len(dims)} dims and '
                             f'{len(strides)} strides')
        if any(s not in (1, 2) for s in strides) or strides.count(2) != 3:
            raise ValueError(f'{FAMILY}: arch strides {strides} must be 1 or '
                             '2 with exactly three 2s (strides 8, 16, 32 '
                             'after the stride-4 stem)')
        if any(not isinstance(d, int) or d <= 0 for d in dims):
            raise ValueError(f'{FAMILY}: arch dims {dims} must be positive '
                             'ints')

    def layers(self) -> List[VanillaBlock]:
        """The stem and the blocks, in order."""
        return [self.stem, *self.stages]

    def stage_modules(self) -> List[List[nn.Module]]:
        """``[stem, stage 0 blocks, stage 1, stage 2, stage 3]``."""
        groups: List[List[nn.Module]] = [[self.stem], [], [], [], []]
        for block, level in zip(self.stages, self.pyramid_levels[1:]):
            groups[level + 1].append(block)
        return groups

    @property
    def act_learn(self) -> float:
        """Leaky-ReLU slope of every layer (1: identity, deployable)."""
        return self.stem.act_learn

    @act_learn.setter
    def act_learn(self, value: float) -> None:
        if isinstance(
                value,
                bool) or not isinstance(value,
                                        (int, float)) or not 0 <= value <= 1:
            raise ValueError(f'{FAMILY}: act_learn must be a number in '
                             f'[0, 1] (0: ReLU, 1: identity), got {value!r}')
        if self.deploy and value != 1:
            raise RuntimeError(
                f'{FAMILY}: cannot set act_learn={value} on the deploy form, '
                'whose layers are already merged (act_learn == 1)')
        for layer in self.layers():
            layer.act_learn = float(value)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """(B, C_in, H, W) -> one (B, C_i, H / s_i, W / s_i) per out_index."""
        taps = {}
        for j, layer in enumerate(self.layers()):
            x = layer(x)
            taps[j] = x
        return tuple(taps[self.tap_layers[i]] for i in self.out_indices)

    def switch_to_deploy(self) -> None:
        """Fuse every layer in place (idempotent); needs ``act_learn == 1``.

        BN folding uses the running statistics, so the fused model equals
        the train form in eval mode.
        """
        if self.deploy:
            return
        slopes = {layer.act_learn for layer in self.layers()}
        if slopes != {1}:
            raise RuntimeError(
                f'{FAMILY}.switch_to_deploy: act_learn is '
                f'{sorted(slopes)}; '
                'the fused form equals the trained network only at '
                'act_learn == 1. Finish the deep-training schedule '
                '(VanillaNetDeepTrainingHook) before deploying.')
        for layer in self.layers():
            layer.switch_to_deploy()
        self.deploy = True
        self._freeze_stages()  # the fused layers of frozen stages too

    # ------------------------------------------------------------------
    # official checkpoints
    _STEM_KEYS_TRAIN = ((r'^stem1\.0\.', 'stem.conv1.0.'),
                        (r'^stem1\.1\.', 'stem.conv1.1.'), (r'^stem2\.0\.',
                                                            'stem.conv2.0.'),
                        (r'^stem2\.1\.', 'stem.conv2.1.'), (r'^stem2\.2\.',
                                                            'stem.act.'))
    _STEM_KEYS_DEPLOY = ((r'^stem\.0\.', 'stem.conv.'), (r'^stem\.1\.',
                                                         'stem.act.'))

    def convert_checkpoint(self, state_dict: dict) -> dict:
        """Map an official VanillaNet state dict onto this module.

        Accepts the official train form (``stem1``/``stem2``, ``conv1``,
        ``conv2``, ``act.bn``) and deploy form (``stem.0``/``stem.1``,
        ``conv``, ``act.bias``) as well as this module's own layouts. A
        train-form file loaded into a ``deploy=True`` model is fused on load
        (the released weights are at act_learn 1). The classifier keys are
        kept; ``ignored_checkpoint_keys`` drops them.

        Raises:
            ValueError: for a deploy-form file and a train-form model (the
                fusion cannot be undone).
        """
        converted = {}
        for key, value in state_dict.items():
            for pattern, new in (self._STEM_KEYS_TRAIN +
                                 self._STEM_KEYS_DEPLOY):
                key, count = re.subn(pattern, new, key)
                if count:
                    break
            converted[key] = value
        train_form = any('.conv1.' in k or '.act.bn.' in k for k in converted)
        deploy_form = any(
            re.match(r'^(stem|stages\.\d+)\.conv\.weight$', k)
            for k in converted)
        if deploy_form and not self.deploy:
            raise ValueError(
                f'{FAMILY}: the checkpoint is in the deploy (fused) form but '
                'the model was built with deploy=False; build it with '
                'deploy=True to load a fused checkpoint')
        if train_form and self.deploy:
            converted = self._fuse_state_dict(converted)
        return converted

    def _fuse_state_dict(self, state_dict: dict) -> dict:
        """Deploy-form state dict of a train-form one (same arch)."""
        ignore = re.compile(self.ignored_checkpoint_keys)
        backbone_keys = {
            k: v
            for k, v in state_dict.items() if not ignore.search(k)
        }
        with torch.device('meta'):
            train_model = VanillaNet(**self.arch_kwargs, out_indices=(3, ))
        missing, unexpected = train_model.load_state_dict(
            backbone_keys, strict=False, assign=True)
        # BN step counters play no part in the fused weights
        missing = [k for k in missing if not k.endswith('num_batches_tracked')]
        if missing or unexpected:
            raise ValueError(
                f'{FAMILY}: cannot fuse a train-form checkpoint into this '
                f'deploy model: missing keys {missing}, unexpected keys '
                f'{unexpected} (wrong arch or act_num?)')
        train_model.switch_to_deploy()
        return train_model.state_dict()
