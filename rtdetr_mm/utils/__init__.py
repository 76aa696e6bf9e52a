from .preflight import check_config, check_dataset_paths
from .serialization import (SAFE_GLOBALS, CheckpointFileError,
                            UnsafeCheckpointError, read_checkpoint,
                            register_safe_globals, register_safe_loaders)
from .timing import Timings, time_round_robin

__all__ = [
    'check_config', 'check_dataset_paths', 'SAFE_GLOBALS',
    'CheckpointFileError', 'UnsafeCheckpointError', 'read_checkpoint',
    'register_safe_globals', 'register_safe_loaders', 'Timings',
    'time_round_robin'
]
