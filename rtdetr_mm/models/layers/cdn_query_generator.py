"""Contrastive denoising queries as RT-DETR builds them."""
import torch
from mmdet.models.layers import CdnQueryGenerator, inverse_sigmoid
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
    ``num_denoising=100``).

    Example:
        >>> gen = RTDETRCdnQueryGenerator(
        ...     num_classes=3, embed_dims=8, num_matching_queries=5,
        ...     group_cfg=dict(dynamic=True, num_dn_queries=4))
        >>> gen.label_embedding.weight.shape
        torch.Size([4, 8])
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.label_embedding = nn.Embedding(
            self.num_classes + 1,
            self.embed_dims,
            padding_idx=self.num_classes)

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
