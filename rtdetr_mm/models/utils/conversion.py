"""What every official-checkpoint converter does around its key mapping.

``tools/model_converters/*_official_to_mm.py`` differ only in how they map
keys; reading, recognising the kind of checkpoint, building the model to
check against, the check itself, saving and the command-line error exit are
the same and live here:

1. :func:`read_official_state_dict`: the safe reader
   (:func:`rtdetr_mm.utils.read_checkpoint`) and unwrapping (``ema`` ->
   ``module`` preferred over ``model``, as the official evaluation does);
2. :func:`check_kind`: a checkpoint of another kind than the tool converts
   (see :func:`describe_checkpoint_kind`) is refused, naming what it is;
3. the tool's own key mapping;
4. :func:`build_model` / :func:`build_model_state` and
   :func:`check_against_model`: every key and shape against the model the
   config builds;
5. :func:`save_converted`: an mmengine checkpoint (``state_dict`` +
   ``meta``);
6. :func:`run_converter`: the expected errors become ``error: ...`` and exit
   status 1, without a traceback.
"""
import argparse
import os.path as osp
import sys
from collections import OrderedDict
from typing import Callable, Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from rtdetr_mm.utils import CheckpointFileError, read_checkpoint
from .checkpoint import compare_keys, describe_key_problems, find_state_dict
from .rtdetr_official_keys import describe_layout

# what a converter raises for a bad input (anything else is a bug: traceback)
CONVERSION_ERRORS = (KeyError, ValueError, NotImplementedError,
                     FileNotFoundError, CheckpointFileError)


def read_official_state_dict(src: str,
                             unsafe_load: bool = False
                             ) -> Tuple[Dict[str, Tensor], str]:
    """The state dict in ``src`` and where it was (``'ema.module'``,
    ``'model'``, ``'raw'``...).

    Read with the safe reader (``unsafe_load`` only for a trusted legacy
    file); unwrapped by :func:`~.checkpoint.find_state_dict`, which prefers
    an EMA copy to ``model``.

    Raises:
        CheckpointFileError: ``src`` is not a checkpoint or wants to load
            something else than tensors and plain containers.
        FileNotFoundError: ``src`` does not exist.
        ValueError: no state dict in ``src``.
    """
    checkpoint = read_checkpoint(src, unsafe=unsafe_load or None)
    try:
        return find_state_dict(checkpoint)
    except ValueError as error:
        raise ValueError(f'{src}: {error}') from None


def describe_checkpoint_kind(state_dict: Dict[str, Tensor]) -> str:
    """Which kind of checkpoint ``state_dict`` is, by its key names.

    Returns one of ``'official D-FINE detector'``, ``'HGNetv2 ImageNet
    backbone'`` (D-FINE's ``PPHGNetV2_B*_stage1.pth`` or timm's) and the
    kinds of :func:`~.rtdetr_official_keys.describe_layout` (``'official
    RT-DETR v1|v2 detector'``, ``'official ImageNet PResNet backbone'``,
    ``'rtdetr_mm detector'``, ``'unknown layout'``).
    """

    def has(prefix):
        return any(k.startswith(prefix) for k in state_dict)

    # D-FINE's decoder has the FDR buffers and the LQE layers RT-DETR lacks
    if has('backbone.') and has('encoder.') and (
            'decoder.up' in state_dict or has('decoder.decoder.lqe_layers.')):
        return 'official D-FINE detector'
    layout = describe_layout(state_dict)
    if layout == 'unknown layout' and has('stem.stem1.') and has('stages.'):
        return 'HGNetv2 ImageNet backbone'
    return layout


# what to do with a checkpoint of each kind, for refusals
CONVERTER_FOR_KIND = {
    'official RT-DETR v1 detector':
    'convert it with tools/model_converters/rtdetr_official_to_mm.py',
    'official RT-DETR v2 detector':
    'convert it with tools/model_converters/rtdetr_official_to_mm.py '
    '--version v2',
    'official ImageNet PResNet backbone':
    'convert it with tools/model_converters/rtdetr_official_to_mm.py '
    '--backbone-only',
    'official D-FINE detector':
    'convert it with tools/model_converters/dfine_official_to_mm.py',
    'HGNetv2 ImageNet backbone':
    'it needs no conversion: HGNetv2 loads it with init_cfg=dict('
    "type='Pretrained', checkpoint=...)",
    'rtdetr_mm detector':
    'it needs no conversion: use it as load_from or with tools/test.py',
}


