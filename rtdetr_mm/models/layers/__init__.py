"""RT-DETR building blocks shared by the neck, head and detector."""
from .cdn_query_generator import RTDETRCdnQueryGenerator
from .csp_rep_layer import CSPRepLayer
from .dfine_decoder import (DFINETransformerDecoder,
                            DFINETransformerDecoderLayer, Gate)
from .fdr import LQE, distance2bbox, integral, weighting_function
from .frozen_norm import BATCH_NORMS
from .gelan import RepNCSPELAN4, SCDown
from .mlp import MLP
from .ms_deform_attn import BoxDeformableAttention, DFINEDeformableAttention
from .repvgg_block import RepVGGBlock
from .rtdetr_decoder import (RTDETRTransformerDecoder,
                             RTDETRTransformerDecoderLayer)
from .varifocal_loss import RTDETRVarifocalLoss

__all__ = [
    'BATCH_NORMS', 'BoxDeformableAttention', 'RTDETRTransformerDecoderLayer',
    'RTDETRCdnQueryGenerator', 'CSPRepLayer', 'RepVGGBlock',
    'RTDETRTransformerDecoder', 'RTDETRVarifocalLoss', 'RepNCSPELAN4',
    'SCDown', 'DFINEDeformableAttention', 'DFINETransformerDecoder',
    'DFINETransformerDecoderLayer', 'Gate', 'LQE', 'MLP', 'distance2bbox',
    'integral', 'weighting_function'
]
