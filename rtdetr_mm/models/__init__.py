"""Models: importing this registers every module in mmdet's MODELS."""
from . import (backbones, data_preprocessors, dense_heads, detectors, layers,
               losses, necks)

__all__ = [
    'backbones', 'data_preprocessors', 'dense_heads', 'detectors', 'layers',
    'losses', 'necks'
]
