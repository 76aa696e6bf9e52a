"""Detectors registered in mmdet's MODELS."""
from .dfine import DFINE
from .rtdetr import RTDETR

__all__ = ['RTDETR', 'DFINE']
