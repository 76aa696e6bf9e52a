"""FasterNet backbone for detection, built on timm's FasterNet.

FasterNet ("Run, Don't Walk: Chasing Higher FLOPS for Faster Neural
Networks", CVPR 2023, https://github.com/JierunChen/FasterNet) mixes space
with a partial convolution (PConv: a 3x3 conv on a quarter of the channels)
followed by a two-layer point-wise MLP. timm (``timm.models.fasternet``)
implements the classification model; this module takes its patch embedding
and its four stages (blocks and merging layers untouched) and adds what a
detector needs: stage-level outputs, a BatchNorm on every output (as the
official detection model does), stage freezing, official/timm checkpoint
loading and an inference (deploy) form.

Parameter layout (timm's): ``patch_embed.{proj,norm}``,
``stages.{i}.downsample.{reduction,norm}`` (i = 1..3),
``stages.{i}.blocks.{j}.{mlp.0,mlp.1,mlp.3,spatial_mixing.partial_conv3}``
and ``norm{i}`` for the output norm of pyramid stage ``i``. The official
release layout (``stages.{0,2,4,6}`` stages, ``stages.{1,3,5}`` merging
layers, detection norms ``norm{0,2,4,6}``) is mapped onto it when loading.
"""
import re
from functools import partial
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
from mmcv.cnn import build_activation_layer
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from timm.models.fasternet import FasterNet as TimmFasterNet
from timm.models.fasternet import PatchMerging
from torch import nn

from ..utils import (PyramidBackboneMixin, arch_table, check_frozen_stages,
                     fuse_conv_norm_in, normalize_out_indices, resolve_arch)

# Keys only the official release layout has: its merging layers sit directly
# in ``stages`` (``stages.1.reduction``), timm's in ``stages.i.downsample``.
_OFFICIAL_LAYOUT = re.compile(r'^stages\.\d+\.(reduction|norm)\.')
_OFFICIAL_STAGE_KEY = re.compile(r'^stages\.(\d+)\.(.+)$')
_OFFICIAL_NORM_KEY = re.compile(r'^norm(\d+)\.(.+)$')


def _official_key_to_timm(key: str) -> str:
    """Rename one key of the official layout to timm's (= this module's).

    Official ``stages`` alternates stage and merging layer:
    ``stages.{2i}`` is pyramid stage i, ``stages.{2i-1}`` the merging layer in
    front of it; the detection model's output norms are ``norm{2i}``.
    """
    match = _OFFICIAL_STAGE_KEY.match(key)
    if match:
        index, rest = int(match[1]), match[2]
        if index % 2 == 0:
            return f'stages.{index // 2}.{rest}'
        return f'stages.{(index + 1) // 2}.downsample.{rest}'
    match = _OFFICIAL_NORM_KEY.match(key)
    if match:
        return f'norm{int(match[1]) // 2}.{match[2]}'
    return key


