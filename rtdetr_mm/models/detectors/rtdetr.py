"""RT-DETR detector on top of mmdet's DINO."""
from typing import Dict, Optional, Tuple

import torch
from mmcv.cnn import ConvModule
from mmdet.models.detectors import DINO, DeformableDETR
from mmdet.registry import MODELS
from mmdet.structures import OptSampleList
from mmdet.utils import ConfigType, OptConfigType
from torch import Tensor, nn

from ..layers import RTDETRCdnQueryGenerator, RTDETRTransformerDecoder
from ..utils import switch_submodules_to_deploy


@MODELS.register_module()
class RTDETR(DINO):
    r"""`RT-DETR: DETRs Beat YOLOs on Real-time Object Detection
    <https://arxiv.org/abs/2304.08069>`_.

    A DINO-style two-stage detector (top-k encoder proposals, iterative box
    refinement, contrastive denoising). What RT-DETR changes compared with
    mmdet's :class:`DINO`:

    * The transformer encoder is the :class:`HybridEncoder` *neck*; the
      detector's ``forward_encoder`` is an identity. There are no padding
      masks, valid ratios or level embeddings: like the official model, the
      whole (padded) input is attended to.
    * ``input_proj``: a 1x1 conv + BN per level before the decoder.
    * ``pre_decoder``: the content queries are the top-k encoder memory
      features (detached), not a learned embedding.
    * The decoder is :class:`RTDETRTransformerDecoder` (box-MLP query
      position, ``eval_idx``), denoising uses
      :class:`RTDETRCdnQueryGenerator` and may be switched off
      (``dn_cfg=None``).

    Args:
        backbone (dict): Backbone config.
        neck (dict): :class:`HybridEncoder` config.
        decoder (dict): :class:`RTDETRTransformerDecoder` config
            (``num_layers``, ``layer_cfg``, ``eval_idx``).
        bbox_head (dict): :class:`RTDETRHead` config.
        num_queries (int): Queries selected from the encoder. Defaults to 300.
        num_feature_levels (int): Levels given to the decoder. Defaults to 3.
        dn_cfg (dict, optional): :class:`RTDETRCdnQueryGenerator` arguments
            (``label_noise_scale``, ``box_noise_scale``, ``group_cfg``);
            None disables denoising.
        train_cfg (dict): Training config of the head (the assigner).
        test_cfg (dict): Testing config of the head (``max_per_img``).
        data_preprocessor (dict): RT-DETR takes RGB in [0, 1] padded to /32.
        init_cfg (dict, optional): Initialisation config.

    Example:
        >>> # see configs/_base_/models/rtdetr_r50vd.py for a full config
        >>> from mmdet.registry import MODELS
        >>> import rtdetr_mm  # noqa: F401  (registers RTDETR)
    """

    decoder_type = RTDETRTransformerDecoder

    def __init__(self,
                 *args,
                 decoder: ConfigType,
                 bbox_head: ConfigType,
                 num_queries: int = 300,
                 num_feature_levels: int = 3,
                 dn_cfg: OptConfigType = None,
                 **kwargs) -> None:
        # Not super().__init__: DINO's runs CdnQueryGenerator(**dn_cfg), which
        # fails for dn_cfg=None (RT-DETR without denoising) and is not
        # RT-DETR's generator; everything else DINO adds is built below.
        DeformableDETR.__init__(
            self,
            *args,
            decoder=decoder,
            bbox_head=bbox_head,
            num_queries=num_queries,
            num_feature_levels=num_feature_levels,
            with_box_refine=True,
            as_two_stage=True,
            **kwargs)
        neck_channels = getattr(self.neck, 'out_channels', None)
        if neck_channels is None or len(neck_channels) != num_feature_levels:
            raise ValueError(
                f'RTDETR needs a neck with out_channels for '
                f'num_feature_levels={num_feature_levels} levels, got '
                f'{neck_channels}')
        self.input_proj = nn.ModuleList(
            self._input_projection(c) for c in neck_channels)
        self.dn_query_generator = None
        if dn_cfg is not None:
            dn_cfg = dict(dn_cfg)
            for key in ('num_classes', 'embed_dims', 'num_matching_queries'):
                if key in dn_cfg:
                    raise ValueError(f'dn_cfg must not set {key!r}: it is '
                                     'taken from the head and the detector')
            self.dn_query_generator = RTDETRCdnQueryGenerator(
                num_classes=self.bbox_head.num_classes,
                embed_dims=self.embed_dims,
                num_matching_queries=self.num_queries,
                **dn_cfg)

    def _input_projection(self, channels: int) -> nn.Module:
        """(B, channels, H, W) -> (B, embed_dims, H, W): 1x1 conv + BN."""
        return ConvModule(
            channels,
            self.embed_dims,
            1,
            norm_cfg=dict(type='BN'),
            act_cfg=None)

    def _init_layers(self) -> None:
        """Build the decoder (``decoder_type``) and the encoder-output
        projection (RT-DETR's ``enc_output``: Linear + LayerNorm)."""
        self.decoder = self.decoder_type(**self.decoder)
        self.embed_dims = self.decoder.embed_dims
        self.memory_trans_fc = nn.Linear(self.embed_dims, self.embed_dims)
        self.memory_trans_norm = nn.LayerNorm(self.embed_dims)

    def init_weights(self) -> None:
        """Initialise like RT-DETR: children (deformable attention, head)
        through their own ``init_weights``, xavier for ``enc_output`` and the
        query-position MLP; no xavier over the whole decoder (unlike DINO)."""
        super(DeformableDETR, self).init_weights()
        nn.init.xavier_uniform_(self.memory_trans_fc.weight)
        # the first two layers, as official (DEIM's 3-layer as_reg MLP keeps
        # the default init of its last one)
        for layer in self.decoder.ref_point_head.layers[:2]:
            nn.init.xavier_uniform_(layer.weight)

    def pre_transformer(
            self,
            mlvl_feats: Tuple[Tensor],
            batch_data_samples: OptSampleList = None) -> Tuple[Dict]:
        """Project and flatten the neck levels.

        Args:
            mlvl_feats (tuple[Tensor]): (bs, C_l, H_l, W_l) per level.
            batch_data_samples (list[DetDataSample], optional): Unused.

        Returns:
            tuple[dict]: ``dict(feat, spatial_shapes)`` for the encoder step
            and ``dict(spatial_shapes, level_start_index)`` for the decoder;
            ``feat`` is (bs, sum(H_l*W_l), dim).
        """
        feats, shapes = [], []
        for proj, feat in zip(self.input_proj, mlvl_feats):
            feat = proj(feat)
            shapes.append(feat.shape[2:])
            feats.append(feat.flatten(2).transpose(1, 2))  # (bs, HW, dim)
        memory = torch.cat(feats, 1)
        spatial_shapes = torch.as_tensor(
            shapes, dtype=torch.long, device=memory.device)
        level_start_index = torch.cat((spatial_shapes.new_zeros(
            (1, )), spatial_shapes.prod(1).cumsum(0)[:-1]))
        return (dict(feat=memory, spatial_shapes=spatial_shapes),
                dict(
                    spatial_shapes=spatial_shapes,
                    level_start_index=level_start_index))

    def forward_encoder(self, feat: Tensor, spatial_shapes: Tensor) -> Dict:
        """Identity: the HybridEncoder neck is RT-DETR's encoder.

        Returns:
            dict: ``memory`` (bs, sum(H*W), dim) and ``spatial_shapes``.
        """
        return dict(memory=feat, spatial_shapes=spatial_shapes)

    def pre_decoder(
        self,
        memory: Tensor,
        spatial_shapes: Tensor,
        batch_data_samples: OptSampleList = None,
    ) -> Tuple[Dict]:
        """Select the top-k encoder proposals as decoder queries.

        Anchors (grid centres, size ``0.05 * 2**level``, invalid within 0.01
        of the border) and the ``memory_trans`` projection are mmdet's
        ``gen_encoder_output_proposals``, which equals RT-DETR's
        ``_generate_anchors`` + ``enc_output`` when there is no padding mask.

        Args:
            memory (Tensor): (bs, sum(H*W), dim).
            spatial_shapes (Tensor): (num_levels, 2) as (H, W).
            batch_data_samples (list[DetDataSample], optional): Ground truth
                for the denoising queries (training only).

        Returns:
            tuple[dict]: decoder inputs (``query``, ``memory``,
            ``reference_points`` (bs, num_queries_total, 4) in [0, 1],
            ``dn_mask``) and head inputs (``enc_outputs_class``,
            ``enc_outputs_coord`` of the top-k proposals and ``dn_meta``, in
            training).
        """
        num_layers = self.decoder.num_layers
        output_memory, output_proposals = self.gen_encoder_output_proposals(
            memory, None, spatial_shapes)
        enc_outputs_class = self.bbox_head.cls_branches[num_layers](
            output_memory)
        enc_outputs_coord_unact = self.bbox_head.reg_branches[num_layers](
            output_memory) + output_proposals

        topk_indices = torch.topk(
            enc_outputs_class.max(-1)[0], k=self.num_queries, dim=1)[1]
        topk_score = torch.gather(
            enc_outputs_class, 1,
            topk_indices.unsqueeze(-1).repeat(1, 1,
                                              enc_outputs_class.size(-1)))
        topk_coords_unact = torch.gather(
            enc_outputs_coord_unact, 1,
            topk_indices.unsqueeze(-1).repeat(1, 1, 4))
        topk_coords = topk_coords_unact.sigmoid()
        # RT-DETR: content queries are the selected memory features
        query = torch.gather(
            output_memory, 1,
            topk_indices.unsqueeze(-1).repeat(1, 1, self.embed_dims)).detach()
        reference_points = topk_coords_unact.detach()

        dn_mask, dn_meta = None, None
        if self.training and self.dn_query_generator is not None:
            dn_label_query, dn_bbox_query, dn_mask, dn_meta = \
                self.dn_query_generator(batch_data_samples)
            query = torch.cat([dn_label_query, query], dim=1)
            reference_points = torch.cat([dn_bbox_query, reference_points],
                                         dim=1)
        decoder_inputs_dict = dict(
            query=query,
            memory=memory,
            reference_points=reference_points.sigmoid(),
            dn_mask=dn_mask)
        head_inputs_dict = dict(
            enc_outputs_class=topk_score,
            enc_outputs_coord=topk_coords,
            dn_meta=dn_meta) if self.training else dict()
        return decoder_inputs_dict, head_inputs_dict

    def forward_decoder(self,
                        query: Tensor,
                        memory: Tensor,
                        reference_points: Tensor,
                        spatial_shapes: Tensor,
                        level_start_index: Tensor,
                        dn_mask: Optional[Tensor] = None,
                        **kwargs) -> Dict:
        """Run the decoder (``decoder_type``) with the head's branches.

        Args:
            query (Tensor): (bs, num_queries_total, dim).
            memory (Tensor): (bs, sum(H*W), dim).
            reference_points (Tensor): (bs, num_queries_total, 4) in [0, 1].
            spatial_shapes (Tensor): (num_levels, 2).
            level_start_index (Tensor): (num_levels, ).
            dn_mask (Tensor, optional): (num_queries_total,
                num_queries_total), True = blocked.

        Returns:
            dict: the decoder's outputs, for RT-DETR ``hidden_states``
            (num_run_layers, bs, num_queries_total, dim) and ``references``
            (list of (bs, num_queries_total, 4)).
        """
        outputs = self.decoder(
            query=query,
            value=memory,
            self_attn_mask=dn_mask,
            reference_points=reference_points,
            spatial_shapes=spatial_shapes,
            level_start_index=level_start_index,
            **self.decoder_branches())
        if self.training and self.dn_query_generator is not None:
            # keep the label embedding in the graph when a batch has no
            # ground truth (no denoising queries), as mmdet's DINO does
            outputs['hidden_states'] = outputs['hidden_states'] + \
                self.dn_query_generator.label_embedding.weight[0, 0] * 0.0
        return outputs

    def decoder_branches(self) -> Dict[str, object]:
        """The head's parts the decoder calls while it refines boxes."""
        return dict(reg_branches=self.bbox_head.reg_branches)

    def switch_to_deploy(self) -> None:
        """Re-parameterise for inference, in place (idempotent): the neck's
        RepVGG blocks and the backbone's ``switch_to_deploy`` if it has one.
        """
        switch_submodules_to_deploy(self)
