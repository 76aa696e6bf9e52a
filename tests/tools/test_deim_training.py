"""The DEIM toy recipe trains through tools/train.py: its four augmentation
stages switch at their epochs, also when a run resumes inside a later
stage, and the resumed run continues exactly."""
import pytest

from .._utils import CONFIG_DIR
from .conftest import run, scalars, write_config

pytestmark = pytest.mark.usefixtures('toy_data')

# 8 images, batches of 4, one epoch per stage (stages from epochs 1, 2, 3)
BODY = '''
train_dataloader = dict(batch_size=4, dataset=dict(dataset=dict(indices=8)))
train_cfg = dict(max_epochs=4, val_interval=4)
val_cfg = None
val_dataloader = None
val_evaluator = None
default_hooks = dict(
    logger=dict(interval=1),
    checkpoint=dict(interval=1, max_keep_ckpts=5, save_best=None),
    augmentation_schedule=dict(stages=[
        dict(epoch=1, pipeline=_base_.train_pipeline_stage2,
             batch_augments=[dict(_base_.deim_batch_mixup, prob=1.0)]),
        dict(epoch=2, pipeline=_base_.train_pipeline_stage3,
             batch_augments=None),
        dict(epoch=3, pipeline=_base_.train_pipeline_stage4,
             batch_augments=None)]))
param_scheduler = [
    dict(type='QuadraticWarmupLR', by_epoch=False, begin=0, end=3),
    dict(type='CosineAnnealingLR', eta_min_ratio=0.5, by_epoch=True,
         begin=2, end=3, convert_to_iter_based=True)]
randomness = dict(seed=0, deterministic=True)
'''


def test_stages_switch_and_resume_continues_exactly(tmp_path):
    cfg = write_config(
        tmp_path / 'cfg.py',
        base=CONFIG_DIR / 'toy' / 'deim_rtdetr_fasternet_t0_toy.py',
        body=BODY)
    straight = tmp_path / 'straight'
    log = run(['python', 'tools/train.py', cfg, '--work-dir', straight])
    out = log.stdout + log.stderr
    for stage, epoch in ((2, 1), (3, 2), (4, 3)):
        assert f'AugmentationStageHook: epoch {epoch}: stage {stage} of 4' \
            in out
    assert "batch augments ['BatchMixUp']" in out
    records = [r for r in scalars(straight) if 'loss' in r]
    assert [r['iter'] for r in records] == list(range(1, 9))
    # FlatCosine: quadratic warm-up ((t + 1) / 3)^2, flat, cosine down in
    # epoch 2, then constant (above 0.5 x lr by (1 - 0.5) sin^2(pi / 2D)
    # for a D-iteration cosine: here D = 2)
    assert [r['lr'] for r in records] == pytest.approx(
        [1e-3 / 9, 4e-3 / 9, 1e-3, 1e-3, 1e-3, 0.75e-3, 0.75e-3, 0.75e-3])

    resumed = tmp_path / 'resumed'
    run([
        'python', 'tools/train.py', cfg, '--work-dir', resumed,
        '--cfg-options', 'train_cfg.max_epochs=2'
    ])
    log = run(
        ['python', 'tools/train.py', cfg, '--work-dir', resumed, '--resume'])
    out = log.stdout + log.stderr
    # resumed at epoch 2: stage 3 is put in force before it trains
    assert 'AugmentationStageHook: epoch 2: stage 3 of 4' in out
    again = [r for r in scalars(resumed) if 'loss' in r]
    assert [r['loss'] for r in again] == [r['loss'] for r in records[4:]]
