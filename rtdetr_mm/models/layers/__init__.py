"""RT-DETR building blocks shared by the neck, head and detector."""
from .cdn_query_generator import RTDETRCdnQueryGenerator
from .csp_rep_layer import CSPRepLayer
from .repvgg_block import RepVGGBlock
from .rtdetr_decoder import RTDETRTransformerDecoder
from .varifocal_loss import RTDETRVarifocalLoss

__all__ = [
    'RTDETRCdnQueryGenerator', 'CSPRepLayer', 'RepVGGBlock',
    'RTDETRTransformerDecoder', 'RTDETRVarifocalLoss'
]
