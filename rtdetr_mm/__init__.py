"""rtdetr_mm: RT-DETR with modern backbones as an MMDetection 3.x plugin.

Importing the package registers every module in MMDetection's registries
(configs do it with ``custom_imports = dict(imports=['rtdetr_mm'])``) and
allows mmengine's own checkpoints to load under ``torch.load``'s
``weights_only`` default (see :mod:`rtdetr_mm.utils.serialization`).
"""
from .utils import register_safe_globals
from .version import __version__

register_safe_globals()

from . import datasets, engine, models  # noqa: E402,F401  (registration)

__all__ = ['__version__']
