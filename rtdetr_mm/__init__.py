"""rtdetr_mm: RT-DETR with modern backbones as an MMDetection 3.x plugin.

Importing the package registers every module in MMDetection's registries
(configs do it with ``custom_imports = dict(imports=['rtdetr_mm'])``) and
makes every checkpoint mmengine loads (``load_from``, ``--resume``,
``init_cfg``, downloads) go through the project's safe reader, which also
lets mmengine's own checkpoints load under ``weights_only`` (see
:mod:`rtdetr_mm.utils.serialization`).
"""
from .utils import register_safe_globals, register_safe_loaders
from .version import __version__

register_safe_globals()
register_safe_loaders()

from . import datasets, engine, models  # noqa: E402,F401  (registration)

__all__ = ['__version__']
