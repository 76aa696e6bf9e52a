"""D-FINE detector on top of :class:`RTDETR`."""
from typing import Dict

from mmdet.registry import MODELS
from torch import nn

from ..layers import DFINETransformerDecoder
from .rtdetr import RTDETR


@MODELS.register_module()
class DFINE(RTDETR):
    r"""`D-FINE: Redefine Regression Task in DETRs as Fine-grained
    Distribution Refinement <https://arxiv.org/abs/2410.13842>`_.

    RT-DETR's pipeline (neck as encoder, top-k encoder proposals, content
    queries from memory, contrastive denoising) with D-FINE's decoder and
    head. What changes compared with :class:`RTDETR`:

    * the decoder is :class:`DFINETransformerDecoder` (gated deformable
      cross-attention with points per level, FDR box refinement); it calls
      the head's box branches while it refines;
    * the head is :class:`DFINEHead`;
    * ``input_proj`` is a 1x1 conv + BN only on levels whose neck channels
      differ from the decoder's (D-FINE-X: 384 -> 256), an identity
      elsewhere.

    Query selection (anchors, ``memory_trans``, top-k, detached content) is
    RT-DETR's, which is D-FINE's default (``query_select_method='default'``,
    no learned content). D-FINE's ``layer_scale`` (wider layers after
    ``eval_idx``) and ``cross_attn_method='discrete'``, unused by the
    released models, are not supported.

    Args:
        The arguments of :class:`RTDETR`; ``decoder`` is a
        :class:`DFINETransformerDecoder` config, ``bbox_head`` a
        :class:`DFINEHead` config.
    """

    decoder_type = DFINETransformerDecoder

    def _input_projection(self, channels: int) -> nn.Module:
        """RT-DETR's 1x1 conv + BN where the neck's channels differ from the
        decoder's, else an identity."""
        if channels == self.embed_dims:
            return nn.Identity()
        return super()._input_projection(channels)

    def init_weights(self) -> None:
        """RT-DETR's init, then xavier for the input projections (D-FINE)."""
        super().init_weights()
        for proj in self.input_proj:
            if not isinstance(proj, nn.Identity):
                nn.init.xavier_uniform_(proj.conv.weight)

    def decoder_branches(self) -> Dict[str, object]:
        """The head's box branches, its ``pre_reg_branch`` (layer 0's
        reference refinement) and its corner decoder."""
        head = self.bbox_head
        return dict(
            reg_branches=head.reg_branches,
            pre_reg_branch=head.pre_reg_branch,
            decode_corners=head.decode_corners)
