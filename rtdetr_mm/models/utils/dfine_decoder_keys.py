"""Key mapping from official D-FINE decoders to rtdetr_mm's DFINE detector.

The official layout is ``Peterande/D-FINE`` ``DFINETransformer``
(``decoder.*`` in a detector checkpoint); ours spreads it over the
:class:`DFINE` detector, its :class:`DFINETransformerDecoder` and its
:class:`DFINEHead` (``{N}`` = number of decoder layers):

==============================================  ===========================================
official (``decoder.``)                         ours
==============================================  ===========================================
``input_proj.{i}.conv|norm``                    ``input_proj.{i}.conv|bn``
``decoder.layers.{i}.self_attn.*``              ``decoder.layers.{i}.self_attn.attn.*``
``decoder.layers.{i}.norm1|norm3``              ``decoder.layers.{i}.norms.0|1``
``decoder.layers.{i}.cross_attn.*``             ``decoder.layers.{i}.cross_attn.*``
``decoder.layers.{i}.gateway.gate|norm``        ``decoder.layers.{i}.gate.linear|norm``
``decoder.layers.{i}.linear1|linear2``          ``decoder.layers.{i}.ffn.layers.0.0|1``
``decoder.lqe_layers.{i}.reg_conf.layers.{k}``  ``bbox_head.lqe_layers.{i}.mlp.layers.{k}``
``denoising_class_embed``                       ``dn_query_generator.label_embedding``
``query_pos_head.layers.{k}``                   ``decoder.ref_point_head.layers.{k}``
``enc_output.proj|norm``                        ``memory_trans_fc|norm``
``enc_score_head``                              ``bbox_head.cls_branches.{N}``
``enc_bbox_head.layers.{k}``                    ``bbox_head.reg_branches.{N}.{2k}``
``dec_score_head.{i}``                          ``bbox_head.cls_branches.{i}``
``dec_bbox_head.{i}.layers.{k}``                ``bbox_head.reg_branches.{i}.{2k}``
``pre_bbox_head.layers.{k}``                    ``bbox_head.pre_reg_branch.{2k}``
==============================================  ===========================================

Official buffers that ours computes from the config are not mapped but
read and checked: ``up``/``reg_scale`` (stored twice, as ``decoder.up`` and
``decoder.decoder.up``) are the head's ``up``/``reg_scale``, each layer's
``cross_attn.num_points_scale`` (1 / n repeated n times per level) gives
``num_points``; ``anchors``/``valid_mask`` (for ``eval_spatial_size``) are
recomputed for every input size. Levels whose channels equal the hidden
size have no input projection in either layout.
"""  # noqa: E501
import re
from collections import OrderedDict
from typing import Dict, Iterable, List, Optional

from torch import Tensor, nn

# (official key below ``decoder.``, our key); {i} {k} layer/MLP indices,
# {p} a parameter or buffer name, {rest} a longer path, {k2} = 2 * k (an
# official MLP's linears are every other module of our branches), {N} =
# number of decoder layers
_RULES = [
    ('input_proj.{i}.conv.weight', 'input_proj.{i}.conv.weight'),
    ('input_proj.{i}.norm.{p}', 'input_proj.{i}.bn.{p}'),
    ('decoder.layers.{i}.self_attn.{rest}',
     'decoder.layers.{i}.self_attn.attn.{rest}'),
    ('decoder.layers.{i}.norm1.{p}', 'decoder.layers.{i}.norms.0.{p}'),
    ('decoder.layers.{i}.cross_attn.sampling_offsets.{p}',
     'decoder.layers.{i}.cross_attn.sampling_offsets.{p}'),
    ('decoder.layers.{i}.cross_attn.attention_weights.{p}',
     'decoder.layers.{i}.cross_attn.attention_weights.{p}'),
    ('decoder.layers.{i}.gateway.gate.{p}',
     'decoder.layers.{i}.gate.linear.{p}'),
    ('decoder.layers.{i}.gateway.norm.{p}',
     'decoder.layers.{i}.gate.norm.{p}'),
    ('decoder.layers.{i}.linear1.{p}',
     'decoder.layers.{i}.ffn.layers.0.0.{p}'),
    ('decoder.layers.{i}.linear2.{p}', 'decoder.layers.{i}.ffn.layers.1.{p}'),
    ('decoder.layers.{i}.norm3.{p}', 'decoder.layers.{i}.norms.1.{p}'),
    ('decoder.lqe_layers.{i}.reg_conf.layers.{k}.{p}',
     'bbox_head.lqe_layers.{i}.mlp.layers.{k}.{p}'),
    ('denoising_class_embed.weight',
     'dn_query_generator.label_embedding.weight'),
    ('query_pos_head.layers.{k}.{p}', 'decoder.ref_point_head.layers.{k}.{p}'),
    ('enc_output.proj.{p}', 'memory_trans_fc.{p}'),
    ('enc_output.norm.{p}', 'memory_trans_norm.{p}'),
    ('enc_score_head.{p}', 'bbox_head.cls_branches.{N}.{p}'),
    ('enc_bbox_head.layers.{k}.{p}', 'bbox_head.reg_branches.{N}.{k2}.{p}'),
    ('dec_score_head.{i}.{p}', 'bbox_head.cls_branches.{i}.{p}'),
    ('dec_bbox_head.{i}.layers.{k}.{p}',
     'bbox_head.reg_branches.{i}.{k2}.{p}'),
    ('pre_bbox_head.layers.{k}.{p}', 'bbox_head.pre_reg_branch.{k2}.{p}'),
]
_GROUPS = {'i': r'\d+', 'k': r'\d+', 'p': r'\w+', 'rest': r'[\w.]+'}


