"""Let ``torch.load(weights_only=True)`` read mmengine checkpoints.

torch >= 2.6 loads with ``weights_only=True`` by default, and mmengine 0.10.x
calls ``torch.load`` without the argument, so resuming from its own
checkpoints fails (``UnpicklingError: Weights only load failed``): they hold a
few non-tensor objects (the message hub's ``HistoryBuffer`` with numpy arrays
and numpy scalars in ``meta``). Rather than turning the protection off for
every file, we allow exactly those types; anything else still fails.

``HistoryBuffer`` pickles its statistics methods (plain functions defined on
the class) as ``getattr(HistoryBuffer, 'mean')``. Allowing the real ``getattr`` would let a
checkpoint reach any attribute of any object, so the name
``builtins.getattr`` is bound to :func:`history_buffer_getattr` instead,
which only resolves those methods.
"""
import argparse
import pickle

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer


def _numpy_globals():
    """The numpy callables and types that pickled arrays/scalars refer to."""
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    dtype_types = [type(np.dtype(t)) for t in (
        np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8,
        np.uint16, np.uint32, np.uint64, np.float16, np.float32, np.float64)]
    return [_reconstruct, scalar, np.ndarray, np.dtype, *dtype_types]


# HistoryBuffer registers these in its first __init__; others are added by
# HistoryBuffer.register_statistics.
_BUILTIN_STATISTICS = ('min', 'max', 'current', 'mean')


def history_buffer_getattr(obj, name: str):
    """``getattr`` restricted to HistoryBuffer's statistics methods."""
    if obj is HistoryBuffer and (name in _BUILTIN_STATISTICS or
                                 name in HistoryBuffer._statistics_methods):
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'weights_only load: refusing getattr({obj!r:.60}, {name!r}); only '
        'HistoryBuffer statistics methods are allowed')


# argparse.Namespace: official research checkpoints (ConvNeXt-style training
# scripts such as RevCol's and VanillaNet's) store their training `args`.
SAFE_GLOBALS = [
    HistoryBuffer, argparse.Namespace, *_numpy_globals(),
    (history_buffer_getattr, 'builtins.getattr')
]


def register_safe_globals() -> None:
    """Allow-list :data:`SAFE_GLOBALS` for ``weights_only`` loading."""
    if hasattr(torch.serialization, 'add_safe_globals'):  # torch >= 2.4
        torch.serialization.add_safe_globals(SAFE_GLOBALS)
