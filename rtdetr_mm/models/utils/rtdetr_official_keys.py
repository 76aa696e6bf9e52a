"""Key mapping between official RT-DETR checkpoints and rtdetr_mm.

The official layout is ``lyuwenyu/RT-DETR`` ``rtdetr_pytorch`` (v1) or
``rtdetrv2_pytorch`` (v2, which renames a few modules):
``backbone.*`` (PResNet-vd), ``encoder.*`` (HybridEncoder) and ``decoder.*``
(RTDETRTransformer). Ours is the :class:`RTDETR` detector: ``backbone.*``
(mmdet ``ResNetV1d``/``PResNetV1d``), ``neck.*``, ``input_proj.*``,
``memory_trans_fc/norm.*``, ``decoder.*``, ``bbox_head.*`` and
``dn_query_generator.*``.

Each rule is a pair of templates, official first. A placeholder is ``{v}``,
``{v+c}`` or ``{a*v+c}`` for an integer, ``{p}`` for a parameter/buffer
name and ``{rest}``/``{cm}`` for longer paths; rules are tried in order and
work in both directions.
"""
import re
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

from torch import Tensor

# the conv-norm modules of the CCFM part of the HybridEncoder
_CCFM_CONV = (r'(?:lateral_convs|downsample_convs)\.\d+|(?:fpn_blocks|'
              r'pan_blocks)\.\d+\.(?:conv[123]|bottlenecks\.\d+\.conv[12])')
_STRING_PLACEHOLDERS = {'p': r'\w+', 'rest': r'.+', 'cm': _CCFM_CONV}
_PLACEHOLDER = re.compile(r'\{(?:(\d+)\*)?([a-zA-Z_]+)([+-]\d+)?\}')

_BACKBONE_RULES = [
    ('backbone.conv1.conv1_{k}.conv.weight', 'backbone.stem.{3*k-3}.weight'),
    ('backbone.conv1.conv1_{k}.norm.{p}', 'backbone.stem.{3*k-2}.{p}'),
    ('backbone.res_layers.{i}.blocks.{j}.branch2a.conv.weight',
     'backbone.layer{i+1}.{j}.conv1.weight'),
    ('backbone.res_layers.{i}.blocks.{j}.branch2a.norm.{p}',
     'backbone.layer{i+1}.{j}.bn1.{p}'),
    ('backbone.res_layers.{i}.blocks.{j}.branch2b.conv.weight',
     'backbone.layer{i+1}.{j}.conv2.weight'),
    ('backbone.res_layers.{i}.blocks.{j}.branch2b.norm.{p}',
     'backbone.layer{i+1}.{j}.bn2.{p}'),
    ('backbone.res_layers.{i}.blocks.{j}.branch2c.conv.weight',
     'backbone.layer{i+1}.{j}.conv3.weight'),
    ('backbone.res_layers.{i}.blocks.{j}.branch2c.norm.{p}',
     'backbone.layer{i+1}.{j}.bn3.{p}'),
    # stage 1 has stride 1: a plain 1x1 conv-norm shortcut
    ('backbone.res_layers.0.blocks.{j}.short.conv.weight',
     'backbone.layer1.{j}.downsample.1.weight'),
    ('backbone.res_layers.0.blocks.{j}.short.norm.{p}',
     'backbone.layer1.{j}.downsample.2.{p}'),
    # later stages: avg-pool then conv-norm (the "d" shortcut)
    ('backbone.res_layers.{i}.blocks.{j}.short.conv.conv.weight',
     'backbone.layer{i+1}.{j}.downsample.1.weight'),
    ('backbone.res_layers.{i}.blocks.{j}.short.conv.norm.{p}',
     'backbone.layer{i+1}.{j}.downsample.2.{p}'),
]

_NECK_RULES = [
    ('encoder.input_proj.{i}.0.weight', 'neck.input_proj.{i}.conv.weight'),
    ('encoder.input_proj.{i}.1.{p}', 'neck.input_proj.{i}.bn.{p}'),
    ('encoder.encoder.{i}.layers.{j}.self_attn.{rest}',
     'neck.encoder.{i}.layers.{j}.self_attn.attn.{rest}'),
    ('encoder.encoder.{i}.layers.{j}.linear1.{p}',
     'neck.encoder.{i}.layers.{j}.ffn.layers.0.0.{p}'),
    ('encoder.encoder.{i}.layers.{j}.linear2.{p}',
     'neck.encoder.{i}.layers.{j}.ffn.layers.1.{p}'),
    ('encoder.encoder.{i}.layers.{j}.norm{n}.{p}',
     'neck.encoder.{i}.layers.{j}.norms.{n-1}.{p}'),
    ('encoder.{cm}.conv.weight', 'neck.{cm}.conv.weight'),
    ('encoder.{cm}.norm.{p}', 'neck.{cm}.bn.{p}'),
]

