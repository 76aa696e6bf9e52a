"""tools/train.py and tools/test.py end to end on the toy set (CPU)."""
import pickle
import re

import pytest
import torch

import rtdetr_mm  # noqa: F401  (weights_only allow-list, as users get it)
from .._utils import write_malicious_checkpoint
from .conftest import TOY_CONFIG, run, scalars, small_run_config, write_config

pytestmark = pytest.mark.usefixtures('toy_data')


def _load(path):
    return torch.load(path, map_location='cpu')  # weights_only (default)


@pytest.fixture(scope='module')
def two_epoch_run(tmp_path_factory):
    """Train 2 epochs of 4 iterations in one go (the reference run)."""
    tmp = tmp_path_factory.mktemp('straight')
    cfg = small_run_config(tmp / 'cfg.py')
    run(['python', 'tools/train.py', cfg, '--work-dir', tmp / 'work'])
    return cfg, tmp / 'work'


def test_training_writes_checkpoints_and_logs(two_epoch_run):
    _, work = two_epoch_run
    assert (work / 'epoch_1.pth').is_file()
    assert (work / 'epoch_2.pth').is_file()
    records = [r for r in scalars(work) if 'loss' in r]
    assert [r['iter'] for r in records] == list(range(1, 9))
    assert all(torch.isfinite(torch.tensor(r['loss'])) for r in records)
    ckpt = _load(work / 'epoch_2.pth')
    assert ckpt['meta']['epoch'] == 2 and ckpt['meta']['iter'] == 8


def test_resume_continues_exactly(two_epoch_run, tmp_path):
    """Stop after epoch 1, resume to epoch 2: the straight run's state."""
    cfg, straight = two_epoch_run
    work = tmp_path / 'work'
    run([
        'python', 'tools/train.py', cfg, '--work-dir', work, '--cfg-options',
        'train_cfg.max_epochs=1'
    ])
    assert not (work / 'epoch_2.pth').exists()
    result = run(
        ['python', 'tools/train.py', cfg, '--work-dir', work, '--resume'])
    assert 'resumed epoch: 1, iter: 4' in result.stdout + result.stderr
    resumed, reference = _load(work / 'epoch_2.pth'), _load(straight /
                                                            'epoch_2.pth')
    assert resumed['meta']['iter'] == reference['meta']['iter'] == 8
    # model weights and optimizer state continue as if never interrupted
    for key, value in reference['state_dict'].items():
        torch.testing.assert_close(
            resumed['state_dict'][key], value, rtol=1e-4, atol=1e-5, msg=key)
    ref_opt, res_opt = reference['optimizer'], resumed['optimizer']
    assert ref_opt['state'].keys() == res_opt['state'].keys()
    for idx, state in ref_opt['state'].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                torch.testing.assert_close(
                    res_opt['state'][idx][name], value, rtol=1e-4, atol=1e-5)
    # Same learning rate. (The scheduler dicts differ in `end`, which mmengine
    # derives from max_epochs, the setting this test changed to stop early.)
    assert [s['_last_value'] for s in resumed['param_schedulers']] == \
        [s['_last_value'] for s in reference['param_schedulers']]


def test_resume_from_explicit_checkpoint_with_ema(tmp_path):
    """--resume CKPT restores iteration, optimizer and the EMA model."""
    cfg = small_run_config(tmp_path / 'cfg.py', epochs=2)  # EMA: the recipe
    work = tmp_path / 'work'
    run([
        'python', 'tools/train.py', cfg, '--work-dir', work, '--cfg-options',
        'train_cfg.max_epochs=1'
    ])
    first = _load(work / 'epoch_1.pth')
    assert 'ema_state_dict' in first
    result = run([
        'python', 'tools/train.py', cfg, '--work-dir', tmp_path / 'resumed',
        '--resume', work / 'epoch_1.pth'
    ])
    assert 'resumed epoch: 1, iter: 4' in result.stdout + result.stderr
    second = _load(tmp_path / 'resumed' / 'epoch_2.pth')
    assert second['meta']['iter'] == 8
    assert second['optimizer']['state'], 'optimizer state lost'
    # EMA continued from the restored average rather than restarting: its
    # step counter carried on from 4 to 8.
    assert int(first['ema_state_dict']['steps']) == 4
    assert int(second['ema_state_dict']['steps']) == 8


