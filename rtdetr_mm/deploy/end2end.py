"""The whole detector as one graph: camera pixels in, boxes out."""
from typing import Tuple

import torch
from mmdet.structures.bbox import bbox_cxcywh_to_xyxy
from torch import Tensor, nn


class End2EndDetector(nn.Module):
    """An RT-DETR-style detector with its pre- and post-processing inside.

    What ``tools/test.py`` does around the network, as tensor operations an
    exporter can trace: the data preprocessor's channel order and
    mean/std, and the head's top-K over queries x classes (sigmoid scores,
    no NMS) with boxes scaled to the original image.

    Args:
        detector (nn.Module): An :class:`RTDETR` in eval mode (deploy form
            or not).

    Inputs of :meth:`forward`:
        images (Tensor): (N, 3, H, W) RGB in 0..255, uint8 or float, already
            resized to the model's input size (H, W).
        orig_sizes (Tensor): (N, 2) the original images' (height, width),
            the frame the boxes are returned in.

    Outputs:
        labels (N, K) int64, boxes (N, K, 4) float xyxy in original-image
        pixels, scores (N, K) float; K = the head's ``test_cfg.max_per_img``.
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector
        preprocessor = detector.data_preprocessor
        # The network was trained on what the preprocessor gave it from
        # mmcv's BGR images: RGB when it swaps channels, BGR otherwise.
        self.rgb_to_bgr = not preprocessor._channel_conversion
        if preprocessor._enable_normalize:
            mean, std = preprocessor.mean, preprocessor.std
        else:
            mean, std = torch.zeros(3, 1, 1), torch.ones(3, 1, 1)
        if self.rgb_to_bgr:
            mean, std = mean.flip(0), std.flip(0)
        self.register_buffer('mean', mean.view(1, 3, 1, 1).clone(), False)
        self.register_buffer('std', std.view(1, 3, 1, 1).clone(), False)
        head = detector.bbox_head
        if not head.loss_cls.use_sigmoid:
            raise ValueError(f'{type(head).__name__} uses softmax scores; '
                             'End2EndDetector exports sigmoid-score heads')
        self.num_classes = head.num_classes
        self.max_per_img = head.test_cfg.get('max_per_img',
                                             detector.num_queries)

    def forward(self, images: Tensor,
                orig_sizes: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        if self.rgb_to_bgr:
            images = images.flip(1)
        inputs = (images.float() - self.mean) / self.std
        detector = self.detector
        head_inputs = detector.forward_transformer(
            detector.extract_feat(inputs))
        cls_scores, bbox_preds = detector.bbox_head(**head_inputs)
        # the last layer's (N, Q, C) scores and (N, Q, 4) normalised cxcywh
        scores = cls_scores[-1].sigmoid().flatten(1)
        scores, index = scores.topk(self.max_per_img, dim=1)
        labels = index % self.num_classes
        query = (index // self.num_classes).unsqueeze(-1).expand(-1, -1, 4)
        boxes = bbox_cxcywh_to_xyxy(bbox_preds[-1].gather(1, query))
        height_width = orig_sizes.to(boxes.dtype).unsqueeze(1)  # (N, 1, 2)
        scale = height_width.flip(-1).repeat(1, 1, 2)  # (N, 1, 4) w h w h
        return labels, boxes.clamp(0, 1) * scale, scores
