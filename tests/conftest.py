"""Fixtures shared by the whole suite."""
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='session')
def toy_data():
    """The toy dataset where the configs expect it (generated once)."""
    from rtdetr_mm.datasets import generate_toy_shapes
    return generate_toy_shapes(REPO / 'data' / 'toy_shapes')
