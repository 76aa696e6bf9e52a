"""RT-DETR head: box/class branches, losses and predictions."""
import copy
from typing import Dict, Optional, Tuple

import torch.nn as nn
from mmcv.cnn import Linear, build_activation_layer
from mmdet.models.dense_heads import DINOHead
from mmdet.registry import MODELS
from mmengine.model import bias_init_with_prob, constant_init
from torch import Tensor


@MODELS.register_module()
class RTDETRHead(DINOHead):
    """Head of `RT-DETR <https://arxiv.org/abs/2304.08069>`_.

    mmdet's :class:`DINOHead` already does what RT-DETR's criterion does:
    Hungarian matching of every decoder layer and of the top-k encoder
    proposals, L1 + GIoU box losses, and the contrastive denoising losses
    normalised by ``num_gts * num_groups``. RT-DETR changes:

    * the classification loss is a varifocal loss on IoU-aware targets
      (:class:`RTDETRVarifocalLoss`; it takes the ``(labels, ious)`` target
      that ``DETRHead`` builds for a :class:`QualityFocalLoss`);
    * the branches are initialised like RT-DETR (class bias for a prior of
      0.01, the last box layer zero, no ``-2`` size bias);
    * denoising can be switched off (``dn_meta`` is None);
    * the box MLPs' activation is configurable (``mlp_act_cfg``: DEIM's
      models use SiLU).

    ``cls_branches[-1]``/``reg_branches[-1]`` are RT-DETR's
    ``enc_score_head``/``enc_bbox_head`` (the detector sets
    ``num_pred_layer = num_decoder_layers + 1``). In eval mode the decoder
    stops after its ``eval_idx`` layer, so predictions come from that layer.

    Args:
        num_classes (int): Number of object classes.
        embed_dims (int): Channels of the decoder queries. Defaults to 256.
        num_reg_fcs (int): Hidden layers of the box MLP. Defaults to 2.
        sync_cls_avg_factor (bool): Average the number of boxes over GPUs,
            as RT-DETR does. Defaults to True.
        loss_cls (dict): Defaults to ``RTDETRVarifocalLoss`` (alpha 0.75,
            gamma 2, weight 1).
        loss_bbox (dict): Defaults to L1 with weight 5.
        loss_iou (dict): Defaults to GIoU with weight 2.
        train_cfg (dict): Hungarian assigner with focal class cost (weight 2,
            alpha 0.25, gamma 2), L1 cost 5 and GIoU cost 2.
        test_cfg (dict): ``max_per_img`` top-k over queries x classes.
            Defaults to 300.
        mlp_act_cfg (dict): Activation between the layers of every box
            branch. Defaults to ReLU (RT-DETR, D-FINE; DEIM: SiLU).
        init_cfg (dict, optional): Initialisation config.
        **kwargs: ``share_pred_layer``, ``num_pred_layer`` and
            ``as_two_stage``, set by the :class:`RTDETR` detector.

    Example:
        >>> import torch
        >>> head = RTDETRHead(num_classes=3, embed_dims=32, num_pred_layer=2,
        ...                   as_two_stage=True)
        >>> hidden = torch.rand(1, 2, 5, 32)   # (layers, bs, queries, dim)
        >>> refs = [torch.rand(2, 5, 4), torch.rand(2, 5, 4)]
        >>> cls, box = head(hidden, refs)
        >>> tuple(cls.shape), tuple(box.shape)
        ((1, 2, 5, 3), (1, 2, 5, 4))
    """

    def __init__(
            self,
            num_classes: int,
            embed_dims: int = 256,
            num_reg_fcs: int = 2,
            sync_cls_avg_factor: bool = True,
            loss_cls: dict = dict(
                type='RTDETRVarifocalLoss',
                use_sigmoid=True,
                alpha=0.75,
                gamma=2.0,
                loss_weight=1.0),
            loss_bbox: dict = dict(type='L1Loss', loss_weight=5.0),
            loss_iou: dict = dict(type='GIoULoss', loss_weight=2.0),
            train_cfg: dict = dict(
                assigner=dict(
                    type='HungarianAssigner',
                    match_costs=[
                        dict(
                            type='FocalLossCost',
                            weight=2.0,
                            alpha=0.25,
                            gamma=2.0,
                            eps=1e-8),
                        dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                        dict(type='IoUCost', iou_mode='giou', weight=2.0)
                    ])),
            test_cfg: dict = dict(max_per_img=300),
            mlp_act_cfg: dict = dict(type='ReLU'),
            init_cfg: Optional[dict] = None,
            **kwargs) -> None:
        self.mlp_act_cfg = mlp_act_cfg
        super().__init__(
            num_classes=num_classes,
            embed_dims=embed_dims,
            num_reg_fcs=num_reg_fcs,
            sync_cls_avg_factor=sync_cls_avg_factor,
            loss_cls=loss_cls,
            loss_bbox=loss_bbox,
            loss_iou=loss_iou,
            train_cfg=train_cfg,
            test_cfg=test_cfg,
            init_cfg=init_cfg,
            **kwargs)

    def _mlp(self, out_channels: int) -> nn.Sequential:
        """A box branch: ``num_reg_fcs`` x (Linear(dim, dim), activation),
        then Linear(dim, out_channels) (mmdet's layout and keys)."""
        layers = []
        for _ in range(self.num_reg_fcs):
            layers += [
                Linear(self.embed_dims, self.embed_dims),
                build_activation_layer(self.mlp_act_cfg)
            ]
        return nn.Sequential(*layers, Linear(self.embed_dims, out_channels))

    def _init_layers(self) -> None:
        """One class and one box branch per prediction layer (shared when
        ``share_pred_layer``), the box branches from :meth:`_mlp`."""
        fc_cls = Linear(self.embed_dims, self.cls_out_channels)
        reg_branch = self._mlp(4)
        n = self.num_pred_layer
        if self.share_pred_layer:
            self.cls_branches = nn.ModuleList([fc_cls] * n)
            self.reg_branches = nn.ModuleList([reg_branch] * n)
        else:
            self.cls_branches = nn.ModuleList(
                copy.deepcopy(fc_cls) for _ in range(n))
            self.reg_branches = nn.ModuleList(
                copy.deepcopy(reg_branch) for _ in range(n))

    def init_weights(self) -> None:
        """RT-DETR's init: class bias for prior 0.01, last box layer 0."""
        bias_init = bias_init_with_prob(0.01)
        for m in self.cls_branches:
            nn.init.constant_(m.bias, bias_init)
        for m in self.reg_branches:
            constant_init(m[-1], 0, bias=0)

    @staticmethod
    def split_outputs(all_layers_cls_scores: Tensor,
                      all_layers_bbox_preds: Tensor,
                      dn_meta: Optional[Dict[str, int]]) -> Tuple[Tensor]:
        """Split denoising and matching queries; ``dn_meta=None`` (denoising
        off) gives None for the denoising part.

        Args:
            all_layers_cls_scores (Tensor): (num_layers, bs, num_queries_total,
                num_classes).
            all_layers_bbox_preds (Tensor): (num_layers, bs,
                num_queries_total, 4).
            dn_meta (dict, optional): ``num_denoising_queries`` and
                ``num_denoising_groups``.

        Returns:
            tuple[Tensor]: matching scores, matching boxes, denoising scores,
            denoising boxes.
        """
        if dn_meta is None:
            return all_layers_cls_scores, all_layers_bbox_preds, None, None
        num_dn = dn_meta['num_denoising_queries']
        return (all_layers_cls_scores[:, :, num_dn:, :],
                all_layers_bbox_preds[:, :, num_dn:, :],
                all_layers_cls_scores[:, :, :num_dn, :],
                all_layers_bbox_preds[:, :, :num_dn, :])
