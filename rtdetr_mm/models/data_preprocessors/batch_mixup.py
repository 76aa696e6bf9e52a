"""Batch MixUp of each image with its neighbour (DEIM's collate MixUp)."""
import random
from numbers import Real
from typing import List, Sequence, Tuple

from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData
from torch import Tensor, nn


@MODELS.register_module()
class BatchMixUp(nn.Module):
    """With probability ``prob`` per batch, mix every image with the one
    before it in the batch and give it the boxes of both.

    DEIM's collate function (``BatchImageCollateFunction.apply_mixup``)::

        images = ratio * images + (1 - ratio) * images.roll(1, dim=0)

    with ``ratio ~ U(ratio_range)`` drawn once per batch; sample ``i``'s
    ``gt_instances`` become its own followed by those of sample ``i - 1``
    (the last one's for sample 0). mmdet's ``MixUp`` transform mixes a
    resized, flipped, cropped second image with weight 0.5 on the CPU; this
    one mixes the finished batch, as DEIM does. Put it in
    ``DetDataPreprocessor.batch_augments`` before the multi-scale resize
    (DEIM mixes before resizing); images are aligned at the top-left as
    the batch pads them. ``ignored_instances`` are left as they are; a
    batch of one is returned unchanged.

    Args:
        prob (float): Probability to mix a batch, in [0, 1]. Defaults to
            0.5.
        ratio_range (Sequence[float]): ``(low, high)`` of the weight of
            each sample's own image, ``0 <= low <= high <= 1``. Defaults to
            DEIM's ``(0.45, 0.55)``.
    """

    def __init__(self,
                 prob: float = 0.5,
                 ratio_range: Sequence[float] = (0.45, 0.55)) -> None:
        super().__init__()
        if not isinstance(prob, Real) or not 0 <= prob <= 1:
            raise ValueError(
                f'BatchMixUp: prob must be in [0, 1], got {prob!r}')
        ratio_range = tuple(ratio_range)
        if len(ratio_range) != 2 or not all(
                isinstance(r, Real) for r in ratio_range) or not \
                0 <= ratio_range[0] <= ratio_range[1] <= 1:
            raise ValueError(
                'BatchMixUp: ratio_range must be (low, high) with 0 <= low '
                f'<= high <= 1, got {ratio_range!r}')
        self.prob = prob
        self.ratio_range = ratio_range

    def forward(
        self, inputs: Tensor, data_samples: List[DetDataSample]
    ) -> Tuple[Tensor, List[DetDataSample]]:
        """(B, C, H, W) images and their samples, mixed or as they came."""
        if len(data_samples) < 2 or random.random() >= self.prob:
            return inputs, data_samples
        ratio = random.uniform(*self.ratio_range)
        # (B, C, H, W): image i + image i - 1 (roll by one along the batch)
        inputs = ratio * inputs + (1 - ratio) * inputs.roll(1, dims=0)
        gts = [sample.gt_instances for sample in data_samples]
        for i, sample in enumerate(data_samples):
            sample.gt_instances = InstanceData.cat([gts[i], gts[i - 1]])
        return inputs, data_samples
