"""Command-line plumbing shared by tools/train.py and tools/test.py."""
import argparse
import logging
import os
import os.path as osp

from mmengine.config import Config, DictAction
from mmengine.logging import print_log


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Flags both tools take (mmdet's names)."""
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. train_cfg.max_epochs=12 '
        'train_dataloader.batch_size=4')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torchrun passes --local-rank (torch >= 2.0), older launchers --local_rank
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    # openmim passes `--device cpu` (`--gpus 0`) or `--gpus N` with
    # `--launcher none`; N > 1 needs a distributed launcher.
    parser.add_argument(
        '--device',
        choices=['cpu', 'cuda'],
        help='run on this device (cpu hides every GPU)')
    parser.add_argument('--gpus', type=int, help=argparse.SUPPRESS)
    add_unsafe_load_arg(parser)


def add_unsafe_load_arg(parser: argparse.ArgumentParser) -> None:
    """``--unsafe-load``: read checkpoints with ``weights_only=False``."""
    parser.add_argument(
        '--unsafe-load',
        action='store_true',
        help='read checkpoints with weights_only=False, for trusted legacy '
        'files only: a malicious file can run code. Default: refused with '
        'the name of what the file wanted to load')


def apply_unsafe_load_arg(args) -> None:
    """Pass ``--unsafe-load`` on to the safe reader (and to DDP workers)."""
    if getattr(args, 'unsafe_load', False):
        from .serialization import UNSAFE_LOAD_ENV
        os.environ[UNSAFE_LOAD_ENV] = '1'


def load_config(args) -> Config:
    """Load ``args.config`` and apply the common flags to it."""
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    apply_unsafe_load_arg(args)
    if args.gpus is not None and args.gpus > 1 and args.launcher == 'none':
        raise ValueError(f'--gpus {args.gpus} needs a distributed launcher: '
                         'use tools/dist_train.sh or --launcher pytorch')
    if args.device == 'cpu' or args.gpus == 0:
        os.environ['CUDA_VISIBLE_DEVICES'] = ''  # before CUDA initialises
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    return cfg


def setup_cpu_distributed(cfg: Config) -> None:
    """Start DDP on machines without CUDA, which mmengine 0.10 cannot.

    mmengine's ``init_dist`` calls ``torch.cuda.set_device`` (an error
    without a GPU on current torch) and its DDP wrapper passes ``device_ids``
    (rejected for CPU modules). With ``--launcher pytorch`` and no CUDA we
    start the gloo process group from torchrun's environment ourselves (the
    Runner then skips ``init_dist``) and wrap the model without device ids.
    """
    import torch
    import torch.distributed as dist
    if cfg.launcher != 'pytorch' or torch.cuda.is_available() or \
            dist.is_initialized():
        return
    backend = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('backend')
    if backend not in (None, 'gloo'):
        print_log(
            f'no CUDA device: using the gloo backend instead of '
            f'{backend!r}',
            'current',
            level=logging.WARNING)
    dist.init_process_group(backend='gloo')
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel',
            device_ids=None,
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))


def build_runner(cfg: Config):
    """The config's runner (``runner_type``) or mmengine's default Runner."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    setup_cpu_distributed(cfg)
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)
