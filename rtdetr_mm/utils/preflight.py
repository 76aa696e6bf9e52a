"""Checks run by tools/train.py and tools/test.py before building a Runner.

Building a Runner and a dataset can take a while and fails deep inside
mmengine when a dataset path is wrong; these checks fail at once with a
message that says which setting to change.
"""
import os
import os.path as osp
from typing import Iterable

from mmengine.config import Config

# Datasets that create their own files on first use.
SELF_GENERATING_DATASETS = {'ToyShapesDataset'}


def _leaf_datasets(dataset_cfg):
    """Yield the real datasets below wrappers (Repeat/Concat/ClassBalanced)."""
    if dataset_cfg is None:
        return
    if 'datasets' in dataset_cfg:
        for sub in dataset_cfg['datasets']:
            yield from _leaf_datasets(sub)
    elif 'dataset' in dataset_cfg:
        yield from _leaf_datasets(dataset_cfg['dataset'])
    else:
        yield dataset_cfg


def _join(root, path):
    return osp.join(root, path) if root and not osp.isabs(path) else path


def check_dataset_paths(cfg: Config, splits: Iterable[str]) -> None:
    """Raise FileNotFoundError naming the setting of a missing dataset path.

    Only local paths are checked (remote backends are left to mmengine).
    """
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if not loader or cfg.get(f'{split}_cfg', True) is None:
            continue
        for ds in _leaf_datasets(loader.get('dataset')):
            if ds.get('type') in SELF_GENERATING_DATASETS or \
                    ds.get('backend_args'):
                continue
            root = ds.get('data_root', '') or ''
            ann_file = ds.get('ann_file')
            if ann_file and not osp.exists(_join(root, ann_file)):
                raise FileNotFoundError(
                    f'{split}_dataloader: annotation file '
                    f'{_join(root, ann_file)!r} does not exist. Put the '
                    f'dataset there (see README, "Training on COCO") or point '
                    f'the config at it, e.g. --cfg-options '
                    f'{split}_dataloader.dataset.data_root=/path/to/coco/')
            img_dir = (ds.get('data_prefix') or {}).get('img')
            if img_dir and not osp.isdir(_join(root, img_dir)):
                raise FileNotFoundError(
                    f'{split}_dataloader: image folder '
                    f'{_join(root, img_dir)!r} does not exist (data_root='
                    f'{root!r}, data_prefix.img={img_dir!r})')
            if img_dir:
                check_no_empty_images(_join(root, img_dir), split)


def check_no_empty_images(folder: str, split: str) -> None:
    """Refuse a dataset folder holding 0-byte files (an interrupted copy).

    OpenCV fails on an empty image with ``!buf.empty()`` and no file name,
    possibly days into a run; a scan of the folder (a second for COCO's
    118k images) names them all before anything starts. Other unreadable
    images already fail with mmcv's "failed to load image: FILE".
    """
    empty = [
        osp.join(path, name) for path, _, names in os.walk(folder)
        for name in names if osp.getsize(osp.join(path, name)) == 0
    ]
    if empty:
        listed = ', '.join(sorted(empty)[:10])
        more = f' and {len(empty) - 10} more' if len(empty) > 10 else ''
        raise ValueError(
            f'{split}_dataloader: {len(empty)} empty (0-byte) file(s) in the '
            f'image folder {folder!r}: {listed}{more}. Copy them again or '
            'remove them (and their annotations).')


def check_amp_device(cfg: Config) -> None:
    """Refuse mixed precision where mmengine's AmpOptimWrapper cannot run.

    mmengine asserts on a GPU/NPU/MLU/MUSA device only after the Runner, the
    model and the datasets are built; this fails at once instead.
    """
    wrapper = cfg.get('optim_wrapper') or {}
    if wrapper.get('type') != 'AmpOptimWrapper':
        return
    from mmengine.device import get_device
    if get_device() == 'cpu':
        raise RuntimeError(
            'mixed precision (--amp, optim_wrapper.type=AmpOptimWrapper) '
            "needs a CUDA/NPU/MLU/MUSA device; this machine has none. Drop "
            '--amp to train in fp32 on the CPU.')


def check_config(cfg: Config, splits: Iterable[str]) -> None:
    """All pre-flight checks of a config about to run ``splits``."""
    if 'model' not in cfg:
        raise KeyError(f'{cfg.filename}: the config defines no `model`')
    if 'train' in splits:
        check_amp_device(cfg)
    check_dataset_paths(cfg, splits)