@MODELS.register_module()
class FasterNet(PyramidBackboneMixin, BaseModule):
    """FasterNet backbone (t0/t1/t2/s/m/l) returning pyramid stage features.

    Pyramid stage ``i`` (0..3) has ``embed_dims * 2**i`` channels at stride
    ``4 * 2**i``. Stage 0 follows the 4x4/4 patch embedding; stages 1..3
    start with a 2x2/2 merging layer.

    Args:
        arch (str | dict): ``'t0'``, ``'t1'``, ``'t2'``, ``'s'``, ``'m'``,
            ``'l'`` or a dict with the fields of :attr:`arch_settings`:
            ``embed_dims`` (int), ``depths`` (4 ints) and ``act_cfg`` (the
            MLP activation, an mmcv activation config). Default: ``'t0'``.
        in_channels (int): Channels of the input image. Default: 3.
        out_indices (Sequence[int]): Pyramid stages to return (0..3, negatives
            count from the end), in this order. Default: (1, 2, 3).
        with_out_norm (bool): Apply a BatchNorm (``norm{i}``) to every
            returned map, as the official detection model does. Default: True.
        drop_path_rate (float): Stochastic depth rate, increasing linearly
            over the blocks up to this value. The official detection configs
            use 0.15 (s), 0.2 (m) and 0.3 (l). Default: 0.1.
        frozen_stages (int): -1 freezes nothing, 0 the patch embedding, k the
            patch embedding and the first k stages (pyramid stages 0..k-1,
            with their merging layers and output norms). Frozen parts get
            ``requires_grad=False`` and stay in eval mode. Default: -1.
        norm_eval (bool): Keep every BatchNorm in eval mode while training.
            Default: False.
        deploy (bool): Build the inference form directly (see
            :meth:`switch_to_deploy`), e.g. to load a checkpoint saved after
            the switch. Official/timm (training-form) weights go into a
            model built with ``deploy=False`` that is switched after
            loading. Default: False.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=...,
            prefix=...)`` loads an official release file (raw state dict in
            the official layout) or a timm/this-layout state dict; the layout
            is recognised from the key names (:meth:`convert_checkpoint`).
            The classifier (``head``/``avgpool_pre_head``/``classifier``/
            ``conv_head``) is dropped silently. Default: None.

    Example:
        >>> import torch
        >>> from rtdetr_mm.models.backbones.fasternet import FasterNet
        >>> model = FasterNet(arch='t0').eval()
        >>> outs = model(torch.rand(1, 3, 64, 64))
        >>> [tuple(out.shape) for out in outs]
        [(1, 80, 8, 8), (1, 160, 4, 4), (1, 320, 2, 2)]
        >>> model.out_channels
        (80, 160, 320)
    """
    arch_settings = arch_table(
        ('embed_dims', 'depths', 'act_cfg'), {
            't0': (40, (1, 2, 8, 2), dict(type='GELU')),
            't1': (64, (1, 2, 8, 2), dict(type='GELU')),
            't2': (96, (1, 2, 8, 2), dict(type='ReLU', inplace=True)),
            's': (128, (1, 2, 13, 2), dict(type='ReLU', inplace=True)),
            'm': (144, (3, 4, 18, 3), dict(type='ReLU', inplace=True)),
            'l': (192, (3, 4, 18, 3), dict(type='ReLU', inplace=True)),
        })
    # Classifier heads: official (avgpool_pre_head.1 + head) and timm's.
    ignored_checkpoint_keys = (
        r'^(head|avgpool_pre_head|classifier|conv_head)\.')

    def __init__(self,
                 arch: Union[str, dict] = 't0',
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (1, 2, 3),
                 with_out_norm: bool = True,
                 drop_path_rate: float = 0.1,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 deploy: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        settings = resolve_arch(arch, self.arch_settings, 'FasterNet')
        depths = tuple(settings['depths'])
        if len(depths) != 4 or not all(
                isinstance(d, int) and d > 0 for d in depths):
            raise ValueError('FasterNet: arch depths must be 4 positive ints '
                             f'(one per pyramid stage), got {depths!r}')
        if not 0 <= drop_path_rate < 1:
            raise ValueError('FasterNet: drop_path_rate must be in [0, 1), '
                             f'got {drop_path_rate!r}')
        self.out_indices = normalize_out_indices(out_indices, 'FasterNet')
        self.frozen_stages = check_frozen_stages(frozen_stages, 'FasterNet')
        self.norm_eval = norm_eval
        self.with_out_norm = with_out_norm
        embed_dims = settings['embed_dims']
        self.out_channels = tuple(embed_dims * 2**i for i in self.out_indices)

        # timm builds patch embedding, stages (merging layers included) and
        # its weight initialisation; its classifier head is not kept.
        classifier = TimmFasterNet(
            in_chans=in_channels,
            num_classes=0,
            embed_dim=embed_dims,
            depths=depths,
            drop_path_rate=drop_path_rate,
            act_layer=partial(build_activation_layer, settings['act_cfg']))
        self.patch_embed = classifier.patch_embed
        self.stages = classifier.stages
        if with_out_norm:
            for i in self.out_indices:
                self.add_module(f'norm{i}', nn.BatchNorm2d(embed_dims * 2**i))

        self.deploy = False
        if deploy:
            self.switch_to_deploy()
        self._freeze_stages()

    def stage_modules(self):
        """``[patch_embed, stage 0 (+ its output norm), ..., stage 3]``."""
        modules = [self.patch_embed]
        for i, stage in enumerate(self.stages):
            norm = getattr(self, f'norm{i}', None)
            modules.append([stage] if norm is None else [stage, norm])
        return modules

    def convert_checkpoint(
            self, state_dict: Dict[str,
                                   torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Map a checkpoint onto this module's (timm's) layout.

        An official release file is recognised by its merging-layer keys
        (``stages.1.reduction.weight``) and renamed: ``stages.{2i}`` ->
        ``stages.{i}``, ``stages.{2i-1}`` -> ``stages.{i}.downsample``,
        detection norms ``norm{2i}`` -> ``norm{i}``. A timm checkpoint (or
        one saved from this module) already has this layout. Output norms a
        classification checkpoint lacks keep their initialisation, those of
        stages ``out_indices`` does not return are not loaded (both logged,
        not reported as missing/unexpected). Classifier keys are left for
        ``ignored_checkpoint_keys``.
        """
        if any(_OFFICIAL_LAYOUT.match(key) for key in state_dict):
            state_dict = {
                _official_key_to_timm(k): v
                for k, v in state_dict.items()
            }
        state_dict = self.drop_unbuilt_modules(
            state_dict, [
                f'norm{i}'
                for i in range(len(self.stages)) if i not in self.out_indices
            ], 'output norms of stages out_indices does not return')
        return self.keep_absent_modules(
            state_dict, [f'norm{i}' for i in self.out_indices],
            'classification checkpoints have no detection output norms')

    @torch.no_grad()
    def switch_to_deploy(self) -> None:
        """Convert, in place, to the inference form (idempotent).

        Every conv followed by a BatchNorm (patch embedding, merging layers,
        the first MLP conv of every block) is fused with it using the running
        statistics, and PConv switches from ``split_cat`` to timm's
        ``slicing`` forward (which clones its input, so the block's shortcut
        is untouched). The output norms follow a residual sum, not a conv,
        and stay. In eval mode the outputs are unchanged.
        """
        if self.deploy:
            return
        fuse_conv_norm_in(self.patch_embed, 'proj', 'norm')
        for stage in self.stages:
            if isinstance(stage.downsample, PatchMerging):
                fuse_conv_norm_in(stage.downsample, 'reduction', 'norm')
            for block in stage.blocks:
                # mlp = (conv 1x1, BN, act, conv 1x1)
                fuse_conv_norm_in(block.mlp, '0', '1')
                pconv = block.spatial_mixing
                pconv.forward = pconv.forward_slicing
        self.deploy = True
        self._freeze_stages()

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Return the maps of ``out_indices``, in that order.

        Args:
            x (Tensor): Images, shape (B, in_channels, H, W).

        Returns:
            tuple[Tensor]: For stage ``i``: (B, embed_dims * 2**i,
            H / 2**(i+2), W / 2**(i+2)).
        """
        x = self.patch_embed(x)  # (B, 3, H, W) -> (B, C, H/4, W/4)
        outs = {}
        for i in range(max(self.out_indices) + 1):
            x = self.stages[i](x)  # -> (B, C * 2**i, H/2**(i+2), W/2**(i+2))
            if i in self.out_indices:
                outs[i] = getattr(self, f'norm{i}')(x) \
                    if self.with_out_norm else x
        return tuple(outs[i] for i in self.out_indices)
