# D-FINE-N (HGNetv2-B0, strides 16 and 32), 160 epochs on COCO, stop epoch
# 148: 42.8 AP, 4 M parameters (official dfine_hgnetv2_n_coco.yml). Two
# levels, 128 wide, no multi-scale training; 4 GPUs x 32 images.
_base_ = './dfine_hgnetv2_s_coco.py'
embed_dims = 128
model = dict(
    num_feature_levels=2,
    data_preprocessor=dict(batch_augments=None),
    backbone=dict(out_indices=(2, 3)),
    neck=dict(
        in_channels=[512, 1024],
        hidden_dim=embed_dims,
        use_encoder_idx=[1],
        encoder_layer=dict(ffn_cfg=dict(feedforward_channels=512)),
        expansion=0.34,
        depth_mult=0.5),
    decoder=dict(
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed_dims),
            cross_attn_cfg=dict(
                embed_dims=embed_dims, num_levels=2, num_points=[6, 6]),
            ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=512))),
    bbox_head=dict(embed_dims=embed_dims))
max_epochs = 160
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(augmentation_schedule=dict(switch_epoch=148))
train_dataloader = dict(batch_size=32)
val_dataloader = dict(batch_size=64)
test_dataloader = val_dataloader
# lr 8e-4, backbone 4e-4
optim_wrapper = dict(optimizer=dict(lr=8e-4))
auto_scale_lr = dict(base_batch_size=128)
