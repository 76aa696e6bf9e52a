"""Tests of the MobileNetV4 backbone against timm's own MobileNetV4 models."""

import pytest
import timm
import torch
from huggingface_hub import constants as hf_constants
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData
from torch.nn.modules.batchnorm import _BatchNorm

from rtdetr_mm.models.backbones.mobilenetv4 import MobileNetV4
from rtdetr_mm.models.utils import load_pretrained_checkpoint
from rtdetr_mm.testing import calibrated
from ..._utils import CONFIG_DIR

MAIN_ARCHS = ('conv_small', 'conv_medium', 'conv_large', 'hybrid_medium',
              'hybrid_large')
ALL_ARCHS = tuple(MobileNetV4.arch_settings)
# published parameter counts (millions, with the classifier head)
PUBLISHED_PARAMS_M = dict(
    conv_small=3.77,
    conv_medium=9.72,
    conv_large=32.59,
    hybrid_medium=11.07,
    hybrid_large=37.76)
# official TF endpoint of the stride-32 stage
TF_C5 = dict(
    conv_small=128,
    conv_medium=256,
    conv_large=512,
    hybrid_medium=256,
    hybrid_large=512)
TIMM_HEAD = ('conv_head', 'norm_head', 'classifier')
# the ImageNet weights the COCO configs start from (timm's hub names)
COCO_CHECKPOINTS = dict(
    conv_small='mobilenetv4_conv_small.e2400_r224_in1k',
    conv_medium='mobilenetv4_conv_medium.e500_r256_in1k',
    conv_large='mobilenetv4_conv_large.e600_r384_in1k',
    hybrid_medium='mobilenetv4_hybrid_medium.ix_e550_r256_in1k',
    hybrid_large='mobilenetv4_hybrid_large.ix_e600_r384_in1k')


