"""Batch augments of the data preprocessor, registered in mmdet's MODELS."""
from .batch_mixup import BatchMixUp
from .batch_resize import BatchRandomChoiceResize

__all__ = ['BatchMixUp', 'BatchRandomChoiceResize']
