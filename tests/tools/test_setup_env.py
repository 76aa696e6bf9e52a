"""The set-up script's decision logic (the long build itself runs in CI)."""
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO, load_tool


@pytest.fixture(scope='module')
def setup_env():
    return load_tool('setup_env.py')


def test_cxx_standard_follows_torch(setup_env):
    assert setup_env.cxx_standard_for('2.13.0+cpu') == 'c++17'
    assert setup_env.cxx_standard_for('2.14.1') == 'c++20'
    assert setup_env.cxx_standard_for('2.14.1+cu130') == 'c++20'
    assert setup_env.cxx_standard_for('3.0.0') == 'c++20'


def test_patch_cxx_standard_replaces_every_flag(setup_env):
    text = ("extra = ['-std=c++14']\nnvcc = ['-std=c++17', '-O3']\n"
            "other = '-std=c++14 -fPIC'\n")
    patched = setup_env.patch_cxx_standard(text, 'c++20')
    assert '-std=c++14' not in patched and '-std=c++17' not in patched
    assert patched.count('-std=c++20') == 3
    assert "'-O3'" in patched and '-fPIC' in patched


def test_wheel_cache_key_changes_with_every_abi_input(setup_env):
    base = dict(
        mmcv_version='2.1.0',
        torch_version='2.14.1',
        python_tag='cp311',
        plat='linux_x86_64',
        with_cuda=False)
    key = setup_env.wheel_cache_key(**base)
    variants = [
        dict(base, mmcv_version='2.1.1'),
        dict(base, torch_version='2.13.0+cpu'),
        dict(base, torch_version='2.14.1+cu130'),
        dict(base, python_tag='cp312'),
        dict(base, plat='linux_aarch64'),
        dict(base, with_cuda=True),
    ]
    keys = {setup_env.wheel_cache_key(**v) for v in variants}
    assert key not in keys and len(keys) == len(variants)
    assert '/' not in key and '+' not in key  # a single safe dir name


def test_constraints_pin_the_installed_torch_pair(setup_env, tmp_path):
    text = setup_env.constraints_text('2.14.1', '0.29.1')
    assert text.splitlines() == ['torch==2.14.1', 'torchvision==0.29.1']
    # pip accepts the file and refuses a request that would replace torch.
    constraints = tmp_path / 'c.txt'
    constraints.write_text(text)
    result = subprocess.run([
        sys.executable, '-m', 'pip', 'install', '--dry-run', '--no-deps',
        '--no-index', '-c',
        str(constraints), 'torch==2.13.0'
    ],
                            capture_output=True,
                            text=True)
    assert result.returncode != 0
    assert 'torch' in (result.stdout + result.stderr)


def test_parse_version_ignores_local_suffix(setup_env):
    assert setup_env.parse_version('2.14.1+cu130') == (2, 14, 1)
    assert setup_env.parse_version('2.6.0a0') == (2, 6, 0)


def test_pins_live_in_setup_cfg_only(setup_env):
    """The versions the set-up installs are read from setup.cfg; no other
    file of the set-up spells them."""
    pins = setup_env.PINS
    assert set(pins) == {
        'torch', 'torchvision', 'mmcv', 'setuptools', 'openmim', 'mmengine'
    }
    assert pins['mmengine'] == 'mmengine>=0.10,<0.11'
    for tool in ('setup_env.py', 'setup_probe.py', 'setup.sh'):
        text = (REPO / 'tools' / tool).read_text()
        for name in ('torch', 'torchvision', 'mmcv', 'openmim'):
            assert f"'{pins[name]}'" not in text, (tool, name)
        assert pins['setuptools'] not in text