def _compile(template: str) -> re.Pattern:
    pattern = re.escape(template)
    for name, group in _GROUPS.items():
        pattern = pattern.replace(
            re.escape(f'{{{name}}}'), f'(?P<{name}>{group})')
    return re.compile(f'^{pattern}$')


_COMPILED = [(_compile(official), ours) for official, ours in _RULES]
# checked (see dfine_decoder_settings), not mapped
_BUFFERS = re.compile(r'^(?:decoder\.)?(?:up|reg_scale)$|^anchors$|'
                      r'^valid_mask$|^decoder\.layers\.\d+\.cross_attn\.'
                      r'num_points_scale$')
_LAYER = re.compile(r'^decoder\.layers\.(\d+)\.')


def _strip(keys: Iterable[str], src_prefix: str) -> Dict[str, str]:
    """``{key below decoder.: key}``; keys outside the prefix: KeyError."""
    keys = list(keys)
    outside = [k for k in keys if not k.startswith(src_prefix)]
    if outside:
        raise KeyError(f'{len(outside)} key(s) are not under {src_prefix!r} '
                       f'(pass the decoder part of the checkpoint): '
                       f'{outside[:20]}' +
                       (' ...' if len(outside) > 20 else ''))
    return OrderedDict((k[len(src_prefix):], k) for k in keys)


def dfine_decoder_key_map(keys: Iterable[str],
                          src_prefix: str = 'decoder.') -> Dict[str, str]:
    """Map official D-FINE decoder keys to our detector's keys.

    Args:
        keys (Iterable[str]): Official keys starting with ``src_prefix``
            (``'decoder.'`` in a detector checkpoint, ``''`` for the
            ``DFINETransformer``'s own ``state_dict()``).
        src_prefix (str): Prefix of the official keys.

    Returns:
        dict: ``{official key: our key}`` in the order of ``keys``; the
        buffers listed in the module docstring are left out.

    Raises:
        KeyError: listing the keys outside ``src_prefix`` or that no rule
        maps.
    """
    stripped = _strip(keys, src_prefix)
    layers = {int(m.group(1)) for m in map(_LAYER.match, stripped) if m}
    num_layers = max(layers) + 1 if layers else 0
    mapping, unmapped = OrderedDict(), []
    for key, full in stripped.items():
        if _BUFFERS.match(key):
            continue
        for regex, template in _COMPILED:
            m = regex.match(key)
            if m is not None:
                groups = m.groupdict()
                if 'k' in groups:
                    groups['k2'] = 2 * int(groups['k'])
                mapping[full] = template.format(N=num_layers, **groups)
                break
        else:
            unmapped.append(full)
    if unmapped:
        raise KeyError(f'{len(unmapped)} key(s) are not official D-FINE '
                       f'decoder keys: {unmapped[:20]}' +
                       (' ...' if len(unmapped) > 20 else ''))
    return mapping


def _points_from_scale(scale: Tensor, key: str) -> List[int]:
    """[3, 6, 3] from (1/3, 1/3, 1/3, 1/6 x 6, 1/3 x 3)."""
    values, points, pos = scale.tolist(), [], 0
    while pos < len(values):
        n = round(1 / values[pos]) if values[pos] > 0 else 0
        run = values[pos:pos + n]
        if n < 1 or len(run) != n or max(abs(v - 1 / n) for v in run) > 1e-6:
            raise ValueError(f'{key} is not 1/n repeated n times per level: '
                             f'{values}')
        points.append(n)
        pos += n
    return points


