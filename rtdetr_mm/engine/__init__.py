"""Training-time components (hooks) registered in mmdet's registries."""
from . import hooks  # noqa: F401  (registers the hooks)
