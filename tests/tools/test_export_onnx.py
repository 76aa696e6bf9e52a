"""tools/deploy/export_onnx.py and onnx_infer.py: every backbone family
exports, and ONNX Runtime gives what PyTorch gives."""
import copy
import json
import math
import subprocess
import sys

import numpy as np
import onnxruntime
import pytest
import torch
from mmdet.registry import MODELS

from rtdetr_mm.datasets.toy_shapes import CLASSES
from rtdetr_mm.deploy import (OnnxExportError, OnnxMismatchError, check_onnx,
                              export_onnx, load_config, load_detector)
from rtdetr_mm.deploy.onnx_check import (check_images, compare, resize_batch,
                                         torch_predict)
from rtdetr_mm.testing import trained_like
from .conftest import REPO, load_tool, tool_env

TOY = REPO / 'configs' / 'toy'
SHAPE = (96, 128)  # not square: a height/width swap shows
# every backbone family with RT-DETR, and D-FINE
TOY_CONFIGS = [
    'rtdetr_r18vd', 'rtdetr_riformer_s12', 'rtdetr_revcol_tiny',
    'rtdetr_mobilenetv4_conv_small', 'rtdetr_vanillanet_5',
    'rtdetr_fasternet_t0', 'dfine_fasternet_t0'
]


def trained_toy_checkpoint(config, path):
    """A train-form checkpoint of ``config`` with :func:`trained_like`
    weights (calibrated on the check images at the test shape)."""
    cfg = load_config(str(config))  # sets the registry scope
    torch.manual_seed(0)  # the same weights whatever ran before
    model = MODELS.build(copy.deepcopy(cfg.model)).eval()
    pixels, sizes = resize_batch(list(check_images().values()), SHAPE)
    trained_like(model, lambda: torch_predict(model, pixels, sizes))
    torch.save(dict(meta=dict(epoch=1), state_dict=model.state_dict()), path)
    return path


@pytest.fixture(scope='module')
def r18_checkpoint(tmp_path_factory):
    return trained_toy_checkpoint(
        TOY / 'rtdetr_r18vd_toy.py',
        tmp_path_factory.mktemp('r18') / 'epoch_1.pth')


@pytest.mark.parametrize('name', TOY_CONFIGS)
def test_every_family_exports_with_dynamic_batch(name, tmp_path, capsys):
    config = TOY / f'{name}_toy.py'
    ckpt = trained_toy_checkpoint(config, tmp_path / 'epoch_1.pth')
    out = load_tool('deploy/export_onnx.py').main([
        str(config),
        str(ckpt), '--shape', *map(str, SHAPE), '--dynamic-batch'
    ])
    printed = capsys.readouterr().out
    assert 'switch_to_deploy()' in printed
    assert 'check batch 3' in printed and 'check passed' in printed
    session = onnxruntime.InferenceSession(str(out))
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta['input_shape']) == list(SHAPE)
    assert json.loads(meta['classes'])[0] == 'circle'
    assert [i.name for i in session.get_inputs()] == ['images', 'orig_sizes']
    assert session.get_inputs()[0].type == 'tensor(uint8)'


def test_deploy_form_checkpoint_and_float_input(r18_checkpoint, tmp_path,
                                                capsys):
    config = TOY / 'rtdetr_r18vd_toy.py'
    _, deploy_ckpt = None, load_tool('deploy/deploy_rtdetr.py').main([
        str(config),
        str(r18_checkpoint), '--out-dir',
        str(tmp_path), '--size', '96'
    ])[0]
    out = load_tool('deploy/export_onnx.py').main([
        str(config),
        str(deploy_ckpt), '--shape', *map(str, SHAPE), '--batch', '2',
        '--input-dtype', 'float32', '--out',
        str(tmp_path / 'float.onnx')
    ])
    assert 'in deploy form already' in capsys.readouterr().out
    session = onnxruntime.InferenceSession(str(out))
    assert session.get_inputs()[0].type == 'tensor(float)'
    assert session.get_inputs()[0].shape[0] == 2


def test_check_fails_when_the_graph_differs(r18_checkpoint, tmp_path):
    model, _ = load_detector(
        load_config(str(TOY / 'rtdetr_r18vd_toy.py')), str(r18_checkpoint))
    model.switch_to_deploy()
    out = export_onnx(model, tmp_path / 'm.onnx', SHAPE)
    with torch.no_grad():  # the decoder's class scores change after export
        for branch in model.bbox_head.cls_branches[:-1]:  # [-1]: encoder's
            branch.bias[1] += 0.5
    with pytest.raises(OnnxMismatchError, match='scores differ by up to'):
        check_onnx(out, model, SHAPE)