def test_probe_reports_each_check_and_why_it_failed(setup_env, tmp_path):
    state = setup_env.probe_environment()
    assert state['mmcv_ops'] and state['build_tools'] and state['openmim']
    assert state['torch_versions'][0] == state['torch_versions'][2].split(
        '+')[0]
    assert state['errors'] == {}
    # a broken check is reported with its error, the others still answer
    probe = load_tool('setup_probe.py')
    bad = dict(probe.read_pins(), mmcv='0.0.1')
    with pytest.raises(ImportError, match='0.0.1 is wanted'):
        probe.mmcv_ops(bad)


def test_second_run_keeps_the_installed_stack(setup_env):
    """A re-run detects what is installed and rebuilds/reinstalls nothing."""
    result = subprocess.run(
        [sys.executable, str(REPO / 'tools' / 'setup_env.py')],
        capture_output=True,
        text=True,
        timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert 'already installed: kept' in result.stdout
    assert 'with ops already imports: kept' in result.stdout
    assert 'rtdetr_mm and its requirements already installed: kept' in \
        result.stdout
    assert 'building mmcv' not in result.stdout and '$ ' not in result.stdout


def test_stale_cached_wheel_is_rebuilt(setup_env, tmp_path, monkeypatch):
    """A cached wheel whose mmcv.ops fails to import is deleted and rebuilt."""
    key = setup_env.wheel_cache_key(
        setup_env.PINS['mmcv'], '2.14.1',
        f'cp{sys.version_info.major}{sys.version_info.minor}',
        f'{setup_env.platform.system().lower()}_'
        f'{setup_env.platform.machine()}', False)
    wheel_dir = tmp_path / 'wheels' / key
    wheel_dir.mkdir(parents=True)
    stale = wheel_dir / 'mmcv-2.1.0-cp311-cp311-linux_x86_64.whl'
    stale.write_text('built against another torch')

    calls = dict(build=0, installed=[])
    probes = iter([
        dict(mmcv_ops=None, errors=dict(mmcv_ops='undefined symbol')),
        dict(mmcv_ops=True, errors={})
    ])  # the stale wheel, then the rebuilt one

    def fake_build(dest_dir, torch_version, with_cuda, constraints):
        calls['build'] += 1
        (Path(dest_dir) /
         'mmcv-2.1.0-cp311-cp311-linux_x86_64.whl').write_text('fresh')

    def fake_pip(*args):
        calls['installed'].extend(a for a in args if str(a).endswith('.whl'))

    monkeypatch.setattr(setup_env, 'probe_environment', lambda: next(probes))
    monkeypatch.setattr(setup_env, 'build_mmcv_wheel', fake_build)
    monkeypatch.setattr(setup_env, 'pip', fake_pip)
    state = dict(cuda_build=[False, False])
    setup_env.ensure_mmcv(state, tmp_path, '2.14.1', tmp_path / 'c.txt')

    assert calls['build'] == 1
    assert len(calls['installed']) == 2  # the stale wheel, then the fresh one
    assert (wheel_dir /
            'mmcv-2.1.0-cp311-cp311-linux_x86_64.whl').read_text() == 'fresh'
    info = (wheel_dir / 'build-info.json').read_text()
    assert '"torch": "2.14.1"' in info


@pytest.mark.parametrize(
    'probe,force,expected,says',
    [
        ([True, True], None, True, False),  # GPU + nvcc: compile CUDA ops
        ([True, False], None, False, True),  # GPU, no nvcc: CPU ops, say so
        ([False, True], None, False, False),  # no GPU
        (None, None, False, False),  # torch does not import yet
        ([False, False], '1', True, False),  # FORCE_CUDA=1 wins
    ])
def test_mmcv_cuda_ops_need_a_gpu_and_nvcc(setup_env, monkeypatch, capsys,
                                           probe, force, expected, says):
    if force is None:
        monkeypatch.delenv('FORCE_CUDA', raising=False)
    else:
        monkeypatch.setenv('FORCE_CUDA', force)
    assert setup_env.mmcv_build_with_cuda(dict(cuda_build=probe)) is expected
    assert ('nvcc is not' in capsys.readouterr().out) is says
