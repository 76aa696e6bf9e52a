"""Contrastive denoising queries as RT-DETR (and D-FINE) build them."""
import torch
from mmdet.models.layers import CdnQueryGenerator, inverse_sigmoid
from mmdet.structures.bbox import bbox_xyxy_to_cxcywh
from torch import Tensor, nn


class RTDETRCdnQueryGenerator(CdnQueryGenerator):
    """mmdet's :class:`CdnQueryGenerator` with RT-DETR's two differences.

    * The label embedding has ``num_classes + 1`` rows, the last one a zero
      padding row (``padding_idx``), like the official
      ``denoising_class_embed``: official weights load without reshaping,
      and padded denoising slots embed to zeros.
    * Padded slots (images with fewer targets than the batch maximum) get
      the reference box ``inverse_sigmoid(0)`` (a point at the image corner)
      instead of mmdet's ``0`` logit (a centred half-size box), since
      RT-DETR pads with zero boxes before adding noise.

    Everything else (groups of positives and negatives, label noise
    ``label_noise_scale * 0.5``, box noise, the attention mask) is mmdet's,
    which matches RT-DETR. Arguments are those of :class:`CdnQueryGenerator`
    (``group_cfg=dict(dynamic=True, num_dn_queries=100)`` is RT-DETR's
    ``num_denoising=100``), plus:

    Args:
        abs_box_size (bool): D-FINE's box noise: a noised box whose corners
            crossed (only negative queries, when both moved inwards) keeps
            its size ``|x2 - x1|`` about its centre, and the reference
            logits use D-FINE's ``inverse_sigmoid`` eps 1e-5. False
            (RT-DETR, mmdet) clamps such a size to 0 (eps 1e-3): a sliver
            box. Defaults to False.

    Example:
        >>> gen = RTDETRCdnQueryGenerator(
        ...     num_classes=3, embed_dims=8, num_matching_queries=5,
        ...     group_cfg=dict(dynamic=True, num_dn_queries=4))
        >>> gen.label_embedding.weight.shape
        torch.Size([4, 8])
    """

    def __init__(self, *args, abs_box_size: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.abs_box_size = abs_box_size
        self.label_embedding = nn.Embedding(
            self.num_classes + 1,
            self.embed_dims,
            padding_idx=self.num_classes)

    def generate_dn_bbox_query(self, gt_bboxes: Tensor,
                               num_groups: int) -> Tensor:
        """Noisy boxes as mmdet, or, with ``abs_box_size``, as D-FINE.

        Args:
            gt_bboxes (Tensor): (num_target_total, 4) normalised (x1, y1,
                x2, y2).
            num_groups (int): Denoising groups.

        Returns:
            Tensor: (num_target_total * 2 * num_groups, 4) logits of the
            noisy (cx, cy, w, h).
        """
        if not self.abs_box_size:
            return super().generate_dn_bbox_query(gt_bboxes, num_groups)
        # mmdet's noise (same draws) redone: its method clamps the size to 0
        # inside; then D-FINE's |size| and eps
        num_targets = len(gt_bboxes)
        boxes = gt_bboxes.repeat(2 * num_groups, 1)  # xyxy
        rand_sign = torch.randint_like(
            boxes, low=0, high=2, dtype=torch.float32) * 2.0 - 1.0
        rand_part = torch.rand_like(boxes)  # pos: [0, 1), neg: [1, 2)
        # (2 * num_groups * num_targets, ): rows of the negative halves
        negative = torch.arange(
            2 * num_groups,
            device=boxes.device).repeat_interleave(num_targets) % 2 == 1
        rand_part[negative] += 1.0
        whwh = bbox_xyxy_to_cxcywh(boxes)[:, 2:].repeat(1, 2)
        boxes = boxes + rand_sign * rand_part * whwh * \
            self.box_noise_scale / 2
        boxes = bbox_xyxy_to_cxcywh(boxes.clamp(min=0.0, max=1.0)).abs()
        return inverse_sigmoid(boxes, eps=1e-5)

    def collate_dn_queries(self, input_label_query: Tensor,
                           input_bbox_query: Tensor, batch_idx: Tensor,
                           batch_size: int, num_groups: int) -> tuple:
        """Collate like mmdet, then give padded slots RT-DETR's pad box.

        Returns:
            tuple[Tensor]: label queries (bs, num_dn, dim) and reference box
            logits (bs, num_dn, 4).
        """
        label_query, bbox_query = super().collate_dn_queries(
            input_label_query, input_bbox_query, batch_idx, batch_size,
            num_groups)
        num_targets = torch.bincount(batch_idx.long(), minlength=batch_size)
        max_num = int(num_targets.max()) if batch_size > 0 else 0
        # (bs, max_num) -> (bs, max_num * 2 * num_groups)
        valid = torch.arange(max_num, device=bbox_query.device)[None] < \
            num_targets[:, None].to(bbox_query.device)
        valid = valid.repeat(1, 2 * num_groups)
        pad_box = inverse_sigmoid(bbox_query.new_zeros(()), eps=1e-5)
        bbox_query = bbox_query.masked_fill(~valid[..., None], pad_box.item())
        return label_query, bbox_query
