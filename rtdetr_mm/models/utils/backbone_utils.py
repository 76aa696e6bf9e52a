"""Helpers every backbone family shares: argument checks and stage freezing.

The backbone contract (``docs/design.md``) is implemented once here:

* :func:`resolve_arch` turns ``arch`` (a name or a dict) into settings;
* :func:`normalize_out_indices` / :func:`check_frozen_stages` validate the
  stage-level arguments with messages that say what is allowed;
* :class:`PyramidBackboneMixin` implements ``frozen_stages``, ``norm_eval``,
  ``switch_to_deploy`` plumbing and official-checkpoint loading on top of a
  per-family ``stage_modules()``.
"""
import copy
import inspect
import logging
import re
from typing import Dict, List, Sequence, Tuple, Union

import torch
from mmengine.logging import MMLogger, print_log
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .checkpoint import load_pretrained_checkpoint

NUM_PYRAMID_STAGES = 4  # strides 4, 8, 16, 32


def arch_table(fields: Sequence[str], rows: Dict[str,
                                                 tuple]) -> Dict[str, dict]:
    """``arch_settings`` from a literal table: ``{arch: dict(zip(fields,
    row))}``; every arch has exactly ``fields`` (the fields a custom arch
    dict needs)."""
    for arch, row in rows.items():
        if len(row) != len(fields):
            raise ValueError(f'arch {arch!r}: {len(row)} values for the '
                             f'fields {list(fields)}')
    return {arch: dict(zip(fields, row)) for arch, row in rows.items()}


def resolve_arch(arch: Union[str, dict], arch_settings: Dict[str, dict],
                 family: str) -> dict:
    """Return the settings of ``arch``.

    Args:
        arch: a key of ``arch_settings`` or a dict with the same fields.
        arch_settings: the published variants of the family.
        family: the backbone's name, used in error messages.
    """
    if isinstance(arch, str):
        if arch not in arch_settings:
            raise ValueError(f'{family}: unknown arch {arch!r}; valid archs '
                             f'are {sorted(arch_settings)} (or a dict with '
                             'the same fields)')
        return copy.deepcopy(arch_settings[arch])
    if isinstance(arch, dict):
        required = set(next(iter(arch_settings.values())))
        missing = required - set(arch)
        if missing:
            raise ValueError(f'{family}: a custom arch dict needs the fields '
                             f'{sorted(required)}; missing {sorted(missing)}')
        return copy.deepcopy(arch)
    raise TypeError(f'{family}: arch must be a str or a dict, got '
                    f'{type(arch).__name__}')


