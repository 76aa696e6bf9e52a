from .backbone_utils import (PyramidBackboneMixin, arch_table,
                             check_frozen_stages, freeze,
                             normalize_out_indices, resolve_arch,
                             set_batchnorm_eval, switch_submodules_to_deploy)
from .checkpoint import (compare_keys, describe_key_problems,
                         load_pretrained_checkpoint, select_prefix,
                         unwrap_state_dict)
from .conversion import (CONVERSION_ERRORS, build_model, build_model_state,
                         check_against_model, check_kind,
                         describe_checkpoint_kind, read_official_state_dict,
                         run_converter, save_converted)
from .fusion import (fuse_bn_conv, fuse_conv_bn, fuse_conv_norm_in,
                     merge_parallel_convs, merge_sequential_convs,
                     scale_linear)

__all__ = [
    'PyramidBackboneMixin', 'arch_table', 'check_frozen_stages', 'freeze',
    'normalize_out_indices', 'resolve_arch', 'set_batchnorm_eval',
    'switch_submodules_to_deploy', 'compare_keys', 'describe_key_problems',
    'load_pretrained_checkpoint', 'select_prefix', 'unwrap_state_dict',
    'CONVERSION_ERRORS', 'build_model', 'build_model_state',
    'check_against_model', 'check_kind', 'describe_checkpoint_kind',
    'read_official_state_dict', 'run_converter', 'save_converted',
    'fuse_conv_bn', 'fuse_bn_conv', 'fuse_conv_norm_in',
    'merge_parallel_convs', 'merge_sequential_convs', 'scale_linear'
]
