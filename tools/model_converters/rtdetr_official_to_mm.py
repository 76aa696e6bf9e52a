"""Convert an official RT-DETR checkpoint to an rtdetr_mm checkpoint.

    python tools/model_converters/rtdetr_official_to_mm.py \
        rtdetr_r18vd_dec3_6x_coco_from_paddle.pth rtdetr_r18vd_coco_mm.pth

The source may be a raw state dict or one wrapped in ``model`` or
``ema`` -> ``module`` (the official trainer saves both; ``ema`` is used when
present, as the official evaluation does). It is read safely (tensors and
plain containers only; ``--unsafe-load`` for a trusted legacy file), and a
checkpoint of another kind than the flags say (detector vs ImageNet backbone,
v1 vs v2, already converted) is refused with what it is. Every key is mapped
(see ``rtdetr_mm/models/utils/rtdetr_official_keys.py``), then checked against
the model built from the matching config: any unmapped, missing or
unexpected key and any shape mismatch is an error that lists them. The
result is an mmengine checkpoint (``state_dict`` + ``meta``) for
``load_from`` or ``tools/test.py``.

``--backbone-only`` converts the official ImageNet-pretrained PResNet
weights (e.g. ``ResNet50_vd_ssld_v2_pretrained_from_paddle.pth``) into a
state dict of the config's backbone, for its ``init_cfg=dict(
type='Pretrained', checkpoint=...)``.

``--version v2`` reads ``rtdetrv2_pytorch`` checkpoints whose deformable
attention samples the same number of points on every level with the default
(bilinear) method; they have the v1 architecture
(``configs/rtdetrv2_r{depth}vd_coco.py``). The "dsp" (discrete sampling) v2
models are not supported: their weights look the same, but they sample
differently. DEIM-RT-DETRv2 checkpoints (``ShihuaHuang95/DEIM``) are v2
ones whose query-position MLP has three layers (``as_reg``); they convert
with ``--version v2`` to ``configs/deim_rtdetrv2_r{depth}vd_coco.py`` (SiLU
MLPs).
"""
import argparse
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict, Optional

import torch
from torch import Tensor

from rtdetr_mm.models.utils.conversion import (add_converter_arguments,
                                               build_model_state,
                                               check_against_model, check_kind,
                                               read_official_state_dict,
                                               run_converter, save_converted)
from rtdetr_mm.models.utils.rtdetr_official_keys import (
    official_backbone_to_mm, official_to_mm)

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# block counts per stage -> depth (bottleneck blocks have a branch2c)
_DEPTHS = {
    ((2, 2, 2, 2), False): 18,
    ((3, 4, 6, 3), False): 34,
    ((3, 4, 6, 3), True): 50,
    ((3, 4, 23, 3), True): 101
}


def infer_depth(state_dict: Dict[str, Tensor]) -> int:
    """ResNet depth of an official PResNet backbone from its keys."""
    blocks: Dict[int, set] = {}
    bottleneck = False
    for key in state_dict:
        m = re.match(r'backbone\.res_layers\.(\d+)\.blocks\.(\d+)\.', key)
        if m:
            blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
            bottleneck |= '.branch2c.' in key
    counts = tuple(len(blocks[i]) for i in sorted(blocks))
    if (counts, bottleneck) not in _DEPTHS:
        raise ValueError(f'unknown PResNet layout: blocks per stage {counts}, '
                         f'bottleneck={bottleneck}; pass --config')
    return _DEPTHS[(counts, bottleneck)]


def default_config(state_dict: Dict[str, Tensor], version: str) -> str:
    """The config of an official detector of this depth: DEIM-RT-DETRv2
    (three-layer query-position MLP), RT-DETRv2 or RT-DETR."""
    depth = infer_depth(state_dict)
    if 'decoder.query_pos_head.layers.2.weight' in state_dict:
        return f'deim_rtdetrv2_r{depth}vd_coco.py'
    return f'rtdetr{"v2" if version == "v2" else ""}_r{depth}vd_coco.py'


def check_uniform_points(state_dict: Dict[str, Tensor]) -> None:
    """RT-DETRv2 decoders with the same number of sampling points on every
    level (all released non-"dsp" models: 4) equal v1's; others do not."""
    for key, scale in state_dict.items():
        if key.endswith('cross_attn.num_points_scale') and \
                not torch.allclose(scale, scale[:1].expand_as(scale)):
            raise NotImplementedError(
                f'{key} = {scale.tolist()}: per-level point counts are not '
                'supported (rtdetr_mm uses the same number of points on '
                'every level)')


def check_layout(src: str, state_dict: Dict[str, Tensor], version: str,
                 backbone_only: bool) -> None:
    """Refuse a checkpoint of another kind than the flags say, naming it."""
    wanted = ('official ImageNet PResNet backbone'
              if backbone_only else f'official RT-DETR {version} detector')
    check_kind(
        src,
        state_dict,
        wanted,
        advice={
            'official ImageNet PResNet backbone':
            'add --backbone-only',
            'official RT-DETR v1 detector':
            'drop --backbone-only and pass --version v1',
            'official RT-DETR v2 detector':
            'drop --backbone-only and pass --version v2',
        },
        unknown='expected keys under backbone./encoder./decoder. (a '
        'detector) or conv1./res_layers. (an ImageNet PResNet)')


def convert(src: str,
            dst: str,
            config: Optional[str] = None,
            version: str = 'v1',
            backbone_only: bool = False,
            unsafe_load: bool = False) -> OrderedDict:
    """Convert ``src`` (official) to ``dst`` (rtdetr_mm); return the dict."""
    state_dict, where = read_official_state_dict(src, unsafe_load)
    check_layout(src, state_dict, version, backbone_only)
    if version == 'v2':
        check_uniform_points(state_dict)
    if backbone_only:
        converted, ignored = official_backbone_to_mm(state_dict), []
    else:
        converted, ignored = official_to_mm(state_dict, version)
    if config is None:
        config = osp.join(REPO_ROOT, 'configs',
                          default_config(state_dict, version))
    converted = check_against_model(converted,
                                    build_model_state(config, backbone_only))
    save_converted(dst, converted, src,
                   f'official RT-DETR {version} ({where})', config, ignored)
    print(f'converted {len(state_dict)} official keys ({where}) into '
          f'{len(converted)} rtdetr_mm keys for {config}; ignored '
          f'(recomputed buffers): {ignored or "none"}; saved to {dst}')
    return converted


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_converter_arguments(
        parser, 'configs/{deim_rtdetrv2,rtdetrv2,rtdetr}_r{depth}vd_coco.py '
        'by the checkpoint: DEIM (three-layer query-position MLP), '
        '--version v2 or v1; depth read from the checkpoint')
    parser.add_argument(
        '--version',
        choices=['v1', 'v2'],
        default='v1',
        help='official code base: v1 = rtdetr_pytorch, v2 = rtdetrv2_pytorch')
    parser.add_argument(
        '--backbone-only',
        action='store_true',
        help='SRC is an official ImageNet PResNet checkpoint: write the '
        "weights of the config's backbone only")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    run_converter(convert, args.src, args.dst, args.config, args.version,
                  args.backbone_only, args.unsafe_load)


if __name__ == '__main__':
    main()