def _is_int(value) -> bool:
    """An int that is not a bool (``True`` would silently mean 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def normalize_out_indices(
        out_indices: Union[int, Sequence[int]],
        family: str,
        num_stages: int = NUM_PYRAMID_STAGES) -> Tuple[int, ...]:
    """Validate pyramid-stage indices; negatives count from the end.

    Returns the indices as non-negative ints in the given order.
    """
    if _is_int(out_indices):
        out_indices = (out_indices, )
    if not isinstance(out_indices, Sequence) or not out_indices:
        raise ValueError(f'{family}: out_indices must be a non-empty sequence '
                         f'of ints, got {out_indices!r}')
    result = []
    for index in out_indices:
        if not _is_int(index) or not -num_stages <= index < num_stages:
            raise ValueError(
                f'{family}: out_indices {tuple(out_indices)!r} has {index!r}; '
                f'each index must be an int in [{-num_stages}, '
                f'{num_stages - 1}] (pyramid stages 0..{num_stages - 1} at '
                f'strides {[4 * 2**i for i in range(num_stages)]})')
        result.append(index % num_stages)
    if len(set(result)) != len(result):
        raise ValueError(f'{family}: out_indices {tuple(out_indices)!r} '
                         'repeats a stage')
    return tuple(result)


def check_frozen_stages(frozen_stages: int,
                        family: str,
                        num_stages: int = NUM_PYRAMID_STAGES) -> int:
    """Validate ``frozen_stages``: -1 (none), 0 (stem) .. num_stages."""
    if not _is_int(frozen_stages) or not -1 <= frozen_stages <= num_stages:
        raise ValueError(
            f'{family}: frozen_stages={frozen_stages!r} is out of range; '
            f'allowed: -1 (nothing frozen), 0 (the stem) or k in '
            f'1..{num_stages} (the stem and stages 1..k)')
    return frozen_stages


def freeze(module: nn.Module) -> None:
    """Put ``module`` in eval mode and stop gradients to its parameters."""
    module.eval()
    for param in module.parameters():
        param.requires_grad = False


def set_batchnorm_eval(module: nn.Module) -> None:
    """Put every BatchNorm (incl. SyncBN) below ``module`` in eval mode."""
    for m in module.modules():
        if isinstance(m, _BatchNorm):
            m.eval()


def switch_submodules_to_deploy(model: nn.Module) -> None:
    """Call ``switch_to_deploy()`` on the outermost submodules that have it.

    A module that has the method is responsible for its own children, so the
    walk does not descend into it. ``model`` itself is skipped.
    """
    for child in model.children():
        if hasattr(child, 'switch_to_deploy'):
            child.switch_to_deploy()
        else:
            switch_submodules_to_deploy(child)


class PyramidBackboneMixin:
    """``frozen_stages``, ``norm_eval`` and pretrained loading for backbones.

    Mix in before the ``nn.Module`` base class. A subclass provides:

    * ``stage_modules()``: ``[stem, stage1, stage2, stage3, stage4]``, each a
      module or a list of modules (and parameters that belong to no
      module), in the order ``frozen_stages`` freezes them;
    * attributes ``frozen_stages`` and ``norm_eval``;
    * optionally ``convert_checkpoint(state_dict)`` mapping an official
      checkpoint's keys to this module's layout, and the class attribute
      ``ignored_checkpoint_keys`` (a regex of keys, e.g. the classifier, that
      the backbone drops silently).
    """
    ignored_checkpoint_keys = r'^(head|classifier|fc|cls)\b'

    def stage_modules(self) -> List[Union[nn.Module, List[nn.Module]]]:
        raise NotImplementedError

    def _freeze_stages(self) -> None:
        for stage in self.stage_modules()[:self.frozen_stages + 1]:
            for part in (stage if isinstance(stage,
                                             (list, tuple)) else [stage]):
                if isinstance(part, nn.Parameter):
                    part.requires_grad = False
                else:
                    freeze(part)

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            set_batchnorm_eval(self)
        return self

    def convert_checkpoint(self, state_dict: dict) -> dict:
        """Map an official checkpoint's keys onto this module (identity)."""
        return state_dict

    def keep_absent_modules(self, state_dict: dict, module_names: List[str],
                            reason: str) -> dict:
        """Keep the current values of modules a checkpoint lacks entirely.

        For layers that detection adds on top of a classification network
        (per-output norms): their absence from an ImageNet checkpoint is
        expected, so they keep their initialisation, logged at INFO, instead
        of being reported as missing keys. A module the checkpoint holds
        partly is left alone (and reported missing as usual).
        """
        own = self.state_dict()
        state_dict = dict(state_dict)
        kept = []
        for name in module_names:
            keys = [k for k in own if k.startswith(f'{name}.')]
            if keys and not any(k in state_dict for k in keys):
                state_dict.update({k: own[k] for k in keys})
                kept.append(name)
        if kept:
            print_log(
                f'{type(self).__name__}: the checkpoint has no {kept} '
                f'({reason}); they keep their current values',
                logger='current')
        return state_dict

    def drop_unbuilt_modules(self, state_dict: dict, module_names: List[str],
                             reason: str) -> dict:
        """Drop a checkpoint's modules that this configuration does not build.

        For the output norms of stages a detection checkpoint returned and
        ``out_indices`` does not (e.g. ``norm0`` of a checkpoint trained
        with all four outputs); logged at INFO, not reported unexpected.
        """
        dropped = sorted({
            k.split('.')[0]
            for k in state_dict if k.split('.')[0] in module_names
        })
        if dropped:
            print_log(
                f'{type(self).__name__}: not loading {dropped} of the '
                f'checkpoint ({reason})',
                logger='current')
        return {
            k: v
            for k, v in state_dict.items() if k.split('.')[0] not in dropped
        }

    def describe_checkpoint(self, state_dict: dict) -> str:
        """Name the published variant whose layout ``state_dict`` has.

        ``state_dict`` is the checkpoint before :meth:`convert_checkpoint`.
        Every ``arch_settings`` variant is built on the meta device (no
        memory, no init) with this module's ``out_indices`` and ``deploy``,
        converts the checkpoint as it would when loading, and compares key
        sets and shapes. Used in the error of a checkpoint that does not fit.
        """
        arch_settings = getattr(self, 'arch_settings', None)
        params = inspect.signature(type(self).__init__).parameters
        if not isinstance(arch_settings, dict) or 'arch' not in params:
            return ''
        kwargs = {
            k: getattr(self, k)
            for k in ('out_indices', 'deploy')
            if k in params and hasattr(self, k)
        }
        ignore = re.compile(self.ignored_checkpoint_keys)

        def layout(sd):
            return {
                k: tuple(v.shape)
                for k, v in sd.items()
                if not (k.endswith('num_batches_tracked') or ignore.search(k))
            }

        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel(logging.WARNING)  # the candidates' INFO is noise
        try:
            for arch in arch_settings:
                with torch.device('meta'):
                    candidate = type(self)(arch=arch, **kwargs)
                    try:
                        converted = candidate.convert_checkpoint(state_dict)
                    except (KeyError, ValueError):
                        continue
                    if layout(converted) == layout(candidate.state_dict()):
                        return f'it looks like arch {arch!r}'
        finally:
            logger.setLevel(level)
        return ('its keys match none of the published archs '
                f'{list(arch_settings)}')

    def init_weights(self) -> None:
        init_cfg = getattr(self, 'init_cfg', None)
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            logger = MMLogger.get_current_instance()
            load_pretrained_checkpoint(
                self,
                init_cfg['checkpoint'],
                prefix=init_cfg.get('prefix'),
                convert=self.convert_checkpoint,
                ignore=self.ignored_checkpoint_keys,
                strict=init_cfg.get('strict', True),
                describe=self.describe_checkpoint,
                logger=logger)
            self._is_init = True
        else:
            super().init_weights()
