"""Backbones registered in mmdet's MODELS (one file per family)."""
from .fasternet import FasterNet  # noqa: F401
from .hgnetv2 import HGNetv2  # noqa: F401
from .mobilenetv4 import MobileNetV4  # noqa: F401
from .presnet_vd import PResNetV1d  # noqa: F401
from .revcol import RevCol  # noqa: F401
from .riformer import RIFormer  # noqa: F401
from .vanillanet import VanillaNet  # noqa: F401
