"""Real training on the toy set: the loss must fall."""
import pytest

from .conftest import run, scalars, small_run_config

pytestmark = pytest.mark.usefixtures('toy_data')


def test_toy_training_loss_falls(tmp_path):
    # The toy recipe's 30-iteration warm-up shortened to 5 iterations.
    cfg = small_run_config(
        tmp_path / 'cfg.py',
        images=32,
        batch=4,
        epochs=3,
        extra='val_cfg = None\nval_dataloader = None\nval_evaluator = None\n'
        "param_scheduler = [dict(type='LinearLR', start_factor=0.1, "
        'by_epoch=False, begin=0, end=5)]\n')
    work = tmp_path / 'work'
    run(['python', 'tools/train.py', cfg, '--work-dir', work])
    losses = [r['loss'] for r in scalars(work) if 'loss' in r]
    assert len(losses) == 24
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    # Measured with the toy recipe's lr 1e-3 before the main job moved to
    # FasterNet-T0 (which passes too): 25.8 -> 22.5 (RIFormer-S12,
    # -13%) and 26.0 -> 21.2 (R18vd, -18%);
    # the total sums 24 terms (3 decoder layers, encoder, denoising groups).
    assert last < 0.92 * first, f'loss did not fall: {first:.3f} -> {last:.3f}'
