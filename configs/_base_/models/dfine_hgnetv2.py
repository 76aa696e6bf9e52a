# D-FINE with an HGNetv2 backbone: D-FINE-L's settings
# (official configs/dfine/include/dfine_hgnetv2.yml and
# dfine_hgnetv2_l_coco.yml).
# The other sizes change the backbone arch, widths, layers and reg_scale.
embed_dims = 256
model = dict(
    type='DFINE',
    num_queries=300,
    num_feature_levels=3,
    # RGB in [0, 1] without mean/std normalisation, as the official model.
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[0., 0., 0.],
        std=[255., 255., 255.],
        bgr_to_rgb=True,
        pad_size_divisor=32,
        # each batch resized to a size from [480..608] + [640] x
        # base_size_repeat + [672..800] (L: 4), until the stop epoch
        batch_augments=[
            dict(
                type='BatchRandomChoiceResize',
                scales=[480, 512, 544, 576, 608] + [640] * 4 +
                [672, 704, 736, 768, 800])
        ]),
    # HGNetv2-B4 from D-FINE's ImageNet (PaddleClas SSLD stage-1) weights;
    # L/X: stem frozen and every BatchNorm frozen (official freeze_at=0,
    # freeze_stem_only, freeze_norm: FrozenBatchNorm2d, its arithmetic too)
    backbone=dict(
        type='HGNetv2',
        arch='b4',
        out_indices=(1, 2, 3),
        frozen_stages=0,
        norm_cfg=dict(type='FrozenBatchNorm2d'),
        norm_eval=True,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/Peterande/storage/releases/'
            'download/dfinev1.0/PPHGNetV2_B4_stage1.pth')),
    # RT-DETR's encoder with D-FINE's CCFM blocks
    neck=dict(
        type='HybridEncoder',
        in_channels=[512, 1024, 2048],
        hidden_dim=embed_dims,
        use_encoder_idx=[2],
        num_encoder_layers=1,
        encoder_layer=dict(
            self_attn_cfg=dict(num_heads=8, attn_drop=0.0),
            ffn_cfg=dict(
                feedforward_channels=1024,
                ffn_drop=0.0,
                act_cfg=dict(type='GELU'))),
        pe_temperature=10000,
        expansion=1.0,
        depth_mult=1.0,
        fusion_block='gelan',
        downsample='scdown',
        lateral_act=False,
        act_cfg=dict(type='SiLU')),
    decoder=dict(
        num_layers=6,
        eval_idx=-1,
        layer_cfg=dict(
            self_attn_cfg=dict(
                embed_dims=embed_dims, num_heads=8, attn_drop=0.0),
            cross_attn_cfg=dict(
                embed_dims=embed_dims,
                num_heads=8,
                num_levels=3,
                num_points=[3, 6, 3],
                dropout=0.0,
                batch_first=True),
            ffn_cfg=dict(
                embed_dims=embed_dims, feedforward_channels=1024,
                ffn_drop=0.0))),
    bbox_head=dict(
        type='DFINEHead',
        num_classes=80,
        embed_dims=embed_dims,
        reg_max=32,
        reg_scale=4.0,
        sync_cls_avg_factor=True,
        loss_cls=dict(
            type='RTDETRVarifocalLoss',
            use_sigmoid=True,
            alpha=0.75,
            gamma=2.0,
            loss_weight=1.0)),
    # 100 denoising queries, label noise 0.5, box noise 1.0; a noisy box
    # whose corners cross keeps its absolute size (D-FINE; RT-DETR clamps)
    dn_cfg=dict(
        label_noise_scale=0.5,
        box_noise_scale=1.0,
        abs_box_size=True,
        group_cfg=dict(dynamic=True, num_dn_queries=100)),
    train_cfg=dict(
        assigner=dict(
            type='HungarianAssigner',
            match_costs=[
                dict(
                    type='FocalLossCost',
                    weight=2.0,
                    alpha=0.25,
                    gamma=2.0,
                    eps=1e-8),
                dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                dict(type='IoUCost', iou_mode='giou', weight=2.0)
            ])),
    test_cfg=dict(max_per_img=300))
