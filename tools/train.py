"""Train a detector with an rtdetr_mm (or any mmdet 3.x) config.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--auto-scale-lr] [--cfg-options k=v ...] [--launcher pytorch]

Multi-GPU: ``bash tools/dist_train.sh CONFIG GPUS``; Slurm:
``bash tools/slurm_train.sh PARTITION JOB CONFIG WORK_DIR``.
"""
import argparse

from mmengine.config import Config

from rtdetr_mm.utils import check_config
from rtdetr_mm.utils.cli import add_common_args, build_runner, load_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Train a detector')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by total batch size / '
        'auto_scale_lr.base_batch_size')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from CKPT, or from the latest checkpoint in the work '
        'dir when no path is given')
    add_common_args(parser)
    return parser.parse_args(argv)


def build_config(args) -> Config:
    """Load the config and apply the command-line overrides."""
    cfg = load_config(args)
    if args.amp:
        optim_wrapper = cfg.optim_wrapper.type
        if optim_wrapper == 'AmpOptimWrapper':
            print('AMP is already enabled in the config.')
        else:
            assert optim_wrapper == 'OptimWrapper', (
                '--amp needs optim_wrapper.type OptimWrapper, got '
                f'{optim_wrapper}')
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in \
                cfg.auto_scale_lr:
            raise KeyError('--auto-scale-lr needs auto_scale_lr = dict('
                           'enable=..., base_batch_size=...) in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def main(argv=None):
    args = parse_args(argv)
    cfg = build_config(args)
    check_config(cfg, splits=('train', 'val'))
    runner = build_runner(cfg)
    runner.train()


if __name__ == '__main__':
    main()
