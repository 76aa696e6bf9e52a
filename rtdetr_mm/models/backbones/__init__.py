"""Backbones registered in mmdet's MODELS (one file per family)."""
