"""Checks run by tools/train.py and tools/test.py before building a Runner.

Building a Runner and a dataset can take a while and fails deep inside
mmengine when a dataset path is wrong; these checks fail at once with a
message that says which setting to change.
"""
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


def check_config(cfg: Config, splits: Iterable[str]) -> None:
    """All pre-flight checks of a config about to run ``splits``."""
    if 'model' not in cfg:
        raise KeyError(f'{cfg.filename}: the config defines no `model`')
    check_dataset_paths(cfg, splits)
