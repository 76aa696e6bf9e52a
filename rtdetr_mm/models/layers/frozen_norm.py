"""``FrozenBatchNorm2d``: torchvision's frozen BatchNorm as an mmcv norm type.

A BatchNorm whose statistics and affine are buffers, computing
``x * scale + (bias - mean * scale)`` with ``scale = weight / sqrt(var +
eps)``, as the official RT-DETR and D-FINE backbones do with frozen norms.
An eval-mode ``nn.BatchNorm2d`` (and mmdet's ``FrozenBN`` when no gradient
is needed: it then calls ``F.batch_norm``) computes the same in another
order; in float32 the rounding difference grows through a deep backbone
enough to reorder near-equal detections, so configs of officially frozen
norms use ``norm_cfg=dict(type='FrozenBatchNorm2d')`` to give the official
outputs. It has no parameters (nothing to freeze) and loads files with or
without ``num_batches_tracked`` (mmdet's ``FrozenBN`` reports it as
unexpected).
"""
from mmengine.registry import MODELS
from torch.nn.modules.batchnorm import _BatchNorm
from torchvision.ops import FrozenBatchNorm2d

MODELS.register_module('FrozenBatchNorm2d', module=FrozenBatchNorm2d)

# norm layers with running statistics, which the deploy form folds
BATCH_NORMS = (_BatchNorm, FrozenBatchNorm2d)
