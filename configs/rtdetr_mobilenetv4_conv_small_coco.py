# RT-DETR with a MobileNetV4-Conv-S backbone (timm, 3.8M params with its
# classifier, 73.8 ImageNet top-1) on COCO, 72 epochs.
#
# A nano-sized neck and decoder, as D-FINE-N (a 4M-parameter HGNetv2-B0
# DETR) uses: hidden_dim 128 instead of 256, feed-forward width 512 instead of
# 1024 in the encoder and decoder, CSPRep expansion 0.34 with half the RepVGG
# blocks (depth_mult 0.5), 3 decoder layers. The backbone trunk without
# timm's head has 1.1M parameters; the R18vd neck, decoder and head would
# add 8.8M (about 8x), these add 1.9M (3.1M for the whole detector).
# The backbone learning rate is 0.5x (D-FINE-N's ratio for a backbone this
# small, whose narrow features need more adaptation than a ResNet's) instead
# of 0.1x.
_base_ = './rtdetr_mobilenetv4_conv_medium_coco.py'
embed_dims = 128
feedforward_channels = 512
model = dict(
    backbone=dict(
        arch='conv_small',
        init_cfg=dict(
            checkpoint='timm://mobilenetv4_conv_small.e2400_r224_in1k')),
    neck=dict(
        in_channels=[64, 96, 128],
        hidden_dim=embed_dims,
        encoder_layer=dict(
            ffn_cfg=dict(feedforward_channels=feedforward_channels)),
        expansion=0.34,
        depth_mult=0.5),
    decoder=dict(
        num_layers=3,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed_dims),
            cross_attn_cfg=dict(embed_dims=embed_dims),
            ffn_cfg=dict(
                embed_dims=embed_dims,
                feedforward_channels=feedforward_channels))),
    bbox_head=dict(embed_dims=embed_dims))

optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.5)}))
