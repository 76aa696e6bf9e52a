"""Write training batches of given epochs as the model sees them.

    python tools/analysis_tools/browse_augmentation.py CONFIG \
        --epochs 0 5 7 9 --output-dir DIR [--num 4] [--seed 0] [--grid] \
        [--cfg-options KEY=VALUE ...]

Builds the config's training dataloader (``--num`` samples a batch, no
workers), its data preprocessor and its augmentation hooks
(:class:`AugmentationStageHook`, mmdet's ``PipelineSwitchHook`` and its
subclasses such as :class:`StopAugmentationHook`, whose best-checkpoint
reload is skipped). For each epoch, in increasing order, it runs those
hooks' ``before_train_epoch`` on a stand-in runner at that epoch, so the
hooks themselves switch the pipeline and batch augments as in training (or
on resuming); draws the first batch of the epoch's sampler order; runs the
data preprocessor in training mode (normalisation, padding, batch augments
such as MixUp and the multi-scale resize); and writes each image,
de-normalised, with its ground-truth boxes and class names, as
``DIR/epoch{E:03d}_stage{S}_{i:02d}.png``. ``--grid`` also writes the
batch side by side as ``DIR/epoch{E:03d}_stage{S}_grid.jpg``. ``S`` is the
augmentation stage in force: 1 is the config's own (with a
``PipelineSwitchHook``, 2 from its switch epoch). Randomness is seeded with
``--seed`` plus the epoch; a batch resize (multi-scale) uses the size it
drew at the batch before, as in training.
"""
import argparse
import copy
from pathlib import Path
from types import SimpleNamespace
from typing import List

import cv2
import numpy as np
import torch
from mmdet.engine.hooks import PipelineSwitchHook
from mmdet.registry import HOOKS, MODELS
from mmengine.config import Config, DictAction
from mmengine.hooks import DistSamplerSeedHook
from mmengine.logging import MessageHub, MMLogger
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmengine.runner.utils import set_random_seed

import rtdetr_mm  # noqa: F401  (registers the transforms, hooks, augments)
from rtdetr_mm.engine.hooks import AugmentationStageHook

AUGMENTATION_HOOKS = (AugmentationStageHook, PipelineSwitchHook)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument(
        '--epochs',
        type=int,
        nargs='+',
        required=True,
        help='0-based epochs to show')
    parser.add_argument('--output-dir', required=True)
    parser.add_argument('--num', type=int, default=4, help='images a batch')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--grid',
        action='store_true',
        help='also write each batch as one JPEG')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. '
        'train_dataloader.dataset.dataset.data_root=data/toy_shapes/')
    args = parser.parse_args(argv)
    if args.num < 1 or min(args.epochs) < 0:
        parser.error('--num must be >= 1 and --epochs >= 0')
    return args


def augmentation_hooks(cfg: Config) -> list:
    """The config's hooks that switch augmentation, built."""
    entries = [h for h in (cfg.get('default_hooks') or {}).values() if h]
    entries += list(cfg.get('custom_hooks') or [])
    hooks = []
    for entry in entries:
        hook_type = entry['type']
        if isinstance(hook_type, str):
            hook_type = HOOKS.get(hook_type)
        if issubclass(hook_type, AUGMENTATION_HOOKS):
            hook = HOOKS.build(copy.deepcopy(entry))
            if getattr(hook, 'reload_best', False):
                hook.reload_best = False  # this tool loads no weights
            hooks.append(hook)
    return hooks


def stage_of(hooks: list, epoch: int) -> int:
    """The augmentation stage in force at ``epoch``: 1 (the config's), 2..."""
    stage = 1
    for hook in hooks:
        if isinstance(hook, AugmentationStageHook):
            stage += hook.stage_at(epoch) - 1
        else:
            stage += int(epoch >= hook.switch_epoch)
    return stage


def to_bgr_uint8(image: torch.Tensor, preprocessor) -> np.ndarray:
    """(C, H, W) preprocessed image -> (H, W, 3) BGR uint8."""
    # mmengine's ImgDataPreprocessor keeps what it did private
    if preprocessor._enable_normalize:
        image = image * preprocessor.std + preprocessor.mean
    image = image.clamp(0, 255).byte().permute(1, 2, 0).cpu().numpy()
    if preprocessor._channel_conversion:  # the model sees RGB
        image = image[..., ::-1]
    return np.ascontiguousarray(image)


def draw_boxes(image: np.ndarray, sample, classes, palette) -> np.ndarray:
    """``image`` with the sample's ground-truth boxes and class names."""
    gt = sample.gt_instances
    for box, label in zip(gt.bboxes.tolist(), gt.labels.tolist()):
        colour = tuple(int(c) for c in palette[label][::-1])  # RGB -> BGR
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, 1)
        cv2.putText(image, classes[label], (x1, max(y1 - 2, 8)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.3, colour, 1, cv2.LINE_AA)
    return image


def main(argv=None) -> List[Path]:
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    loader_cfg = copy.deepcopy(cfg.train_dataloader)
    loader_cfg.update(batch_size=args.num, num_workers=0)
    loader_cfg.pop('persistent_workers', None)
    loader = Runner.build_dataloader(loader_cfg, seed=args.seed)
    preprocessor = MODELS.build(cfg.model.data_preprocessor)
    metainfo = loader.dataset.metainfo
    classes = metainfo['classes']
    palette = metainfo.get('palette') or [(0, 255, 0)] * len(classes)
    hooks = [DistSamplerSeedHook()] + augmentation_hooks(cfg)
    logger = MMLogger.get_instance('browse_augmentation')
    message_hub = MessageHub.get_current_instance()
    runner = SimpleNamespace(
        train_dataloader=loader,
        train_loop=SimpleNamespace(dataloader=loader),
        model=SimpleNamespace(data_preprocessor=preprocessor),
        logger=logger,
        hooks=[])  # no EMA hook for StopAugmentationHook's momentum

    written = []
    for epoch in sorted(set(args.epochs)):
        runner.epoch = epoch
        for hook in hooks:
            hook.before_train_epoch(runner)
        set_random_seed(args.seed + epoch)
        message_hub.update_info('iter', len(written))
        # the loader's first batch at this epoch, fetched as a loader
        # without workers does; the whole epoch's indices are drawn so that
        # a stateful batch sampler (mmdet's aspect-ratio buckets) ends it
        indices = list(loader.batch_sampler)[0]
        data = loader.collate_fn([loader.dataset[i] for i in indices])
        with torch.no_grad():
            data = preprocessor(data, training=True)
        stage = stage_of(hooks[1:], epoch)
        tiles = []
        for i, (image, sample) in enumerate(
                zip(data['inputs'], data['data_samples'])):
            tile = draw_boxes(
                to_bgr_uint8(image, preprocessor), sample, classes, palette)
            path = out_dir / f'epoch{epoch:03d}_stage{stage}_{i:02d}.png'
            cv2.imwrite(str(path), tile)
            written.append(path)
            tiles.append(tile)
        if args.grid:
            path = out_dir / f'epoch{epoch:03d}_stage{stage}_grid.jpg'
            cv2.imwrite(
                str(path), np.concatenate(tiles, 1),
                [cv2.IMWRITE_JPEG_QUALITY, 80])
            written.append(path)
        logger.info(f'epoch {epoch} (stage {stage}): {len(tiles)} images, '
                    f'{tuple(data["inputs"].shape[-2:])} px, boxes '
                    f'{[len(s.gt_instances) for s in data["data_samples"]]}')
    logger.info(f'{len(written)} files in {out_dir}')
    return written


if __name__ == '__main__':
    main()
