from .preflight import check_config, check_dataset_paths
from .serialization import SAFE_GLOBALS, register_safe_globals

__all__ = [
    'check_config', 'check_dataset_paths', 'SAFE_GLOBALS',
    'register_safe_globals'
]
