"""The one safe way rtdetr_mm reads checkpoint files.

:func:`read_checkpoint` is used by every loader and converter of the project:
``torch.load(weights_only=True)`` with an allow-list of exactly the non-tensor
types that real checkpoints hold, and errors that name the file:

* a file that is not a PyTorch checkpoint (empty, text, random bytes,
  truncated) -> :class:`CheckpointFileError` "FILE is not a PyTorch
  checkpoint (...)";
* a file that asks the unpickler for anything else (a function to call, a
  class outside the allow-list) -> :class:`UnsafeCheckpointError` naming the
  global it wanted. Nothing in the file runs.

The explicit opt-in for trusted legacy files is ``unsafe=True``, or the
environment variable ``RTDETR_MM_UNSAFE_LOAD=1`` that the tools'
``--unsafe-load`` flag sets (off by default, logged when used).

:func:`register_safe_loaders` makes mmengine's ``CheckpointLoader`` (used by
``load_from``, ``--resume``, ``init_cfg`` and ``load_checkpoint``) read local
files, http(s) downloads and the ``torchvision://``/``open-mmlab://``/
``mmcls://`` model-zoo names through :func:`read_checkpoint`, through its
public ``register_scheme`` extension point: mmengine 0.10 loads downloads
with ``weights_only=False`` (``torch.hub.load_state_dict_from_url``'s
default), which would run code hidden in a downloaded file.

The allow-list: mmengine stores its message hub's ``HistoryBuffer`` (with
numpy arrays) and numpy scalars in ``meta``; research checkpoints (ConvNeXt-
style training scripts such as RevCol's and VanillaNet's) store their
training ``argparse.Namespace``. ``HistoryBuffer`` pickles its statistics
methods as ``getattr(HistoryBuffer, 'mean')``; allowing the real ``getattr``
would let a checkpoint reach any attribute of any object, so the name
``builtins.getattr`` is bound to :func:`history_buffer_getattr`, which only
resolves those methods.
"""
import argparse
import logging
import os
import os.path as osp
import pickle
import re
from typing import Optional

import numpy as np
import torch
from mmengine.logging import HistoryBuffer, print_log

UNSAFE_LOAD_ENV = 'RTDETR_MM_UNSAFE_LOAD'
UNSAFE_LOAD_HINT = (
    f'Only for a file you trust: pass --unsafe-load to the tool, or set '
    f'{UNSAFE_LOAD_ENV}=1 (this lets the file run code on your machine)')


class CheckpointFileError(ValueError):
    """A file that cannot be read as a PyTorch checkpoint."""


class UnsafeCheckpointError(CheckpointFileError):
    """A checkpoint that wants to load something outside the allow-list."""


def _numpy_globals():
    """The numpy callables and types that pickled arrays/scalars refer to."""
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar
    dtype_types = [
        type(np.dtype(t))
        for t in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8,
                  np.uint16, np.uint32, np.uint64, np.float16, np.float32,
                  np.float64)
    ]
    return [_reconstruct, scalar, np.ndarray, np.dtype, *dtype_types]


# HistoryBuffer registers these in its first __init__; others are added by
# HistoryBuffer.register_statistics.
_BUILTIN_STATISTICS = ('min', 'max', 'current', 'mean')


def history_buffer_getattr(obj, name: str):
    """``getattr`` restricted to HistoryBuffer's statistics methods."""
    if obj is HistoryBuffer and (name in _BUILTIN_STATISTICS
                                 or name in HistoryBuffer._statistics_methods):
        return getattr(obj, name)
    raise pickle.UnpicklingError(
        f'weights_only load: refusing getattr({obj!r:.60}, {name!r}); only '
        'HistoryBuffer statistics methods are allowed')


SAFE_GLOBALS = [
    HistoryBuffer, argparse.Namespace, *_numpy_globals(),
    (history_buffer_getattr, 'builtins.getattr')
]


def register_safe_globals() -> None:
    """Allow-list :data:`SAFE_GLOBALS` for ``weights_only`` loading."""
    if hasattr(torch.serialization, 'add_safe_globals'):  # torch >= 2.4
        torch.serialization.add_safe_globals(SAFE_GLOBALS)


def unsafe_load_requested() -> bool:
    """Whether the user opted in to unrestricted unpickling."""
    return os.environ.get(UNSAFE_LOAD_ENV, '') not in ('', '0')


def _refusal(filename: str, error: Exception) -> CheckpointFileError:
    """Turn a ``weights_only`` unpickling failure into a clear error."""
    message = str(error)
    wanted = re.search(r'GLOBAL ([\w.]+)', message)
    if wanted:
        return UnsafeCheckpointError(
            f'{filename} wants to load {wanted.group(1)!r}, which is not on '
            "rtdetr_mm's allow-list of checkpoint contents (tensors, "
            'containers, numpy arrays, mmengine HistoryBuffer, '
            'argparse.Namespace); nothing from the file was run. ' +
            UNSAFE_LOAD_HINT)
    refused = re.search(r'refusing (getattr\(.*?\))', message)
    if refused:
        return UnsafeCheckpointError(
            f'{filename} asks for {refused.group(1)}, which is not allowed; '
            'nothing from the file was run. ' + UNSAFE_LOAD_HINT)
    detail = re.search(r'(Unsupported operand \d+|invalid load key[^.]*)',
                       message)
    return CheckpointFileError(
        f'{filename} is not a PyTorch checkpoint (unpickling failed: '
        f'{detail.group(1) if detail else message.splitlines()[0]})')


