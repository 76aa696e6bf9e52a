"""weights_only loading of mmengine checkpoints after `import rtdetr_mm`."""
import argparse
import os
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

import rtdetr_mm  # noqa: F401  (registers the allow-list)


def _checkpoint_like_mmengine():
    history = HistoryBuffer()
    for value in (3.0, 2.0, 1.0):
        history.update(value)
    return dict(
        meta=dict(seed=np.int64(7), epoch=2, iter=8,
                  scale=np.float32(0.5), shape=np.array([640, 480])),
        state_dict=dict(weight=torch.randn(3, 3)),
        message_hub=dict(log_scalars={'train/loss': history},
                         runtime_info=dict(np_value=np.float64(1.5))),
        args=argparse.Namespace(lr=1e-4, epochs=300),
        random_state=[dict(numpy=np.random.get_state())])


def test_mmengine_checkpoint_loads_with_weights_only(tmp_path):
    path = tmp_path / 'ckpt.pth'
    saved = _checkpoint_like_mmengine()
    torch.save(saved, path)
    loaded = torch.load(path, map_location='cpu', weights_only=True)
    torch.testing.assert_close(loaded['state_dict']['weight'],
                               saved['state_dict']['weight'])
    assert loaded['meta']['seed'] == 7
    np.testing.assert_array_equal(loaded['meta']['shape'], [640, 480])
    history = loaded['message_hub']['log_scalars']['train/loss']
    assert history.mean() == pytest.approx(2.0)
    assert history.current() == 1.0 and history.min() == 1.0
    assert loaded['args'].epochs == 300
    np.testing.assert_array_equal(loaded['random_state'][0]['numpy'][1],
                                  saved['random_state'][0]['numpy'][1])


class _SneakyGetattr:
    """A checkpoint object asking getattr for something other than stats."""

    def __init__(self, obj, name):
        self.obj, self.name = obj, name

    def __reduce__(self):
        return getattr, (self.obj, self.name)


class _RunsCode:

    def __reduce__(self):
        return os.system, ('echo pwned',)


@pytest.mark.parametrize('payload', [
    _SneakyGetattr(argparse.Namespace(a=1), '__class__'),
    _SneakyGetattr(HistoryBuffer, '__subclasses__'),
    _RunsCode()
])
def test_other_objects_are_still_refused(tmp_path, payload):
    path = tmp_path / 'evil.pth'
    torch.save({'x': payload}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
