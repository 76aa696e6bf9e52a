"""MobileNetV4 backbone (Qin et al., 2024) built on timm's implementation.

timm (``timm/models/mobilenetv3.py``) implements MobileNetV4 block for block
as the official TensorFlow specs and ships the only published ImageNet
weights, so this module does not re-implement any block: it creates the timm
model, keeps its stem and stages under timm's own attribute names
(``conv_stem``, ``bn1``, ``blocks``) and drops the classification head.
Checkpoints in timm's layout therefore load without any key mapping.

How timm's stages map onto the pyramid (read from timm's ``feature_info``)::

    pyramid stage   stride   timm modules
    stem            2        conv_stem, bn1
    1               4        blocks.0
    2               8        blocks.1
    3               16       blocks.2
    4               32       blocks.3            (TF endpoint, default)
                             blocks.3, blocks.4  (``with_head_conv=True``)

``blocks.4`` is a single 1x1 conv + BN + act to 960 channels. The official
TF endpoints of MobileNetV4 are the last inverted-bottleneck block of each
stage (C5 = ``blocks.3``), while timm's ``features_only`` mode taps the
stride-32 map after ``blocks.4``; both are offered, the TF endpoint is the
default.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import timm
import torch
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from mmengine.runner.checkpoint import CheckpointLoader
from timm.layers import BatchNormAct2d, ConvNormAct, MultiQueryAttention2d
from timm.models._efficientnet_blocks import (ConvBnAct, EdgeResidual,
                                              MobileAttention)
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..utils import (PyramidBackboneMixin, arch_table, check_frozen_stages,
                     fuse_bn_conv, fuse_conv_norm_in, normalize_out_indices,
                     resolve_arch)

TIMM_HUB_SCHEME = 'timm://'

# (module type, ((conv path, norm path), ...)): pairs applied back to back in
# the type's forward, so the norm folds exactly into the conv before it.
# Paths that a block instance lacks (e.g. no kv down-sampling) are skipped.
_CONV_NORM_PAIRS = (
    (ConvNormAct, (('conv', 'bn'), )),
    (ConvBnAct, (('conv', 'bn1'), )),
    (EdgeResidual, (('conv_exp', 'bn1'), ('conv_pwl', 'bn2'))),
    (MultiQueryAttention2d, (('key.down_conv', 'key.norm'), ('value.down_conv',
                                                             'value.norm'))),
)


def _without_norm(norm: nn.Module) -> nn.Module:
    """What remains of a folded norm layer: timm's fused activation, if any."""
    if isinstance(norm, BatchNormAct2d):
        # BatchNormAct2d applies batch norm -> drop -> act; keep the last two.
        return nn.Sequential(norm.drop, norm.act)
    return nn.Identity()


def _prenorm_is_foldable(block: MobileAttention) -> bool:
    """Whether every consumer of the block's pre-norm is an unpadded 1x1 conv.

    The query, key and value projections are; a key/value down-sampling
    depthwise conv is padded with zeros (folding would change the borders),
    and so is a strided query (pooling + its own norm first).
    """
    attn = block.attn
    return (isinstance(attn, MultiQueryAttention2d)
            and isinstance(block.norm, _BatchNorm) and attn.kv_stride == 1
            and not attn.has_query_strides)


@CheckpointLoader.register_scheme(prefixes=TIMM_HUB_SCHEME)
def load_from_timm_hub(filename: str,
                       map_location=None) -> Dict[str, torch.Tensor]:
    """Fetch a timm model's pretrained weights by name: ``timm://<name>``.

    ``<name>`` is a timm model name with an optional pretrained tag, e.g.
    ``timm://mobilenetv4_conv_small.e2400_r224_in1k``. timm downloads the
    file from the Hugging Face hub, or reads it from the local Hugging Face
    cache (``~/.cache/huggingface``, ``HF_HOME``) when it is there already.
    Registered as an mmengine checkpoint scheme, so it works wherever a
    checkpoint path does (``init_cfg``, ``load_from``).

    Returns:
        The state dict of the full timm model (classifier included).

    Raises:
        ValueError: unknown model name or pretrained tag.
        RuntimeError: the weights could not be fetched (e.g. offline with an
            empty cache), with what to do instead.
    """
    name = filename[len(TIMM_HUB_SCHEME):]
    arch = name.split('.', 1)[0]
    if not timm.is_model(arch):
        raise ValueError(
            f'{filename}: timm has no model {arch!r}; MobileNetV4 names are '
            f'{timm.list_models("mobilenetv4_*")}')
    tags = timm.list_pretrained(f'{arch}.*')
    if '.' in name and name not in tags:
        raise ValueError(f'{filename}: timm has no pretrained weights '
                         f'{name!r}; available for {arch!r}: {tags}')
    try:
        model = timm.create_model(name, pretrained=True)
    except Exception as error:  # network/cache errors of any library
        raise RuntimeError(
            f'could not fetch timm weights {name!r} from the Hugging Face hub '
            f'or its local cache ({type(error).__name__}: {error}). Offline? '
            'On a machine with network access, run '
            f'`timm.create_model({name!r}, pretrained=True)` once to fill the '
            'Hugging Face cache (~/.cache/huggingface, or HF_HOME; with '
            'HF_HUB_OFFLINE=1 timm reads it without network retries), or '
            'save the model\'s state_dict() with torch.save and pass that '
            'file as the checkpoint instead.') from error
    return {
        k: v.to(map_location or 'cpu')
        for k, v in model.state_dict().items()
    }