_DECODER_RULES = [
    ('decoder.input_proj.{i}.conv.weight', 'input_proj.{i}.conv.weight'),
    ('decoder.input_proj.{i}.norm.{p}', 'input_proj.{i}.bn.{p}'),
    ('decoder.decoder.layers.{i}.self_attn.{rest}',
     'decoder.layers.{i}.self_attn.attn.{rest}'),
    ('decoder.decoder.layers.{i}.cross_attn.{rest}',
     'decoder.layers.{i}.cross_attn.{rest}'),
    ('decoder.decoder.layers.{i}.linear1.{p}',
     'decoder.layers.{i}.ffn.layers.0.0.{p}'),
    ('decoder.decoder.layers.{i}.linear2.{p}',
     'decoder.layers.{i}.ffn.layers.1.{p}'),
    ('decoder.decoder.layers.{i}.norm{n}.{p}',
     'decoder.layers.{i}.norms.{n-1}.{p}'),
    ('decoder.denoising_class_embed.weight',
     'dn_query_generator.label_embedding.weight'),
    ('decoder.query_pos_head.layers.{k}.{p}',
     'decoder.ref_point_head.layers.{k}.{p}'),
    ('decoder.enc_output.0.{p}', 'memory_trans_fc.{p}'),
    ('decoder.enc_output.1.{p}', 'memory_trans_norm.{p}'),
    # the encoder-proposal branches are the head's last ones ({N} = number
    # of decoder layers); they must come before the per-layer rules
    ('decoder.enc_score_head.{p}', 'bbox_head.cls_branches.{N}.{p}'),
    ('decoder.enc_bbox_head.layers.{k}.{p}',
     'bbox_head.reg_branches.{N}.{2*k}.{p}'),
    ('decoder.dec_score_head.{i}.{p}', 'bbox_head.cls_branches.{i}.{p}'),
    ('decoder.dec_bbox_head.{i}.layers.{k}.{p}',
     'bbox_head.reg_branches.{i}.{2*k}.{p}'),
]

V1_RULES = _BACKBONE_RULES + _NECK_RULES + _DECODER_RULES
# v2 names the input projections' and enc_output's children
_V2_RENAMES = {
    'encoder.input_proj.{i}.0.weight': 'encoder.input_proj.{i}.conv.weight',
    'encoder.input_proj.{i}.1.{p}': 'encoder.input_proj.{i}.norm.{p}',
    'decoder.enc_output.0.{p}': 'decoder.enc_output.proj.{p}',
    'decoder.enc_output.1.{p}': 'decoder.enc_output.norm.{p}',
}
V2_RULES = [(_V2_RENAMES.get(official, official), ours)
            for official, ours in V1_RULES]
RULES = dict(v1=V1_RULES, v2=V2_RULES)

# Official buffers that are recomputed on the fly and carry no weights (v2's
# ``num_points_scale`` is 1 / points per level; the converter checks it).
IGNORED_OFFICIAL_KEYS = re.compile(
    r'^(encoder\.pos_embed\d+|decoder\.anchors|decoder\.valid_mask|'
    r'decoder\.decoder\.layers\.\d+\.cross_attn\.num_points_scale)$')


class _Template:
    """One side of a rule: a regex that parses it and a renderer."""

    def __init__(self, template: str) -> None:
        self.template = template
        pattern, self.exprs = '', []
        pos = 0
        for m in _PLACEHOLDER.finditer(template):
            pattern += re.escape(template[pos:m.start()])
            scale, name, offset = m.groups()
            expr = (int(scale or 1), name, int(offset or 0))
            self.exprs.append(expr)
            group = f'g{len(self.exprs) - 1}'
            if name in _STRING_PLACEHOLDERS:
                pattern += f'(?P<{group}>{_STRING_PLACEHOLDERS[name]})'
            else:
                pattern += f'(?P<{group}>\\d+)'
            pos = m.end()
        pattern += re.escape(template[pos:])
        self.regex = re.compile(f'^{pattern}$')

    def parse(self, key: str) -> Optional[Dict[str, object]]:
        """Variables of ``key`` if it matches this template, else None."""
        m = self.regex.match(key)
        if m is None:
            return None
        values = {}
        for idx, (scale, name, offset) in enumerate(self.exprs):
            text = m.group(f'g{idx}')
            if name in _STRING_PLACEHOLDERS:
                value = text
            else:
                num = int(text) - offset
                if num % scale:
                    return None
                value = num // scale
            if values.setdefault(name, value) != value:
                return None
        return values

    def render(self, values: Dict[str, object]) -> str:
        """Fill the template with ``values``."""

        def fill(m: re.Match) -> str:
            scale, name, offset = m.groups()
            value = values[name]
            if name in _STRING_PLACEHOLDERS:
                return str(value)
            return str(int(scale or 1) * value + int(offset or 0))

        return _PLACEHOLDER.sub(fill, self.template)


