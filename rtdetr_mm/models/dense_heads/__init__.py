"""Dense heads registered in mmdet's MODELS."""
from .rtdetr_head import RTDETRHead

__all__ = ['RTDETRHead']
