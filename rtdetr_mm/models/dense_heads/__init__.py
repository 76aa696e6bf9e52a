"""Dense heads registered in mmdet's MODELS."""
from .dfine_head import DFINEHead
from .rtdetr_head import RTDETRHead

__all__ = ['RTDETRHead', 'DFINEHead']
