"""Key mapping from official D-FINE encoders to rtdetr_mm's HybridEncoder.

The official layout is ``Peterande/D-FINE`` ``src/zoo/dfine/hybrid_encoder.py``
(``encoder.*`` in a detector checkpoint); ours is :class:`HybridEncoder` with
``fusion_block='gelan', downsample='scdown', lateral_act=False``
(``neck.*``). Input projections and AIFI layers are laid out as in RT-DETR
v2, so :func:`~.rtdetr_official_keys.official_to_mm` maps them; the CCFM
differs only in names:

======================================================  ======================
official (``encoder.``)                                 ours (``neck.``)
======================================================  ======================
``input_proj.{i}.conv|norm``                            ``input_proj.{i}.conv|bn``
``encoder.{i}.layers.{j}.*``                            as RT-DETR (mmdet layer)
``lateral_convs.{i}.conv|norm``                         ``lateral_convs.{i}.conv|bn``
``downsample_convs.{i}.0.cv{1,2}.conv|norm``            ``downsample_convs.{i}.cv{1,2}.conv|bn``
``{fpn,pan}_blocks.{i}.cv{1,4}.conv|norm``              same path, ``conv|bn``
``{fpn,pan}_blocks.{i}.cv{2,3}.1.conv|norm``            same path, ``conv|bn``
``{fpn,pan}_blocks.{i}.cv{2,3}.0.conv{1,2}.conv|norm``  same path, ``conv|bn``
``...cv{2,3}.0.bottlenecks.{k}.conv{1,2}.conv|norm``    same path, ``conv|bn``
======================================================  ======================

Official checkpoints are released in the training form; the deploy form
(``conv_bn_fused``) is not mapped.
"""  # noqa: E501
import re
from collections import OrderedDict
from typing import Dict, Iterable

from torch import Tensor

from .rtdetr_official_keys import official_to_mm

# conv-norm modules of D-FINE's CCFM, below ``encoder.``
_GELAN = (r'(?:fpn|pan)_blocks\.\d+\.(?:cv[14]|cv[23]\.1|cv[23]\.0\.'
          r'(?:conv[12]|bottlenecks\.\d+\.conv[12]))')
_CCFM = re.compile(r'^encoder\.(?P<path>lateral_convs\.\d+|' + _GELAN +
                   r'|downsample_convs\.\d+\.0\.cv[12])'
                   r'\.(?P<layer>conv|norm)\.(?P<param>\w+)$')
# what RT-DETR v2's rules map (pos_embed: recomputed buffers, left out)
_SHARED = re.compile(r'^encoder\.(?:input_proj|encoder|pos_embed\d+)\b')


def _ccfm_key(key: str) -> str:
    """Our key of an official CCFM key, or ``''`` if ``key`` is not one."""
    m = _CCFM.match(key)
    if m is None:
        return ''
    # SCDown sits in a one-element nn.Sequential in the official encoder
    path = re.sub(r'^(downsample_convs\.\d+)\.0\.', r'\1.', m['path'])
    layer = 'conv' if m['layer'] == 'conv' else 'bn'
    return f'neck.{path}.{layer}.{m["param"]}'


def dfine_encoder_key_map(keys: Iterable[str],
                          src_prefix: str = 'encoder.',
                          dst_prefix: str = 'neck.') -> Dict[str, str]:
    """Map official D-FINE encoder keys to ours.

    Args:
        keys (Iterable[str]): Official keys starting with ``src_prefix``
            (``'encoder.'`` in a detector checkpoint, ``''`` for the
            encoder's own ``state_dict()``); other keys are an error.
        src_prefix (str): Prefix of the official keys.
        dst_prefix (str): Prefix of our keys (``''`` for the neck's own
            ``state_dict()``).

    Returns:
        dict: ``{official key: our key}`` in the order of ``keys``; buffers
        that are recomputed (``pos_embed*``) are left out.

    Raises:
        KeyError: listing the keys that no rule maps.
    """
    mapping, shared, unmapped = OrderedDict(), OrderedDict(), []
    for key in keys:
        official = 'encoder.' + key[len(src_prefix):]
        mapping[key] = _ccfm_key(official)
        if not key.startswith(src_prefix):
            unmapped.append(key)
        elif not mapping[key] and _SHARED.match(official):
            shared[official] = key
        elif not mapping[key]:
            unmapped.append(key)
    if unmapped:
        raise KeyError(f'{len(unmapped)} key(s) are not official D-FINE '
                       f'encoder keys under {src_prefix!r}: {unmapped[:20]}' +
                       (' ...' if len(unmapped) > 20 else ''))
    # input projections and AIFI: RT-DETR v2's layout
    converted, _ = official_to_mm(shared, version='v2', num_decoder_layers=0)
    for ours, key in converted.items():
        mapping[key] = ours
    return OrderedDict((key, dst_prefix + ours[len('neck.'):])
                       for key, ours in mapping.items() if ours)


def dfine_encoder_to_mm(state_dict: Dict[str, Tensor],
                        src_prefix: str = 'encoder.',
                        dst_prefix: str = 'neck.') -> Dict[str, Tensor]:
    """Rename an official D-FINE encoder state dict to our layout (see
    :func:`dfine_encoder_key_map` for the arguments)."""
    mapping = dfine_encoder_key_map(state_dict, src_prefix, dst_prefix)
    return OrderedDict(
        (ours, state_dict[key]) for key, ours in mapping.items())