def test_test_tool_evaluates_dumps_and_draws(two_epoch_run, tmp_path):
    cfg, work = two_epoch_run
    out = tmp_path / 'results.pkl'
    result = run([
        'python', 'tools/test.py', cfg, work / 'epoch_2.pth', '--work-dir',
        tmp_path / 'test', '--out', out, '--show-dir', 'vis', '--score-thr',
        '0.0'
    ])
    assert 'coco/bbox_mAP' in result.stdout + result.stderr
    with open(out, 'rb') as f:
        predictions = pickle.load(f)
    assert len(predictions) == 4
    assert {'bboxes', 'scores',
            'labels'} <= set(predictions[0]['pred_instances'])
    drawn = list((tmp_path / 'test').glob('*/vis/*.png'))
    assert len(drawn) == 4


def test_unknown_model_type_is_a_clear_error(tmp_path):
    cfg = write_config(
        tmp_path / 'cfg.py',
        body="model = dict(type='NoSuchDetector', _delete_=True)\n")
    result = run(
        ['python', 'tools/train.py', cfg, '--work-dir', tmp_path / 'w'],
        check=False)
    assert result.returncode != 0
    assert 'NoSuchDetector is not in the' in result.stderr


def test_missing_data_path_is_a_clear_error(tmp_path):
    cfg = write_config(
        tmp_path / 'cfg.py',
        body='''
train_dataloader = dict(dataset=dict(type='CocoDataset',
                                     data_root='/nonexistent/coco/',
                                     ann_file='annotations/instances_train2017.json'))
''')
    result = run(
        ['python', 'tools/train.py', cfg, '--work-dir', tmp_path / 'w'],
        check=False)
    assert result.returncode != 0
    assert ("FileNotFoundError: train_dataloader: annotation file "
            "'/nonexistent/coco/annotations/instances_train2017.json' does "
            'not exist') in result.stderr
    assert 'train_dataloader.dataset.data_root=' in result.stderr
    assert not (tmp_path / 'w').exists()  # failed before building anything


def test_empty_image_file_is_named_before_anything_starts(tmp_path, toy_data):
    images = tmp_path / 'images'
    images.mkdir()
    (images / 'ok.png').write_bytes(
        (toy_data / 'train' /
         sorted(p.name
                for p in (toy_data / 'train').iterdir())[0]).read_bytes())
    (images / 'broken_copy.jpg').write_bytes(b'')
    cfg = write_config(
        tmp_path / 'cfg.py',
        body=f'''
test_dataloader = dict(dataset=dict(
    type='CocoDataset', data_root={str(tmp_path)!r},
    ann_file={str(toy_data / 'annotations' / 'instances_val.json')!r},
    data_prefix=dict(img='images/')))
''')
    ckpt = tmp_path / 'model.pth'
    torch.save(dict(state_dict={}), ckpt)
    result = run(
        ['python', 'tools/test.py', cfg, ckpt, '--work-dir', tmp_path / 'w'],
        check=False)
    assert result.returncode != 0
    assert ('test_dataloader: 1 empty (0-byte) file(s) in the image folder'
            in result.stderr)
    assert str(images / 'broken_copy.jpg') in result.stderr
    assert not (tmp_path / 'w').exists()


def test_amp_without_cuda_fails_at_once(tmp_path):
    result = run([
        'python', 'tools/train.py', TOY_CONFIG, '--amp', '--work-dir',
        tmp_path / 'w'
    ],
                 check=False)
    assert result.returncode != 0
    assert 'mixed precision (--amp, optim_wrapper.type=AmpOptimWrapper) ' \
        'needs a CUDA' in result.stderr
    assert not (tmp_path / 'w').exists()  # before the Runner is built


@pytest.mark.parametrize('how', ['load_from', 'resume'])
def test_malicious_checkpoint_runs_nothing(tmp_path, how):
    marker = tmp_path / 'pwned'
    evil = write_malicious_checkpoint(tmp_path / 'evil.pth', marker)
    cfg = small_run_config(tmp_path / 'cfg.py', images=2, epochs=1)
    args = (['--cfg-options', f'load_from={evil}']
            if how == 'load_from' else ['--resume', evil])
    result = run(
        ['python', 'tools/train.py', cfg, '--work-dir', tmp_path / 'w', *args],
        check=False)
    assert result.returncode != 0
    assert re.search(
        rf'UnsafeCheckpointError: {re.escape(str(evil))} '
        r"wants to load '(io|builtins)\.open'", result.stderr)
    assert not marker.exists()
