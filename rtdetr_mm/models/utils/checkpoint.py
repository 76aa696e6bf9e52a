"""Loading official released checkpoints into rtdetr_mm modules.

Released files come wrapped in many ways (raw state dict, ``state_dict``,
``model``, ``model_ema``, ``ema.module``, DDP's ``module.`` prefix). This
module unwraps them, lets the caller map key layouts, and reports exactly
which keys were missing or unexpected instead of dropping them silently.
"""
import logging
import re
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader
from torch import nn

# Wrapper keys of released checkpoints, in order of preference: an EMA copy is
# what the authors evaluate and release when both are present.
WRAPPER_KEYS = ('state_dict', 'model_ema', 'ema', 'model', 'module')


def _is_state_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(v, torch.Tensor) for v in obj.values())


def find_state_dict(
    checkpoint,
    wrapper_keys: Sequence[str] = WRAPPER_KEYS
) -> Tuple[Dict[str, torch.Tensor], str]:
    """Find the tensor dict inside a loaded checkpoint object.

    Descends through ``wrapper_keys`` (e.g. ``{'ema': {'module': sd}}``) until
    a dict of tensors is reached, then strips a DDP ``module.`` prefix.

    Returns:
        The state dict and where it was (``'ema.module'``, ``'raw'``...).

    Raises:
        ValueError: no state dict in ``checkpoint``.
    """
    obj, path = checkpoint, []
    while not _is_state_dict(obj):
        if not isinstance(obj, dict):
            raise ValueError(f'the checkpoint holds a {type(obj).__name__}, '
                             'not a state dict')
        key = next((k for k in wrapper_keys if k in obj), None)
        if key is None:
            raise ValueError(
                'no state dict found in the checkpoint: its top-level keys '
                f'are {sorted(map(str, obj))[:20]}, expected a dict of '
                f'tensors or one of {list(wrapper_keys)}')
        obj = obj[key]
        path.append(key)
    if all(k.startswith('module.') for k in obj):
        obj = {k[len('module.'):]: v for k, v in obj.items()}
    return dict(obj), '.'.join(path) or 'raw'


def unwrap_state_dict(checkpoint) -> Dict[str, torch.Tensor]:
    """The state dict inside ``checkpoint`` (see :func:`find_state_dict`)."""
    return find_state_dict(checkpoint)[0]


def select_prefix(state_dict: Dict[str, torch.Tensor],
                  prefix: Optional[str]) -> Dict[str, torch.Tensor]:
    """Keep the keys under ``prefix`` (e.g. ``'backbone.'``) without it."""
    if not prefix:
        return state_dict
    if not prefix.endswith('.'):
        prefix += '.'
    selected = {
        k[len(prefix):]: v
        for k, v in state_dict.items() if k.startswith(prefix)
    }
    if not selected:
        raise KeyError(f'no key of the checkpoint starts with {prefix!r}; '
                       f'its keys start with '
                       f'{sorted({k.split(".")[0] for k in state_dict})}')
    return selected


def compare_keys(
    expected: Dict[str, torch.Tensor],
    state_dict: Dict[str,
                     torch.Tensor]) -> Tuple[List[str], List[str], List[str]]:
    """Missing keys, unexpected keys and shape mismatches of ``state_dict``
    against the ``expected`` one (a model's), each sorted. BatchNorm
    ``num_batches_tracked`` counters may be missing: they are no weights."""
    missing = sorted(
        k for k in set(expected) - set(state_dict)
        if not k.endswith('num_batches_tracked'))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = sorted(f'{k}: checkpoint {tuple(v.shape)} vs model '
                        f'{tuple(expected[k].shape)}'
                        for k, v in state_dict.items()
                        if k in expected and v.shape != expected[k].shape)
    return missing, unexpected, mismatched


def describe_key_problems(missing: List[str],
                          unexpected: List[str],
                          mismatched: List[str],
                          limit: int = 12) -> str:
    """``'1 shape mismatch(es): ...; 2 missing key(s): a, b'`` (empty when
    nothing is wrong), each list cut after ``limit`` entries."""
    problems = []
    for what, items in (('shape mismatch(es)', mismatched),
                        ('missing key(s)', missing), ('unexpected key(s)',
                                                      unexpected)):
        if items:
            more = (f' ... ({len(items) - limit} more)'
                    if len(items) > limit else '')
            problems.append(f'{len(items)} {what}: '
                            f'{", ".join(items[:limit])}{more}')
    return '; '.join(problems)


def load_pretrained_checkpoint(
        module: nn.Module,
        filename: str,
        prefix: Optional[str] = None,
        convert: Optional[Callable[[dict], dict]] = None,
        ignore: Optional[str] = None,
        strict: bool = True,
        describe: Optional[Callable[[dict], str]] = None,
        logger='current') -> Tuple[List[str], List[str]]:
    """Load an official checkpoint into ``module``.

    Returns:
        (missing, unexpected) keys left after the tolerated ones.

    Args:
        module: the module to fill.
        filename: a local path or URL (anything mmengine's CheckpointLoader
            accepts: ``open-mmlab://``, ``torchvision://``, http(s)...), read
            through the project's safe reader.
        prefix: keep only keys under this prefix (``'backbone.'`` for a
            detector or mmpretrain classifier checkpoint).
        convert: maps the unwrapped dict from the official layout to
            ``module``'s layout.
        ignore: regex of keys dropped silently (a classifier head).
        strict: raise when keys are missing or unexpected (BatchNorm's
            ``num_batches_tracked`` counters excepted); ``False`` loads what
            fits and logs the rest as warnings.
        describe: called with the state dict (before ``convert``) when it
            does not fit; returns a hint such as "it looks like arch 's24'".

    Raises:
        ValueError: on a shape mismatch (a wrong ``arch`` for the file), and
            with ``strict`` on missing or unexpected keys, listing them.
    """
    checkpoint = CheckpointLoader.load_checkpoint(filename, map_location='cpu')
    try:
        state_dict = select_prefix(unwrap_state_dict(checkpoint), prefix)
    except (KeyError, ValueError) as error:
        raise ValueError(f'{filename}: {error.args[0]}') from None
    original = state_dict
    if convert is not None:
        state_dict = convert(state_dict)
    if ignore:
        pattern = re.compile(ignore)
        state_dict = {
            k: v
            for k, v in state_dict.items() if not pattern.search(k)
        }
    missing, unexpected, mismatched = compare_keys(module.state_dict(),
                                                   state_dict)
    name = type(module).__name__
    if mismatched or (strict and (missing or unexpected)):
        hint = describe(original) if describe is not None else ''
        raise ValueError(
            f'{name}: {filename} does not fit this model (wrong arch?'
            f'{" " + hint if hint else ""}); ' +
            describe_key_problems(missing, unexpected, mismatched) +
            '. Check `arch` and the checkpoint; '
            "init_cfg=dict(type='Pretrained', ..., strict=False) loads "
            'what fits and leaves the rest at its initialisation')
    module.load_state_dict(state_dict, strict=False)
    print_log(
        f'{name}: loaded {len(state_dict) - len(unexpected)} tensors '
        f'from {filename}',
        logger=logger)
    if missing:
        print_log(
            f'{name}: keys missing from {filename} (left at their '
            f'initialisation): {missing}',
            logger=logger,
            level=logging.WARNING)
    if unexpected:
        print_log(
            f'{name}: unexpected keys in {filename} (not loaded): '
            f'{unexpected}',
            logger=logger,
            level=logging.WARNING)
    return missing, unexpected