@MODELS.register_module()
class MobileNetV4(PyramidBackboneMixin, BaseModule):
    """MobileNetV4 backbone, the timm implementation as a pyramid backbone.

    Paper: `MobileNetV4 - Universal Models for the Mobile Ecosystem
    <https://arxiv.org/abs/2404.10518>`_. The blocks are timm's (Universal
    Inverted Bottleneck, FusedIB, Mobile MQA), created with
    ``timm.create_model``; the state dict keeps timm's key layout.

    Args:
        arch (str | dict): a key of ``arch_settings`` (``conv_small``,
            ``conv_medium``, ``conv_large``, ``hybrid_medium``,
            ``hybrid_large`` and timm's other variants: ``conv_small_035``,
            ``conv_small_050``, ``conv_aa_medium``, ``conv_blur_medium``,
            ``conv_aa_large``, ``hybrid_medium_075``, ``hybrid_large_075``),
            or a dict with the key ``timm_model`` (a timm MobileNetV4 model
            name). The channels are read from the model timm builds.
            Defaults to ``'conv_small'``.
        out_indices (Sequence[int]): pyramid stages to return, 0..3 at
            strides 4/8/16/32 (negatives count from the end).
            Defaults to ``(1, 2, 3)``.
        with_head_conv (bool): if True, stage 4 also runs timm's 1x1 conv to
            960 channels (``blocks.4``, the stride-32 map of timm's
            ``features_only``) and returns its output; if False, stage 4 ends
            at the official TF endpoint, the last inverted-bottleneck block
            (C5 = 128/256/512/256/512 channels for the five main archs).
            Defaults to False.
        frozen_stages (int): -1 freezes nothing, 0 the stem
            (``conv_stem`` + ``bn1``), k the stem and stages 1..k
            (``blocks.0`` .. ``blocks.{k-1}``). Defaults to -1.
        norm_eval (bool): keep BatchNorm layers in eval mode while
            training. Defaults to False.
        drop_path_rate (float): stochastic depth rate, timm's linear
            schedule over all blocks. Defaults to 0.
        deploy (bool): build the inference form of :meth:`switch_to_deploy`
            directly, to load a checkpoint saved after the switch.
            Defaults to False.
        init_cfg (dict, optional): ``dict(type='Pretrained',
            checkpoint=..., prefix=...)`` loads a checkpoint in timm's key
            layout: a local file or URL of a ``torch.save``'d state dict
            (wrapped or not), or ``'timm://<timm model name>[.<tag>]'`` to
            ask timm's Hugging Face hub (see :func:`load_from_timm_hub`).
            timm's classifier head (``conv_head``, ``norm_head``,
            ``classifier``, and ``blocks.4`` unless ``with_head_conv``) is
            ignored silently. Defaults to None.

    Inputs:
        x (Tensor): images, shape (B, 3, H, W), any H and W (the attention of
            the hybrid archs handles non-square inputs).

    Outputs:
        tuple[Tensor]: one map per ``out_indices``, shape
        (B, out_channels[i], ceil(H / s), ceil(W / s)), s = 4, 8, 16, 32.

    Example:
        >>> import torch
        >>> from rtdetr_mm.models.backbones.mobilenetv4 import MobileNetV4
        >>> model = MobileNetV4('conv_small').eval()
        >>> model.out_channels
        (64, 96, 128)
        >>> outs = model(torch.rand(1, 3, 224, 320))
        >>> [tuple(out.shape) for out in outs]
        [(1, 64, 28, 40), (1, 96, 14, 20), (1, 128, 7, 10)]
    """
    # arch -> timm's model; the channels are read from the model it builds
    arch_settings = arch_table(
        ('timm_model', ), {
            arch: (f'mobilenetv4_{arch}', )
            for arch in ('conv_small', 'conv_medium', 'conv_large',
                         'hybrid_medium', 'hybrid_large', 'conv_small_035',
                         'conv_small_050', 'conv_aa_medium',
                         'conv_blur_medium', 'conv_aa_large',
                         'hybrid_medium_075', 'hybrid_large_075')
        })
    # timm's classification head; blocks.4 is added when it is not used.
    head_keys = r'^(conv_head|norm_head|classifier)\.'

    def __init__(self,
                 arch: Union[str, dict] = 'conv_small',
                 out_indices: Sequence[int] = (1, 2, 3),
                 with_head_conv: bool = False,
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 drop_path_rate: float = 0.,
                 deploy: bool = False,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        family = type(self).__name__
        settings = resolve_arch(arch, self.arch_settings, family)
        timm_model = settings['timm_model']
        if not (isinstance(timm_model, str)
                and timm_model.startswith('mobilenetv4_')
                and timm.is_model(timm_model)):
            raise ValueError(
                f'{family}: timm_model={timm_model!r} is not a timm '
                'MobileNetV4 model; timm has '
                f'{timm.list_models("mobilenetv4_*")}')
        if not 0 <= drop_path_rate < 1:
            raise ValueError(f'{family}: drop_path_rate={drop_path_rate!r} '
                             'must be in [0, 1)')
        self.out_indices = normalize_out_indices(out_indices, family)
        self.frozen_stages = check_frozen_stages(frozen_stages, family)
        self.norm_eval = norm_eval
        self.with_head_conv = with_head_conv
        self.deploy = False

        # timm builds the whole classifier; keep the trunk under timm's names
        # so timm checkpoints load unchanged, drop the head.
        model = timm.create_model(
            timm_model, pretrained=False, drop_path_rate=drop_path_rate)
        # stages 1..3: timm's feature taps blocks.0..2; stage 4: the TF
        # endpoint that blocks.4 (the 1x1 head conv, timm's last tap) reads
        taps = {tap['module']: tap['num_chs'] for tap in model.feature_info}
        head_conv = model.blocks[4][0].conv
        channels = [taps[f'blocks.{i}'] for i in range(3)] + [
            head_conv.out_channels if with_head_conv else head_conv.in_channels
        ]
        self.out_channels = tuple(channels[i] for i in self.out_indices)
        self.conv_stem = model.conv_stem
        self.bn1 = model.bn1
        self.blocks = model.blocks if with_head_conv else model.blocks[:4]
        # pyramid stage k (1..4) ends after blocks[stage_ends[k - 1]]
        self.stage_ends = (0, 1, 2, len(self.blocks) - 1)
        self.ignored_checkpoint_keys = (
            self.head_keys if with_head_conv else self.head_keys +
            r'|^blocks\.4\.')

        if deploy:
            self.switch_to_deploy()
        self._freeze_stages()

    def stage_modules(self) -> List[Union[nn.Module, List[nn.Module]]]:
        """``[stem, stage1, ..., stage4]`` in the order they are frozen."""
        return [[self.conv_stem, self.bn1], self.blocks[0], self.blocks[1],
                self.blocks[2],
                list(self.blocks[3:])]

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """(B, 3, H, W) -> one (B, C_i, H / s_i, W / s_i) map per out index."""
        x = self.bn1(self.conv_stem(x))  # (B, C0, H / 2, W / 2)
        stage_outs = []  # pyramid stages 1..4, (B, C_k, H / 2^(k+1), ...)
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in self.stage_ends:
                stage_outs.append(x)
        return tuple(stage_outs[i] for i in self.out_indices)

    @torch.no_grad()
    def switch_to_deploy(self) -> None:
        """Fold every BatchNorm into its convolution, in place; idempotent.

        Each conv -> BN pair becomes one conv with a bias; timm's
        ``BatchNormAct2d`` keeps its activation. The pre-norm of an attention
        block folds into the 1x1 query/key/value projections that read it;
        where keys and values are down-sampled by a zero-padded depthwise conv
        (the ``v2`` MQA blocks of the hybrid archs' stage 3) that pre-norm
        stays a BatchNorm, as folding it would change the border outputs. In
        eval mode the outputs are unchanged up to float rounding.
        """
        if self.deploy:
            return
        fuse_conv_norm_in(self, 'conv_stem', 'bn1', _without_norm(self.bn1))
        for module in list(self.blocks.modules()):
            for block_type, pairs in _CONV_NORM_PAIRS:
                if isinstance(module, block_type):
                    for conv_path, norm_path in pairs:
                        self._fold_pair(module, conv_path, norm_path)
            if isinstance(module,
                          MobileAttention) and _prenorm_is_foldable(module):
                for branch in (module.attn.query, module.attn.key,
                               module.attn.value):
                    branch.proj = fuse_bn_conv(module.norm, branch.proj)
                module.norm = _without_norm(module.norm)
        self.deploy = True
        self._freeze_stages()

    @staticmethod
    def _fold_pair(module: nn.Module, conv_path: str, norm_path: str) -> None:
        """Fuse ``module.<conv_path>`` with the norm that follows it."""
        try:
            norm = module.get_submodule(norm_path)
        except AttributeError:  # this instance lacks the optional pair
            return
        if not isinstance(norm, _BatchNorm):  # ConvNormAct(apply_norm=False)
            return
        fuse_conv_norm_in(module, conv_path, norm_path, _without_norm(norm))
