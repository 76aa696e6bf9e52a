"""Helpers for the end-to-end tests of tools/ (run as users run them)."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from .._utils import CONFIG_DIR, REPO

# The toy config the README's main job uses (RT-DETR + FasterNet-T0); the
# tests shrink it to a few iterations.
TOY_CONFIG = CONFIG_DIR / 'toy' / 'rtdetr_fasternet_t0_toy.py'


def load_tool(relative_path: str):
    """Import a script under tools/ as a module (to call its ``main``)."""
    path = REPO / 'tools' / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tool_env():
    """Environment of a user with the venv active and CPU-only devices."""
    bindir = str(Path(sys.executable).parent)
    return dict(
        os.environ,
        PATH=bindir + os.pathsep + os.environ['PATH'],
        PYTHON=sys.executable,
        PYTHONUNBUFFERED='1',
        CUDA_VISIBLE_DEVICES='',
        OMP_NUM_THREADS='1')


def run(cmd, timeout=900, check=True):
    """Run ``cmd`` from the repository root; return the CompletedProcess."""
    result = subprocess.run([str(c) for c in cmd],
                            cwd=REPO,
                            env=tool_env(),
                            capture_output=True,
                            text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f'{" ".join(map(str, cmd))} exited {result.returncode}\n'
            f'--- stdout (tail)\n{result.stdout[-4000:]}\n'
            f'--- stderr (tail)\n{result.stderr[-6000:]}')
    return result


def write_config(path: Path, base: Path = TOY_CONFIG, body: str = '') -> Path:
    """A config inheriting ``base`` with extra lines (sized for tests)."""
    path.write_text(f'_base_ = [{str(base)!r}]\n{body}')
    return path


def small_run_config(path: Path, images=8, batch=2, epochs=2, extra=''):
    """``images`` training images, ``epochs`` epochs, val on 4 images."""
    return write_config(
        path,
        body=f'''
train_dataloader = dict(batch_size={batch}, dataset=dict(indices={images}))
val_dataloader = dict(batch_size=2, dataset=dict(indices=4))
test_dataloader = val_dataloader
train_cfg = dict(max_epochs={epochs}, val_interval={epochs})
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=1, max_keep_ckpts=5,
                                     save_best=None))
randomness = dict(seed=0, deterministic=True)
{extra}''')


def scalars(work_dir: Path):
    """The per-iteration records mmengine logged as JSON lines."""
    files = sorted(work_dir.glob('*/vis_data/scalars.json'))
    assert files, f'no scalars.json under {work_dir}'
    return [json.loads(line) for line in files[-1].read_text().splitlines()]