def read_checkpoint(filename: str,
                    map_location='cpu',
                    unsafe: Optional[bool] = None):
    """Load a checkpoint file safely (``weights_only`` + the allow-list).

    Args:
        filename: path of a file written by ``torch.save``.
        map_location: as in :func:`torch.load`.
        unsafe: unpickle anything (runs code a malicious file carries); None
            follows ``RTDETR_MM_UNSAFE_LOAD``.

    Raises:
        FileNotFoundError: no such file.
        CheckpointFileError: not a PyTorch checkpoint.
        UnsafeCheckpointError: it wants a global outside the allow-list.
    """
    filename = osp.expanduser(str(filename))
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint {filename} does not exist')
    if osp.getsize(filename) == 0:
        raise CheckpointFileError(
            f'{filename} is not a PyTorch checkpoint (the file is empty)')
    if unsafe is None:
        unsafe = unsafe_load_requested()
    if unsafe:
        print_log(
            f'loading {filename} with weights_only=False (unsafe load '
            'requested): it may run code it carries',
            logger='current',
            level=logging.WARNING)
        return torch.load(
            filename, map_location=map_location, weights_only=False)
    try:
        return torch.load(
            filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise _refusal(filename, error) from None
    except (RuntimeError, EOFError, KeyError, ValueError, OSError) as error:
        # zip reader failures (truncated/corrupt), a text file (KeyError of
        # the legacy reader), a file ending mid-pickle (EOFError); other
        # RuntimeErrors (e.g. from map_location) are not about the file
        if isinstance(error, RuntimeError) and \
                'PytorchStreamReader' not in str(error):
            raise
        detail = str(error).split('. ')[0] or type(error).__name__
        raise CheckpointFileError(
            f'{filename} is not a PyTorch checkpoint, or it is truncated or '
            f'corrupt ({type(error).__name__}: {detail})') from None


def load_from_safe_local(filename: str, map_location=None):
    """mmengine scheme '' (local files)."""
    return read_checkpoint(filename, map_location or 'cpu')


def _download(url: str, path: str) -> None:
    if not osp.exists(path):
        os.makedirs(osp.dirname(path), exist_ok=True)
        print_log(f'downloading {url} to {path}', logger='current')
        torch.hub.download_url_to_file(url, path, progress=False)


def load_from_safe_http(url: str, map_location=None):
    """mmengine schemes http(s)://: download once (rank 0 first), read safely.

    Files go where ``torch.hub`` and mmengine keep them
    (``$TORCH_HOME/hub/checkpoints``), so an earlier download is reused.
    """
    from urllib.parse import urlparse

    from mmengine.dist import barrier, get_dist_info
    path = osp.join(torch.hub.get_dir(), 'checkpoints',
                    osp.basename(urlparse(url).path))
    rank, world_size = get_dist_info()
    if rank == 0:
        _download(url, path)
    if world_size > 1:
        barrier()
        _download(url, path)  # ranks on other machines
    return read_checkpoint(path, map_location or 'cpu')


def load_from_safe_model_zoo(name: str, map_location=None):
    """mmengine's named model-zoo schemes, resolved to their URL."""
    from mmengine.runner import checkpoint as zoo
    scheme, key = name.split('://', 1)
    urls = {
        'torchvision': zoo.get_torchvision_models,
        'modelzoo': zoo.get_torchvision_models,
        'open-mmlab': zoo.get_external_models,
        'openmmlab': zoo.get_external_models,
        'mmcls': zoo.get_mmcls_models
    }[scheme]()
    key = zoo.get_deprecated_model_names().get(key, key) \
        if 'mmlab' in scheme else key
    url = urls.get(key, '')
    if not url.startswith(('http://', 'https://')):
        raise KeyError(f'{name}: no download URL for {key!r} in mmengine\'s '
                       f'{scheme} model list')
    checkpoint = load_from_safe_http(url, map_location)
    if scheme == 'mmcls':
        checkpoint = zoo._process_mmcls_checkpoint(checkpoint)
    return checkpoint


def register_safe_loaders() -> None:
    """Route mmengine's checkpoint schemes through :func:`read_checkpoint`."""
    from mmengine.runner import CheckpointLoader
    CheckpointLoader.register_scheme('', load_from_safe_local, force=True)
    CheckpointLoader.register_scheme(('http://', 'https://'),
                                     load_from_safe_http,
                                     force=True)
    CheckpointLoader.register_scheme(
        ('torchvision://', 'modelzoo://', 'open-mmlab://', 'openmmlab://',
         'mmcls://'),
        load_from_safe_model_zoo,
        force=True)
