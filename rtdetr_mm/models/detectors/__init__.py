"""Detectors registered in mmdet's MODELS."""
from .rtdetr import RTDETR

__all__ = ['RTDETR']
