"""rtdetr_mm: RT-DETR with modern backbones as an MMDetection 3.x plugin.

Importing the package registers every module in MMDetection's registries.
"""
from .version import __version__

__all__ = ['__version__']
