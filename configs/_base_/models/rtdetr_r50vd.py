# RT-DETR with a ResNet-50-vd backbone (official `rtdetr_r50vd.yml`).
# A backbone swap is one `backbone=dict(...)` plus `neck=dict(in_channels=...)`
# (the backbone's out_channels at strides 8/16/32).
embed_dims = 256
num_decoder_layers = 6
model = dict(
    type='RTDETR',
    num_queries=300,
    num_feature_levels=3,
    # RT-DETR takes RGB in [0, 1] without mean/std normalisation.
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[0., 0., 0.],
        std=[255., 255., 255.],
        bgr_to_rgb=True,
        pad_size_divisor=32,
        # The official model resizes each training batch to a random square
        # size from [480, 512, ..., 640 (x3), ..., 800] with nearest
        # interpolation; mmdet's batch augment picks uniformly from the same
        # 32-step range (bilinear) and rescales the boxes accordingly.
        batch_augments=[
            dict(
                type='BatchSyncRandomResize',
                random_size_range=(480, 800),
                size_divisor=32,
                interval=1)
        ]),
    # PResNet-50-vd (= mmdet's ResNetV1d at depth 50); freeze_at=0 +
    # FrozenBatchNorm in the official config. It starts, like the official
    # recipe, from the official ImageNet ResNet50_vd_ssld_v2 weights
    # (converted from the official layout on load; see
    # docs/official_weights.md).
    backbone=dict(
        type='PResNetV1d',
        depth=50,
        num_stages=4,
        out_indices=(1, 2, 3),
        frozen_stages=0,
        norm_cfg=dict(type='BN', requires_grad=False),
        norm_eval=True,
        style='pytorch',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/lyuwenyu/storage/releases/'
            'download/v0.1/ResNet50_vd_ssld_v2_pretrained_from_paddle.pth')),
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
        act_cfg=dict(type='SiLU')),
    decoder=dict(
        num_layers=num_decoder_layers,
        eval_idx=-1,
        layer_cfg=dict(
            self_attn_cfg=dict(
                embed_dims=embed_dims, num_heads=8, attn_drop=0.0),
            cross_attn_cfg=dict(
                embed_dims=embed_dims,
                num_heads=8,
                num_levels=3,
                num_points=4,
                dropout=0.0,
                batch_first=True),
            ffn_cfg=dict(
                embed_dims=embed_dims, feedforward_channels=1024,
                ffn_drop=0.0))),
    bbox_head=dict(
        type='RTDETRHead',
        num_classes=80,
        embed_dims=embed_dims,
        sync_cls_avg_factor=True,
        loss_cls=dict(
            type='RTDETRVarifocalLoss',
            use_sigmoid=True,
            alpha=0.75,
            gamma=2.0,
            loss_weight=1.0),
        loss_bbox=dict(type='L1Loss', loss_weight=5.0),
        loss_iou=dict(type='GIoULoss', loss_weight=2.0)),
    # 100 denoising queries, label noise 0.5, box noise 1.0
    dn_cfg=dict(
        label_noise_scale=0.5,
        box_noise_scale=1.0,
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
