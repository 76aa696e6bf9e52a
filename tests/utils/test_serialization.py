"""The safe checkpoint reader and the allow-list of checkpoint contents."""
import argparse
import datetime
import os
import pickle
import shutil

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

import rtdetr_mm  # noqa: F401  (registers the allow-list and loaders)
from rtdetr_mm.utils import (CheckpointFileError, UnsafeCheckpointError,
                             read_checkpoint)
from rtdetr_mm.utils.serialization import UNSAFE_LOAD_ENV
from .._utils import TouchFile, write_malicious_checkpoint


def _checkpoint_like_mmengine():
    history = HistoryBuffer()
    for value in (3.0, 2.0, 1.0):
        history.update(value)
    return dict(
        meta=dict(
            seed=np.int64(7),
            epoch=2,
            iter=8,
            scale=np.float32(0.5),
            shape=np.array([640, 480])),
        state_dict=dict(weight=torch.randn(3, 3)),
        message_hub=dict(
            log_scalars={'train/loss': history},
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
        return os.system, ('echo pwned', )


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


# --- the one safe reader ------------------------------------------------


def _not_checkpoints(tmp_path):
    good = tmp_path / 'good.pth'
    torch.save(dict(weight=torch.zeros(1000)), good)
    files = {
        'empty.pth': (b'', r'is not a PyTorch checkpoint \(the file is '
                      r'empty\)'),
        'text.pth':
        (b'model: rtdetr\nlr: 1e-4\n', 'is not a PyTorch checkpoint'),
        'random.pth': (bytes(
            np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)),
                       'is not a PyTorch checkpoint'),
        'truncated.pth': (good.read_bytes()[:2000], 'truncated or corrupt'),
        'plain_pickle.pkl': (pickle.dumps({'a':
                                           1}), 'is not a PyTorch checkpoint'),
    }
    for name, (data, _) in files.items():
        (tmp_path / name).write_bytes(data)
    return {tmp_path / name: match for name, (_, match) in files.items()}


def test_read_checkpoint_names_files_that_are_not_checkpoints(tmp_path):
    for path, match in _not_checkpoints(tmp_path).items():
        with pytest.raises(CheckpointFileError, match=match) as info:
            read_checkpoint(path)
        assert str(path) in str(info.value)
        assert not isinstance(info.value, UnsafeCheckpointError)
    with pytest.raises(FileNotFoundError, match='nowhere.pth does not exist'):
        read_checkpoint(tmp_path / 'nowhere.pth')


def test_malicious_checkpoint_runs_nothing(tmp_path):
    marker = tmp_path / 'pwned'
    path = write_malicious_checkpoint(tmp_path / 'evil.pth', marker)
    with pytest.raises(
            UnsafeCheckpointError,
            match=r"evil.pth wants to load '(io|builtins)\.open'.*"
            r'nothing from the file was run.*--unsafe-load'):
        read_checkpoint(path)
    assert not marker.exists()
    # a legacy (non-zip) torch.save file is refused the same way
    torch.save({'x': TouchFile(marker)},
               tmp_path / 'legacy.pth',
               _use_new_zipfile_serialization=False)
    with pytest.raises(UnsafeCheckpointError, match=r"'(io|builtins)\.open'"):
        read_checkpoint(tmp_path / 'legacy.pth')
    assert not marker.exists()


def test_unsafe_load_is_an_explicit_opt_in(tmp_path, monkeypatch):
    path = tmp_path / 'legacy.pth'
    torch.save(
        dict(
            state_dict=dict(w=torch.ones(1)),
            created=datetime.date(2023, 4, 1)), path)
    monkeypatch.delenv(UNSAFE_LOAD_ENV, raising=False)
    with pytest.raises(UnsafeCheckpointError, match='datetime.date'):
        read_checkpoint(path)
    assert read_checkpoint(path, unsafe=True)['created'].year == 2023
    monkeypatch.setenv(UNSAFE_LOAD_ENV, '1')
    assert read_checkpoint(path)['created'].year == 2023


@pytest.mark.parametrize(
    'name',
    ['{local}', 'https://example.com/ckpt/evil.pth', 'torchvision://resnet50'])
def test_mmengine_loaders_read_through_the_safe_reader(tmp_path, monkeypatch,
                                                       name):
    """load_from, --resume and init_cfg (local files, downloads and model-zoo
    names) go through mmengine's CheckpointLoader: it must refuse too."""
    from mmengine.runner import CheckpointLoader
    marker = tmp_path / 'pwned'
    evil = write_malicious_checkpoint(tmp_path / 'evil.pth', marker)
    downloads = []

    def fake_download(url, dst, *args, **kwargs):
        downloads.append(url)
        shutil.copy(evil, dst)

    monkeypatch.setattr(torch.hub, 'download_url_to_file', fake_download)
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path / 'hub'))
    with pytest.raises(UnsafeCheckpointError, match=r"'(io|builtins)\.open'"):
        CheckpointLoader.load_checkpoint(name.format(local=evil))
    assert not marker.exists()
    assert len(downloads) == (0 if name == '{local}' else 1)
