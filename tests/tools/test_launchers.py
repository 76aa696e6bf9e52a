"""The multi-process and mim entry points, run as a user runs them."""
import json
import math
import socket

import pytest

from .conftest import run, scalars, small_run_config

pytestmark = pytest.mark.usefixtures('toy_data')


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_dist_train_two_cpu_processes(tmp_path, monkeypatch):
    """tools/dist_train.sh with 2 processes (gloo) trains and checkpoints."""
    cfg = small_run_config(tmp_path / 'cfg.py', images=8, batch=2, epochs=1)
    work = tmp_path / 'work'
    monkeypatch.setenv('PORT', str(_free_port()))
    result = run([
        'bash', 'tools/dist_train.sh', cfg, '2', '--work-dir', work,
        '--cfg-options', 'env_cfg.dist_cfg.backend=gloo'
    ])
    log = result.stdout + result.stderr
    assert 'Distributed launcher: pytorch' in log
    assert 'Distributed training: True' in log
    assert 'GPU number: 2' in log  # mmengine's name for the world size
    # 8 images over 2 ranks with 2 per batch: 2 iterations an epoch
    assert [r['iter'] for r in scalars(work) if 'loss' in r] == [1, 2]
    assert (work / 'epoch_1.pth').is_file()


def test_dist_train_usage_message():
    result = run(['bash', 'tools/dist_train.sh'], check=False)
    assert result.returncode == 2 and 'usage: bash tools/dist_train.sh' in \
        result.stderr


def test_mim_train_and_test(tmp_path):
    """`mim train rtdetr_mm CONFIG` finds our train.py; `mim test` ours too."""
    cfg = small_run_config(tmp_path / 'cfg.py', images=4, batch=2, epochs=1)
    work = tmp_path / 'work'
    result = run([
        'mim', 'train', 'rtdetr_mm', cfg, '--gpus', '0', '--launcher', 'none',
        '--work-dir', work
    ])
    assert 'Training finished successfully' in result.stdout
    assert 'rtdetr_mm/.mim/tools/train.py' in result.stdout
    assert (work / 'epoch_1.pth').is_file()
    result = run([
        'mim', 'test', 'rtdetr_mm', cfg, '--checkpoint', work / 'epoch_1.pth',
        '--gpus', '0', '--launcher', 'none', '--work-dir', tmp_path / 'test'
    ])
    assert 'coco/bbox_mAP' in result.stdout + result.stderr


def test_dist_train_with_a_rank_without_annotations(tmp_path, toy_data,
                                                    monkeypatch):
    """2 processes (gloo); every image rank 1 sees has no boxes (negatives
    in a detection set): the iteration completes on both, no hang."""
    coco = json.loads(
        (toy_data / 'annotations' / 'instances_train.json').read_text())
    images = coco['images'][:4]
    # DefaultSampler gives rank r the indices r, r + 2, ...: 1 and 3 empty
    kept = {images[0]['id'], images[2]['id']}
    coco.update(
        images=images,
        annotations=[a for a in coco['annotations'] if a['image_id'] in kept])
    ann_file = tmp_path / 'half_empty.json'
    ann_file.write_text(json.dumps(coco))
    cfg = small_run_config(
        tmp_path / 'cfg.py',
        images=4,
        batch=2,
        epochs=1,
        extra=f'''
train_dataloader = dict(
    sampler=dict(shuffle=False),
    dataset=dict(ann_file={str(ann_file)!r}, indices=None,
                 filter_cfg=dict(filter_empty_gt=False)))
''')
    work = tmp_path / 'work'
    monkeypatch.setenv('PORT', str(_free_port()))
    run([
        'bash', 'tools/dist_train.sh', cfg, '2', '--work-dir', work,
        '--cfg-options', 'env_cfg.dist_cfg.backend=gloo'
    ],
        timeout=600)
    records = [r for r in scalars(work) if 'loss' in r]
    assert [r['iter'] for r in records] == [1]
    assert all(math.isfinite(v) for k, v in records[0].items() if 'loss' in k)
    assert (work / 'epoch_1.pth').is_file()