def dfine_decoder_settings(state_dict: Dict[str, Tensor],
                           src_prefix: str = 'decoder.') -> dict:
    """The config values an official D-FINE decoder state dict implies.

    Returns:
        dict: ``num_layers``, ``embed_dims``, ``num_classes``, ``reg_max``,
        ``reg_scale``, ``up`` (floats) and ``num_points`` (list per level).

    Raises:
        ValueError: if duplicated buffers disagree (``up``/``reg_scale``,
        the layers' ``num_points_scale``).
    """
    # only the keys under the prefix (a whole detector's dict may be given)
    sd = {
        k[len(src_prefix):]: v
        for k, v in state_dict.items() if k.startswith(src_prefix)
    }
    layers = {int(m.group(1)) for m in map(_LAYER.match, sd) if m}
    if not layers:
        raise KeyError(f'no decoder layers under {src_prefix!r}decoder.'
                       'layers.')
    settings = dict(
        num_layers=max(layers) + 1,
        embed_dims=sd['query_pos_head.layers.1.weight'].shape[0],
        num_classes=sd['dec_score_head.0.weight'].shape[0])
    last = max(
        int(m.group(1)) for m in map(
            re.compile(r'^dec_bbox_head\.0\.layers\.(\d+)\.weight$').match, sd)
        if m)
    settings['reg_max'] = \
        sd[f'dec_bbox_head.0.layers.{last}.weight'].shape[0] // 4 - 1
    for name in ('up', 'reg_scale'):
        values = {
            key: float(sd[key].reshape(-1)[0])
            for key in (name, f'decoder.{name}') if key in sd
        }
        if not values or len(set(values.values())) != 1:
            raise ValueError(f'{src_prefix}{name} and {src_prefix}decoder.'
                             f'{name} must be present and equal, got '
                             f'{values}')
        settings[name] = next(iter(values.values()))
    points = {}
    for i in sorted(layers):
        key = f'decoder.layers.{i}.cross_attn.num_points_scale'
        if key in sd:
            points[key] = _points_from_scale(sd[key], src_prefix + key)
    if len({tuple(p) for p in points.values()}) > 1:
        raise ValueError(f'the layers sample different points: {points}')
    if points:
        settings['num_points'] = next(iter(points.values()))
    return settings


def dfine_model_settings(model: nn.Module) -> dict:
    """The values of :func:`dfine_decoder_settings` for our DFINE detector
    ``model`` (what an official checkpoint must match)."""
    head, decoder = model.bbox_head, model.decoder
    return dict(
        num_layers=decoder.num_layers,
        embed_dims=decoder.embed_dims,
        num_classes=head.num_classes,
        reg_max=head.reg_max,
        reg_scale=float(head.reg_scale),
        up=float(head.up),
        num_points=list(decoder.layers[0].cross_attn.num_points))


def dfine_decoder_to_mm(state_dict: Dict[str, Tensor],
                        src_prefix: str = 'decoder.',
                        expected: Optional[dict] = None) -> Dict[str, Tensor]:
    """Rename an official D-FINE decoder state dict to our layout.

    Args:
        state_dict (dict): Official keys under ``src_prefix``.
        src_prefix (str): See :func:`dfine_decoder_key_map`.
        expected (dict, optional): Settings the checkpoint must imply
            (e.g. ``dfine_model_settings(model)``): the buffers that are not
            loaded (``up``, ``reg_scale``, ``num_points``) and the sizes are
            checked against them.

    Returns:
        OrderedDict: our keys -> the official tensors.

    Raises:
        KeyError: keys that no rule maps (see :func:`dfine_decoder_key_map`).
        ValueError: settings that differ from ``expected``.
    """
    mapping = dfine_decoder_key_map(state_dict, src_prefix)
    if expected is not None:
        found = dfine_decoder_settings(state_dict, src_prefix)
        wrong = {
            name: (found[name], value)
            for name, value in expected.items()
            if name in found and found[name] != value
        }
        if wrong:
            raise ValueError(
                'the official decoder does not match the config (name: '
                '(checkpoint, config)): ' +
                ', '.join(f'{k}: {v}' for k, v in wrong.items()) +
                '; reg_scale/up are DFINEHead arguments, num_points the '
                "decoder's cross_attn_cfg")
    return OrderedDict(
        (ours, state_dict[key]) for key, ours in mapping.items())
