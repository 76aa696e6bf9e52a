"""Build a detector from a config and a trained checkpoint of either form.

A checkpoint is in *train form* (what ``tools/train.py`` saves) or in
*deploy form* (what ``tools/deploy/deploy_rtdetr.py`` saves: fused
RepVGG/norm layers, other keys). :func:`load_detector` tells them apart
by their keys and refuses anything else with the keys that do not fit.
"""
import copy
import inspect
import os.path as osp
from typing import List, Tuple

from mmdet.registry import MODELS
from mmengine.config import Config, ConfigDict
from mmengine.registry import init_default_scope
from torch import nn

from ..models.utils.checkpoint import (compare_keys, describe_key_problems,
                                       find_state_dict)
from ..utils.serialization import read_checkpoint


def set_deploy(model_cfg: ConfigDict) -> List[str]:
    """Set ``deploy=True`` on each model part whose class accepts it.

    Returns the dotted paths that were set.
    """
    changed = []

    def visit(node, path):
        if not isinstance(node, dict):
            return
        cls = MODELS.get(node['type']) if isinstance(node.get('type'),
                                                     str) else None
        if cls is not None and path and 'deploy' in inspect.signature(
                cls.__init__).parameters:
            node['deploy'] = True
            changed.append(path)
            return  # the part builds its own children in deploy form
        for key, value in node.items():
            visit(value, f'{path}.{key}' if path else key)

    visit(model_cfg, '')
    return changed


def load_config(config_file: str) -> Config:
    """Read a config, naming the file when it does not exist."""
    if not osp.isfile(config_file):
        raise FileNotFoundError(
            f'{config_file}: no such config file (the configs are under '
            'configs/, e.g. configs/toy/rtdetr_r18vd_toy.py)')
    cfg = Config.fromfile(config_file)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    return cfg


def load_detector(cfg: Config, checkpoint: str) -> Tuple[nn.Module, bool]:
    """The eval-mode detector of ``cfg`` holding ``checkpoint``'s weights.

    Returns:
        (model, deploy_form): ``deploy_form`` is True when the checkpoint
        was already switched to deploy form (the model is built so).

    Raises:
        ValueError: the checkpoint fits neither form; lists the keys that do
            not fit the train form.
    """
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.pop('init_cfg', None)  # the checkpoint has it all
    state_dict = find_state_dict(read_checkpoint(checkpoint))[0]
    model = MODELS.build(copy.deepcopy(model_cfg))
    problems = compare_keys(model.state_dict(), state_dict)
    deploy_form = False
    if any(problems) and set_deploy(model_cfg):
        deploy_model = MODELS.build(model_cfg)
        if not any(compare_keys(deploy_model.state_dict(), state_dict)):
            model, deploy_form = deploy_model, True
    if not deploy_form and any(problems):
        raise ValueError(
            f'{checkpoint} does not fit the model of the config '
            f'({model_cfg.type} with a {model_cfg.backbone.type} backbone), '
            'neither in train form nor in deploy form: ' +
            describe_key_problems(*problems) + ' (the train form listed)')
    model.load_state_dict(state_dict, strict=False)
    return model.eval(), deploy_form