@pytest.fixture(autouse=True, scope='module')
def single_thread():
    """Small inputs gain nothing from threads; spare the shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def timm_model(arch, device='cpu', **kwargs):
    name = MobileNetV4.arch_settings[arch]['timm_model']
    with torch.device(device):
        return timm.create_model(name, **kwargs)


def num_params(module):
    return sum(p.numel() for p in module.parameters())


def save_timm_checkpoint(model, path, wrap=None, prefix=''):
    state_dict = {prefix + k: v for k, v in model.state_dict().items()}
    torch.save({wrap: state_dict} if wrap else state_dict, path)
    return str(path)


@pytest.mark.parametrize('arch', ALL_ARCHS)
def test_timm_layout_the_channels_are_read_from(arch):
    """Stages 1..3 are timm's feature taps blocks.0..2; stage 4 ends at the
    last block of blocks.3, which blocks.4 (timm's stride-32 head-conv tap,
    a single 1x1 conv) reads."""
    model = timm_model(arch, device='meta')
    taps = {f['stage']: f for f in model.feature_info}
    for stage in (1, 2, 3):
        assert taps[stage]['module'] == f'blocks.{stage - 1}'
        assert taps[stage]['reduction'] == 2**(stage + 1)
    assert len(model.blocks) == 5 and len(model.blocks[4]) == 1
    assert model.blocks[3][-1].pw_proj.conv.out_channels == \
        model.blocks[4][0].conv.in_channels
    assert taps[5]['module'] == 'blocks.4' and taps[5]['reduction'] == 32


@pytest.mark.parametrize('arch', ALL_ARCHS)
def test_output_shapes(arch):
    # the archs over 20 M parameters run on the meta device (shapes only);
    # test_features_equal_timm computes real values for large ones too
    device = 'meta' if 'large' in arch and '075' not in arch else 'cpu'
    with torch.device(device):
        model = MobileNetV4(arch, out_indices=(0, 1, 2, 3)).eval()
    channels = model.out_channels
    with torch.no_grad():
        for height, width in ((64, 64), (64, 96)):
            outs = model(torch.rand(1, 3, height, width, device=device))
            assert [tuple(o.shape) for o in outs
                    ] == [(1, c, height // s, width // s)
                          for c, s in zip(channels, (4, 8, 16, 32))]


@pytest.mark.parametrize('arch', MAIN_ARCHS)
def test_default_out_channels(arch):
    with torch.device('meta'):
        model = MobileNetV4(arch)
        head = MobileNetV4(arch, with_head_conv=True, out_indices=(-1, ))
    assert model.out_indices == (1, 2, 3)
    assert model.out_channels[-1] == TF_C5[arch]
    assert head.out_channels == (960, )


def test_hybrid_non_square_inputs():
    """End to end at 640x480 and at a size with odd stride-16/32 maps."""
    model = MobileNetV4('hybrid_medium').eval()
    with torch.no_grad():
        for height, width in ((480, 640), (208, 144)):
            outs = model(torch.rand(1, 3, height, width))
            assert [tuple(o.shape[2:]) for o in outs] == [
                (-(-height // s), -(-width // s)) for s in (8, 16, 32)
            ]


@pytest.mark.parametrize('arch', ['hybrid_medium', 'hybrid_large'])
def test_hybrid_attention_non_square(arch):
    """Stages 3-4 (all the MQA blocks) on the stride-8 maps of 640x480,
    480x640, 320x224 and 224x320 images (the high-resolution stem and
    stages 1-2, which hold no attention, are skipped to keep this fast)."""
    model = MobileNetV4(arch, out_indices=(1, 2, 3)).eval()
    with torch.no_grad():
        for height, width in ((480, 640), (640, 480), (224, 320), (320, 224)):
            x = torch.rand(1, model.out_channels[0], height // 8, width // 8)
            c4 = model.blocks[2](x)
            c5 = model.blocks[3](c4)
            assert tuple(c4.shape[2:]) == (height // 16, width // 16)
            assert tuple(c5.shape[2:]) == (height // 32, width // 32)
            assert torch.isfinite(c5).all()


@pytest.mark.parametrize('arch', MAIN_ARCHS)
def test_parameter_counts(arch):
    reference = timm_model(arch, device='meta')
    total = num_params(reference)
    assert round(total / 1e6, 2) == PUBLISHED_PARAMS_M[arch]
    head = sum(num_params(getattr(reference, name)) for name in TIMM_HEAD)
    with torch.device('meta'):
        with_head_conv = MobileNetV4(arch, with_head_conv=True)
        endpoint = MobileNetV4(arch)
    assert num_params(with_head_conv) + head == total
    assert num_params(endpoint) + head + num_params(
        reference.blocks[4]) == total


# between them: every block type (ConvBnAct, FusedIB, UIB, MQA with and
# without key/value down-sampling)
@pytest.mark.parametrize('arch',
                         ['conv_small', 'conv_medium', 'hybrid_medium'])
def test_features_equal_timm(arch, tmp_path):
    """Same weights -> our stage outputs are timm's block outputs, and with
    the head conv our stride-32 map is timm's ``features_only`` one."""
    reference = calibrated(timm_model(arch))
    checkpoint = save_timm_checkpoint(reference, tmp_path / 'timm.pth')
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        # extra_blocks: index 0 is the stem, index i + 1 follows blocks[i]
        expected = reference.forward_intermediates(
            x,
            indices=[1, 2, 3, 4, 5],
            extra_blocks=True,
            intermediates_only=True)
        features_only = timm_model(
            arch, features_only=True, out_indices=(1, 2, 3, 4))
        features_only.load_state_dict({
            k: v
            for k, v in reference.state_dict().items()
            if not k.startswith(TIMM_HEAD)
        })
        timm_features = features_only.eval()(x)
    for with_head_conv in (False, True):
        model = MobileNetV4(
            arch,
            out_indices=(0, 1, 2, 3),
            with_head_conv=with_head_conv,
            init_cfg=dict(type='Pretrained', checkpoint=checkpoint))
        model.init_weights()
        with torch.no_grad():
            outs = model.eval()(x)
        taps = expected[:3] + [expected[4] if with_head_conv else expected[3]]
        for out, tap in zip(outs, taps):
            torch.testing.assert_close(out, tap, rtol=0, atol=1e-5)
        if with_head_conv:
            for out, tap in zip(outs, timm_features):
                torch.testing.assert_close(out, tap, rtol=0, atol=1e-5)