def _compile(num_decoder_layers: int, to_mm: bool,
             version: str) -> List[tuple]:
    if version not in RULES:
        raise ValueError(f'version must be one of {sorted(RULES)}, got '
                         f'{version!r}')
    rules = []
    for official, ours in RULES[version]:
        official = official.replace('{N}', str(num_decoder_layers))
        ours = ours.replace('{N}', str(num_decoder_layers))
        src, dst = (official, ours) if to_mm else (ours, official)
        rules.append((_Template(src), _Template(dst)))
    return rules


def _map_keys(state_dict: Dict[str, Tensor], rules: List[tuple],
              ignored: Optional[re.Pattern]) -> Tuple[OrderedDict, list]:
    out, unmapped, skipped = OrderedDict(), [], []
    for key, value in state_dict.items():
        if ignored is not None and ignored.match(key):
            skipped.append(key)
            continue
        for src, dst in rules:
            values = src.parse(key)
            if values is not None:
                out[dst.render(values)] = value
                break
        else:
            unmapped.append(key)
    if unmapped:
        raise KeyError(f'{len(unmapped)} key(s) have no mapping: '
                       f'{unmapped[:20]}' +
                       (' ...' if len(unmapped) > 20 else ''))
    return out, skipped


def count_decoder_layers(state_dict: Dict[str, Tensor],
                         official: bool = True) -> int:
    """Number of decoder layers in an official or rtdetr_mm state dict."""
    pattern = re.compile(r'^decoder\.decoder\.layers\.(\d+)\.'
                         if official else r'^decoder\.layers\.(\d+)\.')
    ids = {int(m.group(1)) for m in map(pattern.match, state_dict) if m}
    if not ids:
        raise KeyError('no decoder layers found in the state dict '
                       f'(looked for {pattern.pattern!r})')
    return max(ids) + 1


def official_to_mm(
        state_dict: Dict[str, Tensor],
        version: str = 'v1',
        num_decoder_layers: Optional[int] = None
) -> Tuple[OrderedDict, List[str]]:
    """Map an official state dict to the rtdetr_mm layout.

    Args:
        state_dict (dict): Official keys (``backbone.``, ``encoder.``,
            ``decoder.``), already unwrapped from ``model``/``ema``.
        version (str): ``'v1'`` (rtdetr_pytorch) or ``'v2'``
            (rtdetrv2_pytorch).
        num_decoder_layers (int, optional): Counted from the keys when None;
            pass 0 for a backbone-only state dict.

    Returns:
        tuple: the mapped ``OrderedDict`` and the official keys ignored
        because they are recomputed buffers (position embeddings, anchors).

    Raises:
        KeyError: listing every key that no rule maps.
    """
    if num_decoder_layers is None:
        num_decoder_layers = count_decoder_layers(state_dict, True)
    rules = _compile(num_decoder_layers, True, version)
    return _map_keys(state_dict, rules, IGNORED_OFFICIAL_KEYS)


def mm_to_official(state_dict: Dict[str, Tensor],
                   version: str = 'v1') -> OrderedDict:
    """Inverse of :func:`official_to_mm` (rtdetr_mm -> official keys); a
    state dict with ``backbone.`` keys only maps too.

    Raises:
        KeyError: listing every key that no rule maps.
    """
    has_decoder = any(k.startswith('decoder.layers.') for k in state_dict)
    num_layers = count_decoder_layers(state_dict, False) if has_decoder else 0
    return _map_keys(state_dict, _compile(num_layers, False, version), None)[0]


def official_backbone_to_mm(state_dict: Dict[str, Tensor]) -> OrderedDict:
    """Map an official ImageNet PResNet-vd state dict (``conv1.*``,
    ``res_layers.*``) to ``PResNetV1d``/``ResNetV1d`` keys (no prefix)."""
    prefixed = {f'backbone.{k}': v for k, v in state_dict.items()}
    converted, _ = _map_keys(prefixed, _compile(0, True, 'v1'), None)
    return OrderedDict((k[len('backbone.'):], v) for k, v in converted.items())


def describe_layout(state_dict: Dict[str, Tensor]) -> str:
    """Which kind of checkpoint ``state_dict`` is, by its key names.

    Returns one of ``'official RT-DETR v1 detector'``, ``'official RT-DETR
    v2 detector'``, ``'official ImageNet PResNet backbone'``, ``'rtdetr_mm
    detector'`` or ``'unknown layout'``.
    """
    keys = set(state_dict)

    def has(prefix):
        return any(k.startswith(prefix) for k in keys)

    if has('backbone.') and has('encoder.') and has('decoder.decoder.'):
        v2 = (
            has('decoder.enc_output.proj.')
            or has('encoder.input_proj.0.conv'))
        return f'official RT-DETR {"v2" if v2 else "v1"} detector'
    if has('conv1.conv1_1.') and has('res_layers.'):
        return 'official ImageNet PResNet backbone'
    if has('neck.') and has('bbox_head.'):
        return 'rtdetr_mm detector'
    return 'unknown layout'
