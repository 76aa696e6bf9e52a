from . import backbones  # noqa: F401  (registers the modules)
from . import necks, layers, dense_heads, detectors  # noqa: F401,E402