@pytest.mark.parametrize('wrap,prefix,with_head_conv',
                         [(None, '', False), ('state_dict', 'module.', True),
                          ('model_ema', '', False)])
def test_timm_checkpoint_loads_completely(tmp_path, wrap, prefix,
                                          with_head_conv):
    reference = calibrated(timm_model('hybrid_medium'))
    checkpoint = save_timm_checkpoint(reference, tmp_path / 'ckpt.pth', wrap,
                                      prefix)
    model = MobileNetV4('hybrid_medium', with_head_conv=with_head_conv)
    missing, unexpected = load_pretrained_checkpoint(
        model,
        checkpoint,
        convert=model.convert_checkpoint,
        ignore=model.ignored_checkpoint_keys)
    assert missing == [] and unexpected == []
    reference_state = reference.state_dict()
    for key, value in model.state_dict().items():
        assert torch.equal(value, reference_state[key]), key


def test_detector_checkpoint_with_prefix(tmp_path):
    reference = calibrated(timm_model('conv_small'))
    checkpoint = save_timm_checkpoint(reference, tmp_path / 'det.pth',
                                      'state_dict', 'backbone.')
    model = MobileNetV4(
        init_cfg=dict(
            type='Pretrained', checkpoint=checkpoint, prefix='backbone.'))
    model.init_weights()
    torch.testing.assert_close(model.bn1.running_var,
                               reference.bn1.running_var)


def test_wrong_arch_checkpoint_is_rejected(tmp_path):
    checkpoint = save_timm_checkpoint(
        timm_model('conv_medium'), tmp_path / 'medium.pth')
    model = MobileNetV4(
        'conv_small', init_cfg=dict(type='Pretrained', checkpoint=checkpoint))
    with pytest.raises(ValueError, match='wrong arch'):
        model.init_weights()


def test_timm_hub_fails_clearly_offline(tmp_path, monkeypatch):
    # force offline with an empty cache, whatever this machine can reach
    monkeypatch.setattr(hf_constants, 'HF_HUB_OFFLINE', True)
    monkeypatch.setattr(hf_constants, 'HF_HUB_CACHE', str(tmp_path))
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    model = MobileNetV4(
        init_cfg=dict(
            type='Pretrained',
            checkpoint='timm://mobilenetv4_conv_small.e2400_r224_in1k'))
    with pytest.raises(RuntimeError, match='Offline.*torch.save'):
        model.init_weights()


@pytest.mark.parametrize('name,match', [
    ('timm://mobilenetv9_tiny', 'timm has no model'),
    ('timm://mobilenetv4_conv_small.e1_nope', 'e2400_r224_in1k'),
])
def test_timm_hub_bad_names(name, match):
    model = MobileNetV4(init_cfg=dict(type='Pretrained', checkpoint=name))
    with pytest.raises(ValueError, match=match):
        model.init_weights()


def test_norm_eval_and_gradients():
    model = MobileNetV4('hybrid_medium', norm_eval=True, drop_path_rate=0.1)
    model.train()
    assert all(not m.training for m in model.modules()
               if isinstance(m, _BatchNorm))
    assert any(type(m).__name__ == 'DropPath' for m in model.modules())
    outs = model(torch.rand(2, 3, 64, 64))
    sum(o.mean() for o in outs).backward()
    assert all(
        p.grad is not None and torch.isfinite(p.grad).all()
        for p in model.parameters())


def remaining_norms(model):
    return [
        name for name, m in model.named_modules() if isinstance(m, _BatchNorm)
    ]


@pytest.mark.parametrize('arch,with_head_conv', [('conv_small', True),
                                                 ('conv_medium', False),
                                                 ('hybrid_medium', False),
                                                 ('conv_aa_medium', False)])
