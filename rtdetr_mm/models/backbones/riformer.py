"""RIFormer (CVPR 2023) as a pyramid backbone for MMDetection.

A thin subclass of mmpretrain's ``RIFormer``: the blocks, their affine token
mixer and its re-parameterisation are mmpretrain's. This file only translates
the rtdetr_mm backbone contract (``docs/design.md``) onto mmpretrain's
layout, whose ``network`` holds seven entries::

    network index   0       1     2       3     4       5     6
    module          stage1  down  stage2  down  stage3  down  stage4
    pyramid stage   0             1             2             3
    stride          4       8     8       16    16      32    32

Pyramid stage ``i`` is read after ``network[2 * i]`` through the output norm
``norm{2 * i}``, so the state-dict keys stay those of mmpretrain and the
official classification checkpoints load without renaming.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmdet.registry import MODELS
from mmpretrain.models.backbones.riformer import \
    RIFormer as _MMPretrainRIFormer
from torch import nn

from ..utils import (PyramidBackboneMixin, check_frozen_stages,
                     normalize_out_indices, resolve_arch, select_prefix)

NUM_STAGES = 4


def network_index(stage: int) -> int:
    """Index in mmpretrain's ``network`` of pyramid stage ``stage``."""
    return 2 * stage


@MODELS.register_module()
class RIFormer(PyramidBackboneMixin, _MMPretrainRIFormer):
    """RIFormer backbone with stage-level ``out_indices``/``frozen_stages``.

    `RIFormer: Keep Your Vision Backbone Effective But Removing Token Mixer
    <https://arxiv.org/abs/2304.05659>`_ (CVPR 2023): a MetaFormer whose token
    mixer is a per-channel affine map; ``switch_to_deploy()`` folds it into the
    preceding GroupNorm, leaving blocks of norm + MLP only.

    Output norms: mmpretrain adds a GroupNorm ``norm{j}`` after each output
    (``j = 2 * stage``). ImageNet checkpoints only hold ``norm6`` (the
    classifier reads stage 3), so when a checkpoint lacks the norm of a
    requested output (``norm2``/``norm4`` for the default ``(1, 2, 3)``), that
    norm keeps its initialisation -- weight 1, bias 0, i.e. a plain
    normalisation, the state ``norm6`` starts ImageNet training from -- and
    the loader logs it at INFO level as expected instead of as a missing key.

    Args:
        arch (str | dict): ``'s12'``, ``'s24'``, ``'s36'``, ``'m36'`` or
            ``'m48'`` (``arch_settings``), or a dict with the fields
            ``layers``, ``embed_dims``, ``mlp_ratios`` (4 values each, channels
            changing at every stage) and ``layer_scale_init_value``.
            Defaults to ``'s12'``.
        in_channels (int): Input image channels. Defaults to 3.
        out_indices (Sequence[int] | int): Pyramid stages to return, 0..3 at
            strides 4/8/16/32; negatives count from the end. Outputs come in
            this order. Defaults to ``(1, 2, 3)``.
        frozen_stages (int): -1 freezes nothing, 0 the stem (``patch_embed``),
            ``k`` the stem and stages 1..k (their blocks, the down-sampling
            into them and their output norms). Stage ``k >= 1`` equals
            mmpretrain's network-level ``frozen_stages=2k-2``. Defaults to -1.
        norm_eval (bool): Keep BatchNorm layers in eval mode while training.
            The default GroupNorm has no running statistics, so this only
            matters with a BatchNorm ``norm_cfg``. Defaults to False.
        norm_cfg (dict): Norm layers of the blocks and outputs.
            Defaults to ``dict(type='GN', num_groups=1)``.
        act_cfg (dict): Activation of the MLPs. Defaults to
            ``dict(type='GELU')``.
        drop_rate (float): Dropout rate in the MLPs. Defaults to 0.
        drop_path_rate (float): Stochastic depth rate, growing linearly to
            this value over the blocks. Defaults to 0.
        deploy (bool): Build the fused form (``norm_reparam`` instead of
            ``norm1`` + ``token_mixer``) so checkpoints saved after
            ``switch_to_deploy()`` load. Defaults to False.
        init_cfg (dict | list[dict], optional): e.g.
            ``dict(type='Pretrained', checkpoint=URL, prefix='backbone.')`` for
            an mmpretrain classification checkpoint; without ``prefix`` a
            ``backbone.``-prefixed checkpoint is recognised too.
            Defaults to None.

    Example:
        >>> import torch
        >>> from rtdetr_mm.models.backbones import RIFormer
        >>> model = RIFormer(arch='s12').eval()
        >>> model.out_channels
        (128, 320, 512)
        >>> outs = model(torch.rand(1, 3, 64, 64))
        >>> [tuple(out.shape) for out in outs]
        [(1, 128, 8, 8), (1, 320, 4, 4), (1, 512, 2, 2)]
        >>> model.switch_to_deploy()  # same outputs, no token mixers
        >>> model.deploy
        True
    """

    def __init__(self,
                 arch: Union[str, dict] = 's12',
                 in_channels: int = 3,
                 out_indices: Union[int, Sequence[int]] = (1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 norm_cfg: dict = dict(type='GN', num_groups=1),
                 act_cfg: dict = dict(type='GELU'),
                 drop_rate: float = 0.,
                 drop_path_rate: float = 0.,
                 deploy: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        settings = resolve_arch(arch, self.arch_settings, 'RIFormer')
        self._check_arch(settings)
        out_indices = normalize_out_indices(out_indices, 'RIFormer',
                                            NUM_STAGES)
        check_frozen_stages(frozen_stages, 'RIFormer', NUM_STAGES)
        super().__init__(
            arch=settings,
            in_channels=in_channels,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            drop_rate=drop_rate,
            drop_path_rate=drop_path_rate,
            out_indices=[network_index(i) for i in out_indices],
            frozen_stages=-1,  # mmpretrain's network-level freezing: off
            init_cfg=init_cfg,
            deploy=deploy)
        self.out_indices = out_indices
        self.network_out_indices = tuple(network_index(i) for i in out_indices)
        self.out_channels = tuple(settings['embed_dims'][i]
                                  for i in out_indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self._freeze_stages()

    @staticmethod
    def _check_arch(settings: dict) -> None:
        for field in ('layers', 'embed_dims', 'mlp_ratios'):
            if len(settings[field]) != NUM_STAGES:
                raise ValueError(f'RIFormer: arch field {field!r} needs '
                                 f'{NUM_STAGES} values (one per stage), got '
                                 f'{settings[field]!r}')
        dims = settings['embed_dims']
        if any(a == b for a, b in zip(dims[:-1], dims[1:])):
            # mmpretrain only inserts a down-sampling between stages whose
            # widths differ; equal widths would break the stride-2 pyramid.
            raise ValueError('RIFormer: arch embed_dims must change at every '
                             f'stage (each stage halves the resolution), got '
                             f'{dims!r}')

    def stage_modules(self) -> List[Union[nn.Module, List[nn.Module]]]:
        """``[stem, stage1..4]``; a stage owns the down-sampling into it."""
        stages = [self.patch_embed]
        for stage in range(NUM_STAGES):
            index = network_index(stage)
            modules = list(self.network[max(index - 1, 0):index + 1])
            if hasattr(self, f'norm{index}'):
                modules.append(getattr(self, f'norm{index}'))
            stages.append(modules)
        return stages

    def forward_tokens(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Run ``network`` on the stem output.

        Args:
            x (Tensor): (B, embed_dims[0], H/4, W/4).

        Returns:
            tuple[Tensor]: one normalised (B, C_i, H/2^(i+2), W/2^(i+2)) map
            per entry of ``out_indices``, in that order.
        """
        outs: Dict[int, torch.Tensor] = {}
        for index, block in enumerate(self.network):
            x = block(x)
            if index in self.network_out_indices:
                outs[index] = getattr(self, f'norm{index}')(x)
        return tuple(outs[index] for index in self.network_out_indices)

    def switch_to_deploy(self) -> None:
        """Fold every block's norm1 + affine token mixer into norm_reparam.

        In place and idempotent; the fused norms follow the module's current
        mode and are re-frozen where ``frozen_stages`` says so.
        """
        with torch.no_grad():
            super().switch_to_deploy()
        self.train(self.training)

    def convert_checkpoint(self, state_dict: dict) -> dict:
        """Fit an mmpretrain checkpoint (training or deploy form) to us.

        Strips a ``backbone.`` prefix when no prefix was selected, refuses a
        checkpoint of the other form (training vs deploy) with a clear error,
        and keeps output norms that classification checkpoints lack at their
        initialisation (see the class docstring).
        """
        if not any(
                k.startswith(('patch_embed.', 'network.'))
                for k in state_dict) and any(
                    k.startswith('backbone.') for k in state_dict):
            state_dict = select_prefix(state_dict, 'backbone.')
        fused = any('.norm_reparam.' in k for k in state_dict)
        unfused = any('.token_mixer.' in k for k in state_dict)
        if self.deploy and unfused and not fused:
            raise ValueError(
                'RIFormer(deploy=True) got a training-form checkpoint '
                '(norm1/token_mixer keys): build with deploy=False, load it, '
                'then call switch_to_deploy()')
        if not self.deploy and fused and not unfused:
            raise ValueError(
                'RIFormer(deploy=False) got a deploy checkpoint (norm_reparam '
                'keys, the token mixer is folded away): build with '
                'deploy=True')
        state_dict = self.drop_unbuilt_modules(
            state_dict, [
                f'norm{network_index(i)}'
                for i in range(NUM_STAGES) if i not in self.out_indices
            ], 'output norms of stages out_indices does not return')
        state_dict = self.keep_absent_modules(
            state_dict, [f'norm{i}' for i in self.network_out_indices],
            'classification checkpoints only carry norm6')
        return state_dict
