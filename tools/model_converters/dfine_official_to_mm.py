"""Convert an official D-FINE checkpoint to an rtdetr_mm checkpoint.

    python tools/model_converters/dfine_official_to_mm.py \
        dfine_s_coco.pth dfine_s_coco_mm.pth

The source (``Peterande/D-FINE``: ``dfine_{n,s,m,l,x}_coco.pth``, the
Objects365 -> COCO ``*_obj2coco*.pth``, or a checkpoint of your own training)
may be a raw state dict or one wrapped in ``model`` or ``ema`` -> ``module``
(the official trainer saves both; ``ema`` is used when present, as the
official ``tools/inference/torch_inf.py`` does). It is read safely (tensors
and plain containers only; ``--unsafe-load`` for a trusted legacy file), and
a checkpoint of another kind (an RT-DETR one, an HGNetv2 ImageNet file, one
already converted) is refused with what it is. Every key is mapped:

* ``backbone.*``: HGNetv2 keys are the same in both layouts;
* ``encoder.*`` -> ``neck.*``: ``rtdetr_mm/models/utils/dfine_official_keys.py``;
* ``decoder.*`` -> ``input_proj``, ``memory_trans_*``, ``decoder``,
  ``bbox_head``, ``dn_query_generator``:
  ``rtdetr_mm/models/utils/dfine_decoder_keys.py``; the buffers ours
  computes from the config (``up``, ``reg_scale``, the points per level,
  anchors) are checked against the config, not loaded.

Then the result is checked against the model built from the config: any
unmapped, missing or unexpected key and any shape mismatch is an error that
lists them. Without ``--config`` the size (N/S/M/L/X) is read from the keys
(backbone arch, encoder and decoder widths, decoder layers, ``reg_scale``)
and ``configs/dfine_hgnetv2_{size}_coco.py`` is used. The result is an
mmengine checkpoint (``state_dict`` + ``meta``) for ``load_from`` or
``tools/test.py``.

Objects365 checkpoints (``*_obj365*.pth``, 366 classes) need a config whose
``model.bbox_head.num_classes`` is 366.

DEIM-D-FINE checkpoints (``ShihuaHuang95/DEIM``: ``deim_dfine_hgnetv2_*``)
have D-FINE's keys, but their MLPs and decoder FFNs use SiLU, which no key
shows: pass ``--deim`` (``configs/deim_dfine_hgnetv2_{size}_coco.py``) or a
DEIM ``--config``; with a D-FINE config the model loads and predicts wrongly.
"""  # noqa: E501
import argparse
import os.path as osp
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

from torch import Tensor

from rtdetr_mm.models.utils.conversion import (add_converter_arguments,
                                               build_model,
                                               check_against_model, check_kind,
                                               read_official_state_dict,
                                               run_converter, save_converted)
from rtdetr_mm.models.utils.dfine_decoder_keys import (dfine_decoder_key_map,
                                                       dfine_decoder_settings,
                                                       dfine_decoder_to_mm,
                                                       dfine_model_settings)
from rtdetr_mm.models.utils.dfine_official_keys import dfine_encoder_key_map

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
WANTED = 'official D-FINE detector'
# The published sizes (official configs/dfine/dfine_hgnetv2_*_coco.yml):
# backbone arch, encoder width, decoder width, decoder layers, reg_scale.
SIZES = {
    'n': ('b0', 128, 128, 3, 4.0),
    's': ('b0', 256, 256, 3, 4.0),
    'm': ('b2', 256, 256, 4, 4.0),
    'l': ('b4', 256, 256, 6, 4.0),
    'x': ('b5', 384, 256, 6, 8.0),
}
COCO_CLASSES = 80


def hgnetv2_arch(state_dict: Dict[str, Tensor],
                 prefix: str = 'backbone.') -> Optional[str]:
    """The published HGNetv2 arch (``'b0'`` .. ``'b6'``) whose stem widths
    and, per stage, output width, blocks and layers per block the keys under
    ``prefix`` have; None if none."""
    from rtdetr_mm.models.backbones.hgnetv2 import HGNetv2

    def width(key):
        value = state_dict.get(prefix + key)
        return None if value is None else value.shape[0]

    def count(pattern):
        regex = re.compile(re.escape(prefix) + pattern)
        return len({m.group(1) for m in map(regex.match, state_dict) if m})

    found = ((width('stem.stem1.conv.weight'),
              width('stem.stem4.conv.weight')),
             tuple((width(f'stages.{i}.blocks.0.aggregation.1.conv.weight'),
                    count(rf'stages\.{i}\.blocks\.(\d+)\.'),
                    count(rf'stages\.{i}\.blocks\.0\.layers\.(\d+)\.'))
                   for i in range(4)))
    for arch, settings in HGNetv2.arch_settings.items():
        published = (tuple(settings['stem_channels']),
                     tuple((row[2], row[3], row[7])
                           for row in settings['stages']))
        if found == published:
            return arch
    return None


