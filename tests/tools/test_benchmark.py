"""tools/analysis_tools/benchmark.py and model_zoo.py at tiny shapes."""
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rtdetr_mm.datasets.toy_shapes import generate_toy_shapes
from rtdetr_mm.models.layers.ms_deform_attn import BoxDeformableAttention
from rtdetr_mm.utils.timing import time_round_robin
from .conftest import REPO, load_tool

TOY = REPO / 'configs' / 'toy'
R18 = str(TOY / 'rtdetr_r18vd_toy.py')
FAST = ['--repeat', '1', '--warmup', '0', '--threads', '1']


@pytest.fixture(scope='module')
def bench():
    return load_tool('analysis_tools/benchmark.py')


@pytest.fixture(autouse=True)
def keep_threads():
    """--threads sets torch's global thread count: restore it."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_round_robin_rotates_and_takes_ratios_per_round():
    order = []
    runs = {name: (lambda name=name: order.append(name)) for name in 'abc'}
    timings = time_round_robin(runs, repeat=3, warmup=0, reference='a')
    assert order == list('abcbcacab')
    assert set(timings.seconds) == set('abc')
    assert set(timings.speedups) == set('bc')
    with pytest.raises(ValueError, match="'z' is not one of the runs"):
        time_round_robin(runs, repeat=1, reference='z')


def test_detector_table_parity_and_json(bench, tmp_path, capsys):
    fasternet = str(TOY / 'rtdetr_fasternet_t0_toy.py')
    rows = bench.main([
        R18, fasternet, '--shape', '96', '128', '--modes', 'train-form',
        'deploy', 'onnxruntime', 'train-step', '--relative-to', R18, '--json',
        str(tmp_path / 'out.json'), *FAST
    ])
    table = capsys.readouterr().out.strip().splitlines()
    assert table[-2].startswith('| rtdetr_r18vd_toy |')
    assert table[-1].startswith('| rtdetr_fasternet_t0_toy |')
    header = table[-4]
    for column in ('params train (M)', 'params deploy (M)', 'GFLOPs@96x128',
                   'train-form (ms)', 'deploy (ms)', 'onnxruntime (ms)',
                   'deploy speed-up', 'onnxruntime speed-up',
                   'train-step (ms)', 'deploy / rtdetr_r18vd_toy'):
        assert f'| {column} |' in header
    for row in rows:
        assert row['deploy score diff'] < 1e-3
        assert row['onnxruntime score diff'] < 1e-3
        assert row['onnxruntime box diff'] < 0.5  # px
        assert row['GFLOPs@96x128'] > 0 and row['train-step (ms)'] > 0
    assert rows[0]['train-form / rtdetr_r18vd_toy'] == 1.0
    saved = json.loads((tmp_path / 'out.json').read_text())
    assert saved['rows'] == rows
    assert saved['environment']['shape'] == [96, 128]


def test_gflops_count_deformable_attention_by_hand(bench):
    batch, queries, dims, heads, levels, points = 1, 10, 32, 4, 2, 4
    shapes = torch.tensor([[8, 8], [4, 4]])
    num_value = int(shapes.prod(1).sum())
    attention = BoxDeformableAttention(
        embed_dims=dims,
        num_heads=heads,
        num_levels=levels,
        num_points=points,
        batch_first=True).eval()
    inputs = (torch.rand(batch, queries,
                         dims), torch.rand(batch, num_value, dims),
              torch.rand(batch, queries, levels,
                         4), shapes, torch.tensor([0, 64]))
    samples = heads * levels * points
    by_hand = (
        num_value * dims * dims  # multiply-adds: value_proj
        + queries * dims * samples * 3  # offsets (x2) + weights
        + queries * dims * dims  # output_proj
        + 5 * batch * queries * dims * levels * points)  # sampling
    assert round(bench.count_gflops(attention, inputs) * 1e9) == 2 * by_hand


def test_gflops_count_scaled_dot_product_attention(bench):

    class Attention(nn.Module):

        def forward(self, q, k, v):
            return F.scaled_dot_product_attention(q, k, v)

    q, k, v = torch.rand(1, 2, 5, 4), torch.rand(1, 2, 7,
                                                 4), torch.rand(1, 2, 7, 3)
    assert round(bench.count_gflops(Attention(), (q, k, v)) * 1e9) == \
        2 * (1 * 2 * 5 * 7 * (4 + 3))  # 2 FLOPs per multiply-add


def test_backbone_only_deploy_parity(bench, capsys):
    rows = bench.main([
        str(TOY / 'rtdetr_riformer_s12_toy.py'), '--backbone-only', '--shape',
        '96', '96', '--modes', 'train-form', 'deploy', *FAST
    ])
    assert '| deploy output diff |' in capsys.readouterr().out
    assert rows[0]['params deploy (M)'] < rows[0]['params train (M)']
    assert rows[0]['deploy output diff'] < 1e-3
    assert rows[0]['deploy speed-up'] > 0


def test_memory_mode_reversible_below_plain(bench):
    row, = bench.main([
        str(TOY / 'rtdetr_revcol_tiny_toy.py'), '--modes', 'memory', '--shape',
        '128', '128', *FAST
    ])
    assert 0 < row['memory reversible (MiB)'] < row['memory plain (MiB)']
    assert row['step reversible (ms)'] > 0
    with pytest.raises(
            ValueError,
            match='rtdetr_r18vd_toy.py: mode memory '
            'needs a RevCol backbone'):
        bench.main([R18, '--modes', 'memory', '--shape', '64', '64', *FAST])


def test_toy_map_rows(bench, tmp_path, monkeypatch, capsys):
    """Training is replaced by a fake that logs a validation record."""
    data_root = generate_toy_shapes(tmp_path / 'toy',
                                    dict(train=(6, 0), val=(3, 1)))

    def fake_train(cmd, check):
        work_dir = tmp_path / 'work' / 'rtdetr_r18vd_toy'
        assert cmd[cmd.index('--work-dir') + 1] == str(work_dir)
        assert 'train_cfg.max_epochs=1' in cmd
        (work_dir / 'run' / 'vis_data').mkdir(parents=True)
        (work_dir / 'run' / 'vis_data' / 'scalars.json').write_text(
            '{"loss": 1.0, "iter": 5}\n'
            '{"coco/bbox_mAP": 0.25, "coco/bbox_mAP_50": 0.5, "step": 1}\n')

    monkeypatch.setattr(bench.subprocess, 'run', fake_train)
    random, row = bench.main([
        R18, '--modes', 'toy-map', '--epochs', '1', '--data-root',
        str(data_root), '--work-root',
        str(tmp_path / 'work')
    ])
    assert random['config'].startswith('random detector')
    assert 0 <= random['toy bbox mAP'] < 0.05
    assert row['toy train iters'] == 5 and row['toy bbox mAP'] == 0.25
    assert '| rtdetr_r18vd_toy | 5 |' in capsys.readouterr().out


@pytest.mark.parametrize('argv, message', [
    (['--modes', 'fast'], "invalid choice: 'fast'"),
    (['--shape', '100', '100'], 'multiples of 32'),
    (['--backbone-only', '--modes', 'onnxruntime'
      ], "--backbone-only cannot run mode(s) ['onnxruntime']"),
    (['--relative-to', 'configs/other.py'], '--relative-to configs/other.py'
     ' is not one of the configs'),
])
def test_clear_errors(bench, capsys, argv, message):
    with pytest.raises(SystemExit):
        bench.parse_args([R18, *argv])
    assert message in capsys.readouterr().err


def test_missing_config_is_named(bench, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args([R18, 'configs/missing.py'])
    assert 'configs/missing.py: no such config file' in \
        capsys.readouterr().err


def test_model_zoo_writes_markdown(tmp_path):
    out = load_tool('analysis_tools/model_zoo.py').main([
        '--configs', 'configs/rtdetr_r18vd_coco.py', '--shape', '128', '128',
        '--repeat', '1', '--warmup', '0', '--threads', '1', '--out',
        str(tmp_path / 'zoo.md')
    ])
    text = out.read_text()
    for fact in ('* machine: ', '1 threads', '* torch ', 'onnxruntime ',
                 '* date: ', '* command: `python tools/analysis_tools/'
                 'model_zoo.py --configs configs/rtdetr_r18vd_coco.py'):
        assert fact in text
    header, rule, row = text.strip().splitlines()[-3:]
    for column in ('GFLOPs@128x128', 'onnxruntime (ms)', 'paper AP',
                   'train-form / rtdetr_r18vd_coco', 'ImageNet checkpoint'):
        assert f'| {column} |' in header
    assert row.startswith('| rtdetr_r18vd_coco |')
    assert '| 46.5 | 20 / 60 | https://' in row
