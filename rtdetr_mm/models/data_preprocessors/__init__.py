"""Batch augments of the data preprocessor, registered in mmdet's MODELS."""
from .batch_resize import BatchRandomChoiceResize

__all__ = ['BatchRandomChoiceResize']
