"""Necks registered in mmdet's MODELS."""
from .hybrid_encoder import HybridEncoder

__all__ = ['HybridEncoder']