def test_switch_to_deploy(arch, with_head_conv):
    model = MobileNetV4(
        arch, out_indices=(0, 1, 2, 3), with_head_conv=with_head_conv)
    # float64: the fusion is exact, so float32 conditioning (calibrated
    # BN statistics, stage-3 values ~700) cannot hide or fake an error
    model = calibrated(model).double()
    x = torch.rand(1, 3, 64, 96, dtype=torch.float64)
    with torch.no_grad():
        expected = model(x)
        model.switch_to_deploy()
        outs = model(x)
    # only the pre-norms of the MQA blocks with down-sampled keys/values stay
    kv_downsampled = [
        f'{name}.norm' for name, m in model.named_modules()
        if type(m).__name__ == 'MobileAttention' and m.attn.kv_stride > 1
    ]
    assert remaining_norms(model) == kv_downsampled
    if arch.startswith('conv'):
        assert kv_downsampled == []
    for out, ref in zip(outs, expected):
        torch.testing.assert_close(
            out, ref, rtol=0, atol=1e-10 * ref.abs().max().item())


@pytest.mark.parametrize('kwargs,error,match', [
    (dict(arch='conv_tiny'), ValueError, 'valid archs'),
    (dict(arch=dict(timm_model='resnet18')), ValueError,
     'not a timm MobileNetV4'),
    (dict(arch=dict()), ValueError, 'missing'),
    (dict(drop_path_rate=1.5), ValueError, r'\[0, 1\)'),
])
def test_bad_arguments(kwargs, error, match):
    with torch.device('meta'), pytest.raises(error, match=match):
        MobileNetV4(**kwargs)


@pytest.mark.parametrize('arch', MAIN_ARCHS)
def test_coco_configs(arch):
    cfg = Config.fromfile(CONFIG_DIR / f'rtdetr_mobilenetv4_{arch}_coco.py')
    backbone, neck = cfg.model.backbone, cfg.model.neck
    assert backbone.type == 'MobileNetV4' and backbone.arch == arch
    assert backbone.init_cfg == dict(
        type='Pretrained', checkpoint=f'timm://{COCO_CHECKPOINTS[arch]}')
    assert timm.list_pretrained(
        COCO_CHECKPOINTS[arch]) == [COCO_CHECKPOINTS[arch]]
    with torch.device('meta'):
        model = MODELS.build(backbone)
    assert list(model.out_channels) == neck.in_channels
    # one width from the neck through the decoder to the head
    layer = cfg.model.decoder.layer_cfg
    assert {
        neck.hidden_dim, layer.self_attn_cfg.embed_dims,
        layer.cross_attn_cfg.embed_dims, layer.ffn_cfg.embed_dims,
        cfg.model.bbox_head.embed_dims
    } == {128 if arch == 'conv_small' else 256}
    lr_mult = cfg.optim_wrapper.paramwise_cfg.custom_keys.backbone.lr_mult
    assert lr_mult == (0.5 if arch == 'conv_small' else 0.1)


@pytest.mark.parametrize('config', [
    'toy/rtdetr_mobilenetv4_conv_small_toy.py',
    'rtdetr_mobilenetv4_conv_small_coco.py'
])
def test_detector_loss_step(config):
    """The toy detector and the nano-sized COCO one build and take a finite
    loss step (from scratch: no download)."""
    init_default_scope('mmdet')
    cfg = Config.fromfile(CONFIG_DIR / config)
    cfg.model.backbone.pop('init_cfg', None)
    cfg.model.data_preprocessor.batch_augments = None  # keep 128 px
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    # 128 px: 16*16 + 8*8 + 4*4 = 336 encoder tokens >= 300 queries
    sample = DetDataSample(
        metainfo=dict(
            img_shape=(128, 128),
            ori_shape=(128, 128),
            scale_factor=(1.0, 1.0)))
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor([[8., 8., 40., 48.]]), labels=torch.tensor([1]))
    data = model.data_preprocessor(
        dict(
            inputs=[torch.randint(0, 256, (3, 128, 128), dtype=torch.uint8)],
            data_samples=[sample]), True)
    loss, _ = model.parse_losses(model(**data, mode='loss'))
    loss.backward()
    assert torch.isfinite(loss)
    assert model.backbone.blocks[3][-1].pw_proj.conv.weight.grad is not None