def check_kind(
    src: str,
    state_dict: Dict[str, Tensor],
    wanted: str,
    advice: Optional[Dict[str, str]] = None,
    unknown: str = 'expected keys under backbone./encoder./'
    'decoder. (a detector)'
) -> None:
    """Refuse a checkpoint that is not of the ``wanted`` kind, naming it.

    Args:
        src: the file (for the message).
        state_dict: its unwrapped state dict.
        wanted: a kind of :func:`describe_checkpoint_kind`.
        advice: what to do with each other kind, over
            :data:`CONVERTER_FOR_KIND`.
        unknown: the hint for an unknown layout.

    Raises:
        ValueError: ``'{src} is an {kind} checkpoint, not an {wanted} one
            ({n} keys, e.g. [...]): {advice}'``.
    """
    kind = describe_checkpoint_kind(state_dict)
    if kind == wanted:
        return
    advice = {**CONVERTER_FOR_KIND, **(advice or {})}
    hint = advice.get(kind, unknown)
    raise ValueError(f'{src} is an {kind} checkpoint, not an {wanted} '
                     f'one ({len(state_dict)} keys, e.g. '
                     f'{sorted(state_dict)[:3]}): {hint}')


def build_model(config: str, backbone_only: bool = False) -> nn.Module:
    """The model (or its backbone) ``config`` describes, without loading
    any pretrained weights (``backbone.init_cfg`` is dropped)."""
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import rtdetr_mm  # noqa: F401  (registers the modules)
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    cfg.model.backbone.init_cfg = None
    if backbone_only:
        return MODELS.build(cfg.model.backbone)
    return MODELS.build(cfg.model)


def build_model_state(config: str,
                      backbone_only: bool = False) -> Dict[str, Tensor]:
    """State dict of the model (or its backbone) described by ``config``."""
    return build_model(config, backbone_only).state_dict()


def check_against_model(state_dict: Dict[str, Tensor],
                        model_state: Dict[str, Tensor]) -> OrderedDict:
    """Check keys and shapes against a model; add BN batch counters.

    ``num_batches_tracked`` is absent from official checkpoints whose
    backbone uses frozen BN; it is taken from the model (zeros).

    Returns:
        The state dict in the model's key order.

    Raises:
        ValueError: listing missing keys, unexpected keys and shape
            mismatches.
    """
    out = OrderedDict(state_dict)
    for key, value in model_state.items():
        if key not in out and key.endswith('num_batches_tracked'):
            out[key] = value.clone()
    problems = describe_key_problems(*compare_keys(model_state, out))
    if problems:
        raise ValueError('converted checkpoint does not fit the model; ' +
                         problems)
    return OrderedDict((k, out[k]) for k in model_state)


def save_converted(dst: str, state_dict: Dict[str, Tensor], src: str,
                   source_layout: str, config: str, ignored_keys) -> None:
    """Write an mmengine checkpoint: ``dict(state_dict=..., meta=...)``,
    the meta naming the source file and layout, the config and the official
    keys not loaded."""
    meta = dict(
        source=osp.basename(src),
        source_layout=source_layout,
        config=osp.basename(config),
        ignored_keys=ignored_keys)
    torch.save(dict(state_dict=state_dict, meta=meta), dst)


def run_converter(convert: Callable, *args, **kwargs):
    """Call ``convert``; exit with ``error: <message>`` on a bad input
    (:data:`CONVERSION_ERRORS`), as a command-line tool should."""
    try:
        return convert(*args, **kwargs)
    except CONVERSION_ERRORS as err:
        sys.exit(f'error: {err}')


def add_converter_arguments(parser: argparse.ArgumentParser,
                            default_config: str) -> None:
    """``src``, ``dst``, ``--unsafe-load`` and ``--config`` (its default
    described by ``default_config``), shared by the converters."""
    parser.add_argument('src', help='official checkpoint (.pth)')
    parser.add_argument('dst', help='output rtdetr_mm checkpoint (.pth)')
    parser.add_argument(
        '--unsafe-load',
        action='store_true',
        help='read SRC with weights_only=False (only for a file you trust: '
        'a malicious checkpoint runs code). Default: refuse anything but '
        'tensors and plain containers, naming what the file wanted')
    parser.add_argument(
        '--config',
        default=None,
        help=f'rtdetr_mm config of the model (default: {default_config})')
