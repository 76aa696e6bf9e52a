from . import backbones  # noqa: F401  (registers the modules)
from . import dense_heads, detectors, layers, necks  # noqa: F401,E402
