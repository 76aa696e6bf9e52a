"""Fixtures shared by the whole suite."""
import pytest

from ._utils import REPO


@pytest.fixture(scope='session')
def toy_data():
    """The toy dataset where the configs expect it (generated once)."""
    from rtdetr_mm.datasets import generate_toy_shapes
    return generate_toy_shapes(REPO / 'data' / 'toy_shapes')


@pytest.fixture(autouse=True)
def mmdet_default_scope():
    """Start every test in mmdet's registry scope, as our configs do.

    A Runner built by an earlier test without ``default_scope`` leaves
    mmengine's scope current, and mmdet's registries then build from
    mmengine's root registry, which does not know our modules.
    """
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