def infer_size(state_dict: Dict[str, Tensor]) -> str:
    """The published size (``'n'`` .. ``'x'``) of an official D-FINE state
    dict, from its backbone arch, encoder and decoder widths, decoder layers
    and ``reg_scale``.

    Raises:
        ValueError: the layout is not a published COCO model (saying what
            it is and to pass ``--config``).
    """
    try:
        settings = dfine_decoder_settings(state_dict)
        found = (hgnetv2_arch(state_dict),
                 state_dict['encoder.input_proj.0.conv.weight'].shape[0],
                 settings['embed_dims'], settings['num_layers'],
                 settings['reg_scale'])
    except KeyError as error:
        raise ValueError(f'cannot read the size from the keys ({error} is '
                         'missing): pass --config') from None
    sizes = [size for size, values in SIZES.items() if values == found]
    names = ('backbone arch', 'encoder width', 'decoder width',
             'decoder layers', 'reg_scale')
    if not sizes:
        raise ValueError(
            'the checkpoint is none of the published D-FINE sizes ('
            f'{dict(zip(names, found))}; published: '
            f'{ {s.upper(): v for s, v in SIZES.items()} }): pass --config')
    size = sizes[0]
    if settings['num_classes'] != COCO_CLASSES:
        raise ValueError(
            f'the checkpoint is a D-FINE-{size.upper()} with '
            f'{settings["num_classes"]} classes (Objects365: 366), the COCO '
            f'configs have {COCO_CLASSES}: pass --config with a config of '
            f"_base_ = 'configs/dfine_hgnetv2_{size}_coco.py' and model = "
            f'dict(bbox_head=dict(num_classes={settings["num_classes"]}))')
    return size


def dfine_official_to_mm(
        state_dict: Dict[str, Tensor],
        expected: Optional[dict] = None) -> Tuple[OrderedDict, List[str]]:
    """Map an official D-FINE detector state dict to rtdetr_mm's DFINE.

    Args:
        state_dict: official keys (``backbone.``, ``encoder.``,
            ``decoder.``), unwrapped.
        expected: settings the decoder must imply (see
            :func:`dfine_decoder_to_mm`), e.g. ``dfine_model_settings(model)``.

    Returns:
        The mapped state dict and the official keys not loaded because ours
        computes them (checked against ``expected`` where they are
        settings).

    Raises:
        KeyError: listing the keys no rule maps.
        ValueError: decoder settings that differ from ``expected``.
    """
    parts = {'backbone.': [], 'encoder.': [], 'decoder.': []}
    unmapped = []
    for key in state_dict:
        prefix = key.split('.', 1)[0] + '.'
        parts.get(prefix, unmapped).append(key)
    if unmapped:
        raise KeyError(f'{len(unmapped)} key(s) have no mapping (not under '
                       f'{list(parts)}): {unmapped[:20]}' +
                       (' ...' if len(unmapped) > 20 else ''))
    # HGNetv2: the same keys (timm's module names) in both layouts
    out = OrderedDict((key, state_dict[key]) for key in parts['backbone.'])
    encoder = dfine_encoder_key_map(parts['encoder.'])
    out.update((ours, state_dict[key]) for key, ours in encoder.items())
    decoder = {key: state_dict[key] for key in parts['decoder.']}
    out.update(dfine_decoder_to_mm(decoder, expected=expected))
    mapped = set(encoder) | set(dfine_decoder_key_map(decoder))
    ignored = [
        key for key in parts['encoder.'] + parts['decoder.']
        if key not in mapped
    ]
    return out, ignored


def convert(src: str,
            dst: str,
            config: Optional[str] = None,
            unsafe_load: bool = False,
            deim: bool = False) -> OrderedDict:
    """Convert ``src`` (official) to ``dst`` (rtdetr_mm); return the dict."""
    from rtdetr_mm.models.detectors import DFINE

    state_dict, where = read_official_state_dict(src, unsafe_load)
    check_kind(
        src,
        state_dict,
        WANTED,
        unknown='expected keys under backbone./encoder./decoder. with '
        "D-FINE's decoder.up and decoder.decoder.lqe_layers.")
    if config is None:
        config = osp.join(
            REPO_ROOT, 'configs', f'{"deim_" if deim else ""}dfine_hgnetv2_'
            f'{infer_size(state_dict)}_coco.py')
    model = build_model(config)
    if not isinstance(model, DFINE):
        raise ValueError(f'{config} builds a {type(model).__name__}, not a '
                         'DFINE detector: pass a D-FINE config')
    try:
        converted, ignored = dfine_official_to_mm(
            state_dict, expected=dfine_model_settings(model))
    except ValueError as error:
        raise ValueError(f'{src} does not fit {config}: {error} (num_classes'
                         ': bbox_head.num_classes; embed_dims, num_layers: '
                         "the decoder's)") from None
    converted = check_against_model(converted, model.state_dict())
    save_converted(dst, converted, src, f'official D-FINE ({where})', config,
                   ignored)
    print(f'converted {len(state_dict)} official keys ({where}) into '
          f'{len(converted)} rtdetr_mm keys for {config}; not loaded '
          f'(computed from the config, checked): {len(ignored)} buffers; '
          f'saved to {dst}')
    return converted


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    add_converter_arguments(
        parser, 'configs/dfine_hgnetv2_{size}_coco.py, the size read from '
        'the checkpoint; required for other class counts, e.g. Objects365')
    parser.add_argument(
        '--deim',
        action='store_true',
        help='SRC is a DEIM-D-FINE checkpoint: default config '
        'configs/deim_dfine_hgnetv2_{size}_coco.py (SiLU MLPs; the keys are '
        "D-FINE's, so this cannot be read from the file)")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    run_converter(convert, args.src, args.dst, args.config, args.unsafe_load,
                  args.deim)


if __name__ == '__main__':
    main()
