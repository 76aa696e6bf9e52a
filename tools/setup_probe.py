"""What of the rtdetr_mm stack the running interpreter already has.

``tools/setup_env.py`` runs this file in a fresh interpreter of the target
environment (so importing torch and mmcv costs one process per probe) and
reads the one JSON line it prints: for every check its answer (None when it
fails) and, under ``errors``, why it failed. The versions it checks come from
``[rtdetr_mm.setup]`` and ``install_requires`` in ``setup.cfg``, their only
home. Standard library only at import time: it runs before anything is
installed.
"""
import configparser
import importlib
import importlib.metadata as metadata
import json
import os
from pathlib import Path

SETUP_CFG = Path(__file__).resolve().parents[1] / 'setup.cfg'
MARKER = 'RTDETR_MM_ENV='


def read_pins(path: Path = SETUP_CFG) -> dict:
    """``[rtdetr_mm.setup]`` versions plus the mmengine requirement.

    Returns:
        dict: ``torch``, ``torchvision``, ``mmcv``, ``setuptools`` (a
        specifier), ``openmim`` and ``mmengine`` (a requirement string).
    """
    parser = configparser.ConfigParser()
    if not parser.read(path) or 'rtdetr_mm.setup' not in parser:
        raise SystemExit(f'{path} has no [rtdetr_mm.setup] section')
    pins = dict(parser['rtdetr_mm.setup'])
    requires = parser['options']['install_requires'].split()
    pins['mmengine'] = next(r for r in requires if r.startswith('mmengine'))
    return pins


def build_tools(pins):
    """mmcv's build requirements, with setuptools in its range."""
    import setuptools

    import ninja  # noqa: F401
    import wheel  # noqa: F401
    from packaging.specifiers import SpecifierSet
    return setuptools.__version__ in SpecifierSet(pins['setuptools'])


def torch_versions(pins):
    """pip's versions of torch and torchvision (for constraints: the local
    tag of ``torch.__version__``, e.g. +cu130, is not in the metadata), then
    ``torch.__version__`` (the ABI the mmcv build is keyed on)."""
    import torch
    import torchvision  # noqa: F401
    return [
        metadata.version('torch'),
        metadata.version('torchvision'), torch.__version__
    ]


def cuda_build(pins):
    """[a GPU is visible, nvcc is found]: mmcv's CUDA kernels need both."""
    import torch
    from torch.utils.cpp_extension import CUDA_HOME
    nvcc = bool(CUDA_HOME) and os.path.exists(
        os.path.join(CUDA_HOME, 'bin', 'nvcc'))
    return [torch.cuda.is_available(), nvcc]


def mmcv_ops(pins):
    """The pinned mmcv with its compiled ops (NMS, deformable attention)."""
    import mmcv
    from mmcv.ops import MultiScaleDeformableAttention, nms  # noqa: F401
    if mmcv.__version__ != pins['mmcv']:
        raise ImportError(f'mmcv {mmcv.__version__} is installed, '
                          f'{pins["mmcv"]} is wanted')
    return True


# openmim's runtime requirements without `opendatalab` (which pins old
# setuptools/requests through openxlab and only downloads datasets)
OPENMIM_DEPS = ('click', 'colorama', 'model-index', 'pandas', 'requests',
                'rich', 'tabulate')


def openmim(pins):
    """openmim at its pin, with the runtime requirements it uses."""
    for name in ('mim', 'modelindex') + OPENMIM_DEPS:
        if name != 'model-index':
            importlib.import_module(name)
    return metadata.version('openmim') == pins['openmim']


def stack(pins):
    """One line naming the versions of the installed stack."""
    import mmcv
    import mmdet
    import mmpretrain
    import pytest  # noqa: F401
    import timm
    import torch

    import rtdetr_mm
    return (f'torch {torch.__version__} mmcv {mmcv.__version__} '
            f'mmdet {mmdet.__version__} mmpretrain {mmpretrain.__version__} '
            f'timm {timm.__version__} rtdetr_mm {rtdetr_mm.__version__} '
            f'from {rtdetr_mm.__file__}')


def rtdetr_mm_location(pins):
    """The folder holding rtdetr_mm's installed metadata (site-packages for
    an editable install), where openmim looks for ``rtdetr_mm/.mim``."""
    dist = metadata.distribution('rtdetr_mm')
    return str(Path(dist.locate_file('')).resolve())


CHECKS = (build_tools, torch_versions, cuda_build, mmcv_ops, openmim, stack,
          rtdetr_mm_location)


def probe() -> dict:
    """Run every check; a failing one gives None and its error text."""
    pins = read_pins()
    state = dict(errors={})
    for check in CHECKS:
        try:
            state[check.__name__] = check(pins)
        except Exception as error:  # report it, the set-up decides
            state[check.__name__] = None
            state['errors'][check.__name__] = \
                f'{type(error).__name__}: {error}'
    return state


if __name__ == '__main__':
    print(MARKER + json.dumps(probe()), flush=True)