def test_compare_accepts_float_ties_and_rejects_wrong_labels():
    boxes = np.array([[0, 0, 10, 10], [5, 5, 20, 20], [1, 2, 3, 4]], float)
    ref = (np.array([0, 1, 2]), boxes, np.array([0.9, 0.50002, 0.5]))
    order = [0, 2, 1]
    swapped = (ref[0][order], boxes[order], np.array([0.9, 0.50001, 0.50001]))
    result = compare(ref, swapped, 1e-4, 0.5)
    assert not result.mismatches and result.score < 2e-5
    # at the K-th score a detection may be cut off on one side only
    cut = (np.array([0, 1, 0]), boxes, ref[2])
    assert not compare(ref, cut, 1e-4, 0.5).mismatches
    spread = (ref[0], boxes, np.array([0.9, 0.6, 0.5]))
    wrong = (np.array([0, 2, 2]), boxes, spread[2])
    assert 'rank 1: label 2' in compare(spread, wrong, 1e-4, 0.5).mismatches[0]
    moved = (ref[0], boxes + [[0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]],
             spread[2])
    assert len(compare(spread, moved, 1e-4, 0.5).mismatches) == 1
    # a tie between two boxes of one label: each matches its own box
    same = (np.array([1, 1, 2]), boxes, np.array([0.50001, 0.5, 0.4]))
    same_swapped = (same[0], boxes[[1, 0, 2]], same[2][[1, 0, 2]])
    assert compare(same, same_swapped, 1e-4, math.inf).box == 0


def test_clear_errors(r18_checkpoint, tmp_path):
    tool = load_tool('deploy/export_onnx.py')
    with pytest.raises(FileNotFoundError, match='no such config file'):
        tool.main(['configs/toy/nope.py', str(r18_checkpoint)])
    with pytest.raises(
            ValueError,
            match=r'does not fit the model .*RIFormer'
            r'.*missing key'):
        tool.main(
            [str(TOY / 'rtdetr_riformer_s12_toy.py'),
             str(r18_checkpoint)])
    with pytest.raises(ValueError, match='multiples of 32'):
        tool.main([
            str(TOY / 'rtdetr_r18vd_toy.py'),
            str(r18_checkpoint), '--shape', '100', '128', '--no-check'
        ])
    with pytest.raises(
            OnnxExportError,
            match=r'aten::grid_sampler in detector\.decoder\.'
            r'layers\.0\.cross_attn .*opset 13: try --opset 16'):
        tool.main([
            str(TOY / 'rtdetr_r18vd_toy.py'),
            str(r18_checkpoint), '--shape', *map(str, SHAPE), '--opset', '13',
            '--out',
            str(tmp_path / 'old.onnx')
        ])


BLOCK_TORCH = '''
import runpy, sys
class Block:
    def find_spec(self, name, *args):
        if name.split('.')[0] in {'torch', 'mmcv', 'mmdet', 'mmengine',
                                   'rtdetr_mm'}:
            raise ImportError(f'{name} is not installed on the robot')
sys.meta_path.insert(0, Block())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
'''


def test_onnx_infer_without_torch_matches_inference_detector(
        r18_checkpoint, tmp_path, toy_data):
    from mmdet.apis import inference_detector, init_detector
    config = str(TOY / 'rtdetr_r18vd_toy.py')
    out = load_tool('deploy/export_onnx.py').main(
        [config, str(r18_checkpoint), '--no-check'])  # the config's 256px
    images = [
        str(toy_data / 'val' / f) for f in sorted(
            p.name for p in (toy_data / 'val').iterdir())[:2]
    ]
    (tmp_path / 'notes.txt').write_text('not an image')
    cmd = [
        sys.executable, '-c', BLOCK_TORCH,
        str(REPO / 'tools' / 'deploy' / 'onnx_infer.py'),
        str(out), *images, '--out-dir',
        str(tmp_path / 'vis'), '--score-thr', '0.3'
    ]
    subprocess.run(cmd, check=True, env=tool_env(), cwd=REPO)
    report = json.loads((tmp_path / 'vis' / 'results.json').read_text())
    assert all(
        (tmp_path / 'vis' / p.rsplit('/', 1)[-1]).is_file() for p in images)

    model = init_detector(config, str(r18_checkpoint), device='cpu')
    for entry, result in zip(report, inference_detector(model, images)):
        pred = result.pred_instances[result.pred_instances.scores >= 0.3]
        assert len(pred) > 0, 'the check needs detections to compare'
        drawn = entry['detections']
        assert len(drawn) == len(pred)
        assert {d['class'] for d in drawn} <= set(CLASSES)
        comparison = compare(
            (pred.labels.numpy(), pred.bboxes.numpy(), pred.scores.numpy()),
            tuple(
                np.array([d[k] for d in drawn])
                for k in ('label', 'box', 'score')), 1e-4, 0.5)
        assert not comparison.mismatches, comparison.mismatches[:3]

    bad = subprocess.run(
        cmd[:5] + [str(tmp_path / 'notes.txt')],
        env=tool_env(),
        cwd=REPO,
        capture_output=True,
        text=True)
    assert bad.returncode != 0
    assert 'notes.txt: not an image file' in bad.stderr
