"""HybridEncoder: RT-DETR's neck (AIFI + CCFM), and D-FINE's variant."""
import copy
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmdet.models.layers import DetrTransformerEncoder
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptMultiConfig
from mmengine.model import BaseModule
from torch import Tensor, nn

from ..layers import CSPRepLayer, RepNCSPELAN4, SCDown
from ..utils import switch_submodules_to_deploy


@MODELS.register_module()
class HybridEncoder(BaseModule):
    """Efficient hybrid encoder of RT-DETR (arXiv:2304.08069).

    1. ``input_proj``: a 1x1 conv + BN per level to ``hidden_dim`` channels.
    2. AIFI (intra-scale feature interaction): a transformer encoder (mmdet's
       ``DetrTransformerEncoder``: post-norm, GELU FFN) over the levels in
       ``use_encoder_idx`` (the stride-32 one) with a fixed 2-D sin-cos
       position embedding.
    3. CCFM (cross-scale feature fusion): a top-down pass (1x1 lateral conv,
       nearest 2x upsampling, concat, fusion block) and a bottom-up pass
       (stride-2 down-sampling, concat, fusion block).

    D-FINE (arXiv:2410.13842) changes only the CCFM blocks:
    ``fusion_block='gelan', downsample='scdown', lateral_act=False``. Its
    published sizes (``in_channels`` from HGNetv2; ``use_encoder_idx=[1]``
    and strides 16, 32 for N, else ``[2]``):

    ====  ====================  ======  ====  =========  ==========
    size  in_channels           hidden  FFN   expansion  depth_mult
    ====  ====================  ======  ====  =========  ==========
    N     [512, 1024]           128     512   0.34       0.5
    S     [256, 512, 1024]      256     1024  0.5        0.34
    M     [384, 768, 1536]      256     1024  1.0        0.67
    L     [512, 1024, 2048]     256     1024  1.0        1.0
    X     [512, 1024, 2048]     384     2048  1.0        1.0
    ====  ====================  ======  ====  =========  ==========

    Args:
        in_channels (Sequence[int]): Channels of the input levels (strides 8,
            16, 32 for RT-DETR), e.g. ``[512, 1024, 2048]`` for ResNet-50.
        hidden_dim (int): Channels of every output level. Defaults to 256.
        use_encoder_idx (Sequence[int]): Levels that go through AIFI.
            Defaults to ``[2]`` (the last one).
        num_encoder_layers (int): Transformer layers per AIFI level; 0
            disables AIFI. Defaults to 1.
        encoder_layer (dict): Config of mmdet's
            ``DetrTransformerEncoderLayer``; defaults to 8 heads, FFN 1024,
            GELU, dropout 0. Its ``embed_dims`` are set to ``hidden_dim``.
        pe_temperature (float): Temperature of the position embedding.
            Defaults to 10000.
        expansion (float): Width ratio of the fusion blocks: CSPRep hidden
            width ``int(expansion * hidden_dim)`` (0.5 for R18/R34, 1.0 for
            R50/R101); GELAN branch width
            ``round(expansion * hidden_dim // 2)``. Defaults to 1.0.
        depth_mult (float): RepVGG blocks per CSPRep layer are
            ``round(3 * depth_mult)``. Defaults to 1.0.
        fusion_block (str): ``'csp_rep'`` (RT-DETR's :class:`CSPRepLayer`)
            or ``'gelan'`` (D-FINE's :class:`RepNCSPELAN4`, mid width
            ``2 * hidden_dim``). Defaults to ``'csp_rep'``.
        downsample (str): ``'conv'`` (3x3 stride-2 conv-BN-act) or
            ``'scdown'`` (D-FINE's :class:`SCDown`). Defaults to ``'conv'``.
        lateral_act (bool): Whether the 1x1 lateral convs end with
            ``act_cfg`` (RT-DETR) or not (D-FINE). Defaults to True.
        norm_cfg (dict): Norm of the conv layers. Defaults to BN.
        act_cfg (dict): Activation of the CCFM conv layers. Defaults to SiLU.
        deploy (bool): Build the CCFM blocks fused (see
            :meth:`switch_to_deploy`). Defaults to False.
        init_cfg (dict, optional): Initialisation config.

    Example:
        >>> import torch
        >>> neck = HybridEncoder(in_channels=[16, 32, 64], hidden_dim=32,
        ...                      encoder_layer=dict(
        ...                          self_attn_cfg=dict(num_heads=4),
        ...                          ffn_cfg=dict(feedforward_channels=64)))
        >>> feats = [torch.rand(1, c, 64 // s, 64 // s)
        ...          for c, s in zip([16, 32, 64], [8, 16, 32])]
        >>> [tuple(o.shape) for o in neck(feats)]
        [(1, 32, 8, 8), (1, 32, 4, 4), (1, 32, 2, 2)]
    """

    def __init__(self,
                 in_channels: Sequence[int] = (512, 1024, 2048),
                 hidden_dim: int = 256,
                 use_encoder_idx: Sequence[int] = (2, ),
                 num_encoder_layers: int = 1,
                 encoder_layer: ConfigType = dict(
                     self_attn_cfg=dict(num_heads=8, attn_drop=0.0),
                     ffn_cfg=dict(
                         feedforward_channels=1024,
                         ffn_drop=0.0,
                         act_cfg=dict(type='GELU'))),
                 pe_temperature: float = 10000.,
                 expansion: float = 1.0,
                 depth_mult: float = 1.0,
                 fusion_block: str = 'csp_rep',
                 downsample: str = 'conv',
                 lateral_act: bool = True,
                 norm_cfg: ConfigType = dict(type='BN'),
                 act_cfg: ConfigType = dict(type='SiLU'),
                 deploy: bool = False,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if isinstance(in_channels, int) or len(in_channels) < 2:
            raise ValueError('in_channels must list the channels of at least '
                             f'two input levels, got {in_channels}')
        num_levels = len(in_channels)
        for idx in use_encoder_idx:
            if not 0 <= idx < num_levels:
                raise ValueError(
                    f'use_encoder_idx entries must be in [0, {num_levels - 1}]'
                    f' for {num_levels} input levels, got {use_encoder_idx}')
        if hidden_dim % 4 != 0:
            raise ValueError('hidden_dim must be divisible by 4 for the 2-D '
                             f'sin-cos position embedding, got {hidden_dim}')
        if fusion_block not in ('csp_rep', 'gelan'):
            raise ValueError("fusion_block must be 'csp_rep' (RT-DETR) or "
                             f"'gelan' (D-FINE), got {fusion_block!r}")
        if downsample not in ('conv', 'scdown'):
            raise ValueError("downsample must be 'conv' (RT-DETR) or "
                             f"'scdown' (D-FINE), got {downsample!r}")
        self.in_channels = list(in_channels)
        self.hidden_dim = hidden_dim
        self.use_encoder_idx = list(use_encoder_idx)
        self.num_encoder_layers = num_encoder_layers
        self.pe_temperature = pe_temperature
        self.out_channels = [hidden_dim] * num_levels

        self.input_proj = nn.ModuleList([
            ConvModule(c, hidden_dim, 1, norm_cfg=norm_cfg, act_cfg=None)
            for c in self.in_channels
        ])

        layer_cfg = copy.deepcopy(encoder_layer)
        layer_cfg.setdefault('self_attn_cfg', {})['embed_dims'] = hidden_dim
        layer_cfg.setdefault('ffn_cfg', {})['embed_dims'] = hidden_dim
        self.encoder = nn.ModuleList([
            DetrTransformerEncoder(
                num_layers=num_encoder_layers,
                layer_cfg=copy.deepcopy(layer_cfg))
            for _ in self.use_encoder_idx
        ]) if num_encoder_layers > 0 else nn.ModuleList()

        num_blocks = round(3 * depth_mult)

        def conv(kernel_size: int, stride: int, act: bool) -> ConvModule:
            return ConvModule(
                hidden_dim,
                hidden_dim,
                kernel_size,
                stride,
                kernel_size // 2,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg if act else None)

        def fusion() -> nn.Module:  # 2C (concat) -> C
            if fusion_block == 'gelan':
                return RepNCSPELAN4(
                    2 * hidden_dim,
                    hidden_dim,
                    2 * hidden_dim,
                    round(expansion * hidden_dim // 2),
                    num_blocks,
                    norm_cfg,
                    act_cfg,
                    deploy=deploy)
            return CSPRepLayer(
                2 * hidden_dim,
                hidden_dim,
                num_blocks,
                expansion,
                norm_cfg,
                act_cfg,
                deploy=deploy)

        def down() -> nn.Module:  # (B, C, H, W) -> (B, C, H / 2, W / 2)
            if downsample == 'scdown':
                return SCDown(
                    hidden_dim, hidden_dim, 3, 2, norm_cfg, deploy=deploy)
            return conv(3, 2, act=True)

        self.lateral_convs = nn.ModuleList()
        self.fpn_blocks = nn.ModuleList()
        self.downsample_convs = nn.ModuleList()
        self.pan_blocks = nn.ModuleList()
        for _ in range(num_levels - 1):
            self.lateral_convs.append(conv(1, 1, act=lateral_act))
            self.fpn_blocks.append(fusion())
            self.downsample_convs.append(down())
            self.pan_blocks.append(fusion())

    @staticmethod
    def build_2d_sincos_position_embedding(
            w: int,
            h: int,
            embed_dim: int = 256,
            temperature: float = 10000.) -> Tensor:
        """Fixed 2-D sin-cos embedding, laid out exactly as RT-DETR's.

        RT-DETR builds its grid with ``meshgrid(grid_w, grid_h,
        indexing='ij')``, so position ``i`` of the flattened (row-major
        ``H x W``) feature gets ``x = i // h`` and ``y = i % h``; we keep that
        layout because the released weights were trained with it.

        Returns:
            Tensor: (1, w*h, embed_dim).
        """
        grid_w = torch.arange(int(w), dtype=torch.float32)
        grid_h = torch.arange(int(h), dtype=torch.float32)
        grid_w, grid_h = torch.meshgrid(grid_w, grid_h, indexing='ij')
        pos_dim = embed_dim // 4
        omega = torch.arange(pos_dim, dtype=torch.float32) / pos_dim
        omega = 1. / (temperature**omega)
        out_w = grid_w.flatten()[..., None] @ omega[None]
        out_h = grid_h.flatten()[..., None] @ omega[None]
        return torch.cat(
            [out_w.sin(), out_w.cos(),
             out_h.sin(), out_h.cos()], dim=1)[None]

    def forward(self, feats: Sequence[Tensor]) -> Tuple[Tensor]:
        """Encode and fuse the backbone levels.

        Args:
            feats (Sequence[Tensor]): One (B, in_channels[i], H_i, W_i) map
                per level, strides doubling from level to level.

        Returns:
            tuple[Tensor]: One (B, hidden_dim, H_i, W_i) map per level.
        """
        if len(feats) != len(self.in_channels):
            raise ValueError(
                f'HybridEncoder got {len(feats)} feature maps but was built '
                f'for {len(self.in_channels)} (in_channels='
                f'{self.in_channels}); match the backbone out_indices')
        got = [f.shape[1] for f in feats]
        if got != self.in_channels:
            raise ValueError(
                f'HybridEncoder expects input channels {self.in_channels} '
                f'(in_channels) but the backbone gives {got}; set '
                'neck.in_channels to the backbone out_channels')
        proj_feats = [proj(f) for proj, f in zip(self.input_proj, feats)]

        # AIFI on the selected levels
        for encoder, idx in zip(self.encoder, self.use_encoder_idx):
            b, c, h, w = proj_feats[idx].shape
            src = proj_feats[idx].flatten(2).permute(0, 2, 1)  # (B, HW, C)
            pos = self.build_2d_sincos_position_embedding(
                w, h, self.hidden_dim, self.pe_temperature).to(src)
            memory = encoder(src, query_pos=pos, key_padding_mask=None)
            # (B, HW, C) -> (B, C, H, W)
            proj_feats[idx] = memory.permute(0, 2, 1).reshape(b, c, h,
                                                              w).contiguous()

        # CCFM top-down: from the coarsest level to the finest
        num_levels = len(self.in_channels)
        inner_outs = [proj_feats[-1]]
        for i, idx in enumerate(range(num_levels - 1, 0, -1)):
            feat_high = self.lateral_convs[i](inner_outs[0])
            inner_outs[0] = feat_high
            upsampled = F.interpolate(
                feat_high, scale_factor=2., mode='nearest')
            inner_outs.insert(
                0,
                self.fpn_blocks[i](torch.cat([upsampled, proj_feats[idx - 1]],
                                             dim=1)))

        # CCFM bottom-up
        outs = [inner_outs[0]]
        for i in range(num_levels - 1):
            downsampled = self.downsample_convs[i](outs[-1])
            outs.append(self.pan_blocks[i](torch.cat(
                [downsampled, inner_outs[i + 1]], dim=1)))
        return tuple(outs)

    def switch_to_deploy(self) -> None:
        """Fuse the CCFM blocks in place (idempotent): the RepVGG blocks, and
        with ``'gelan'``/``'scdown'`` also their conv-BN pairs."""
        switch_submodules_to_deploy(self)
