"""Install the rtdetr_mm stack into the running Python environment.

Run through ``bash tools/setup.sh`` (which creates or picks the virtual
environment); calling it directly installs into whatever ``python`` runs it.

Steps, each skipped when already satisfied (so a second run takes seconds):

1. torch + torchvision: installed only when ``import torchvision`` fails, then
   pinned in a constraints file so no later install can replace them.
2. mmcv with compiled ops: built from source against the installed torch
   (C++20 for torch >= 2.14, whose headers require it), cached as a wheel
   outside the repository under a key of (mmcv, torch, python, platform,
   cpu/cuda); the import of ``mmcv.ops`` is verified and a cached wheel that
   fails it is deleted and rebuilt.
3. mmengine, mmdet, mmpretrain, timm, openmim (without its dataset-download
   extras, which downgrade setuptools) and rtdetr_mm itself (editable, with
   test extras), all under the torch constraints.

Only the standard library is used here: this runs before anything else exists.
"""
import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PROBE = REPO_ROOT / 'tools' / 'setup_probe.py'
sys.path.insert(0, str(PROBE.parent))  # when imported from elsewhere (tests)
from setup_probe import MARKER, OPENMIM_DEPS, read_pins  # noqa: E402

PINS = read_pins()
BUILD_REQUIREMENTS = [
    f'setuptools{PINS["setuptools"]}', 'wheel', 'ninja', 'packaging'
]


def log(msg):
    """Print a timestamped progress line (flushed: the build is long)."""
    print(f'[setup {time.strftime("%H:%M:%S")}] {msg}', flush=True)


def run(cmd, env=None):
    """Run a command, streaming its output; raise naming it on failure."""
    log('$ ' + ' '.join(str(c) for c in cmd))
    result = subprocess.run([str(c) for c in cmd], env=env)
    if result.returncode != 0:
        raise SystemExit(f'setup failed (exit {result.returncode}) running: ' +
                         ' '.join(str(c) for c in cmd))


def parse_version(text):
    """'2.14.1+cu130' -> (2, 14, 1); non-numeric parts are dropped."""
    core = text.split('+')[0]
    return tuple(int(p) for p in re.findall(r'\d+', core)[:3])


def cxx_standard_for(torch_version):
    """C++ standard mmcv must be compiled with for this torch version."""
    return 'c++20' if parse_version(torch_version) >= (2, 14) else 'c++17'


def patch_cxx_standard(setup_py_text, standard):
    """Replace every ``-std=c++NN`` flag of mmcv's setup.py by ``standard``."""
    return re.sub(r'-std=c\+\+\d+', f'-std={standard}', setup_py_text)


def wheel_cache_key(mmcv_version, torch_version, python_tag, plat, with_cuda):
    """Directory name identifying one mmcv build.

    Every input that changes the compiled ABI is part of the key, so a wheel
    built against another torch (or python, platform, CUDA setting) is never
    picked up.
    """
    ops = 'cuda' if with_cuda else 'cpu'
    safe_torch = torch_version.replace('+', '_')
    return f'mmcv-{mmcv_version}_torch-{safe_torch}_{python_tag}_{plat}_{ops}'


def constraints_text(torch_version, torchvision_version):
    """pip constraints that keep the installed torch pair in place."""
    return (f'torch=={torch_version}\n'
            f'torchvision=={torchvision_version}\n')


def default_cache_dir():
    base = os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache'
    return Path(base) / 'rtdetr_mm'


def pip(*args):
    run([sys.executable, '-m', 'pip', *args])


def ensure_torch(state):
    """Install torch + torchvision unless the probe ``state`` has them.

    Returns:
        (torch metadata version, torchvision metadata version,
        torch.__version__)
    """
    if state['torch_versions']:
        versions = state['torch_versions']
        log(f'torch {versions[2]} + torchvision {versions[1]} already '
            'installed: kept')
        return tuple(versions)
    log(f'torch/torchvision not importable '
        f'({state["errors"]["torch_versions"]}); installing '
        f'torch=={PINS["torch"]} torchvision=={PINS["torchvision"]}')
    pip('install', f'torch=={PINS["torch"]}',
        f'torchvision=={PINS["torchvision"]}')
    state.update(probe_environment())
    if not state['torch_versions']:
        raise SystemExit('torch/torchvision do not import after install: '
                         f'{state["errors"]["torch_versions"]}')
    return tuple(state['torch_versions'])


def build_mmcv_wheel(dest_dir, torch_version, with_cuda, constraints):
    """Download mmcv's sdist, patch its C++ standard and build a wheel."""
    with tempfile.TemporaryDirectory(prefix='rtdetr_mm_mmcv_') as tmp:
        tmp = Path(tmp)
        pip('download', f'mmcv=={PINS["mmcv"]}', '--no-deps', '--no-binary',
            ':all:', '-d', tmp)
        sdist = next(tmp.glob('mmcv-*.tar.gz'))
        with tarfile.open(sdist) as tar:
            tar.extractall(tmp, filter='data')
        src = tmp / f'mmcv-{PINS["mmcv"]}'
        setup_py = src / 'setup.py'
        standard = cxx_standard_for(torch_version)
        setup_py.write_text(patch_cxx_standard(setup_py.read_text(), standard))
        jobs = os.environ.get('MAX_JOBS', str(os.cpu_count() or 2))
        env = dict(
            os.environ,
            MMCV_WITH_OPS='1',
            MAX_JOBS=jobs,
            FORCE_CUDA='1' if with_cuda else '0')
        if not with_cuda:
            # mmcv's setup.py compiles CUDA ops whenever torch sees a GPU
            env['CUDA_VISIBLE_DEVICES'] = ''
        log(f'building mmcv {PINS["mmcv"]} with ops ({standard}, '
            f'{"CUDA" if with_cuda else "CPU"}, MAX_JOBS={env["MAX_JOBS"]}); '
            'this takes ~37 min on 2 cores')
        run([
            sys.executable, '-m', 'pip', 'wheel', '--no-build-isolation',
            '--no-deps', '-c', constraints, '-w', dest_dir, src
        ],
            env=env)


def mmcv_build_with_cuda(state):
    """Whether to compile mmcv's CUDA ops: a GPU and nvcc, or FORCE_CUDA=1.

    Without nvcc (or CUDA_HOME) on a GPU machine mmcv is built with its CPU
    ops only; rtdetr_mm's deformable attention then runs its PyTorch path on
    the GPU (see docs/reliability.md for the speed cost).
    """
    if os.environ.get('FORCE_CUDA') == '1':
        return True
    gpu, nvcc = state['cuda_build'] or (False, False)
    if gpu and not nvcc:
        log('a GPU is visible but nvcc is not (set CUDA_HOME or put nvcc on '
            "PATH to compile mmcv's CUDA kernels): building mmcv with CPU "
            "ops only; deformable attention on the GPU will use rtdetr_mm's "
            'PyTorch path (slower, same results)')
    return gpu and nvcc


def ensure_mmcv(state, cache_dir, torch_version, constraints):
    """Install mmcv with ops from the wheel cache, building it when needed."""
    with_cuda = mmcv_build_with_cuda(state)
    tag = f'cp{sys.version_info.major}{sys.version_info.minor}'
    key = wheel_cache_key(PINS['mmcv'], torch_version, tag,
                          f'{platform.system().lower()}_{platform.machine()}',
                          with_cuda)
    wheel_dir = cache_dir / 'wheels' / key
    for attempt in ('cached', 'fresh'):
        wheels = sorted(wheel_dir.glob('mmcv-*.whl'))
        if not wheels:
            wheel_dir.mkdir(parents=True, exist_ok=True)
            build_mmcv_wheel(wheel_dir, torch_version, with_cuda, constraints)
            wheels = sorted(wheel_dir.glob('mmcv-*.whl'))
        else:
            log(f'using cached mmcv wheel {wheels[-1]}')
        pip('install', '--no-deps', '--force-reinstall', wheels[-1])
        # mmcv's own runtime requirements, resolved under the torch pin.
        pip('install', '-c', constraints, 'addict', PINS['mmengine'], 'numpy',
            'packaging', 'Pillow', 'pyyaml', 'yapf', 'opencv-python')
        state.update(probe_environment())
        if state['mmcv_ops']:
            (wheel_dir / 'build-info.json').write_text(
                json.dumps(
                    dict(
                        mmcv=PINS['mmcv'],
                        torch=torch_version,
                        python=tag,
                        cuda=with_cuda),
                    indent=2))
            log('mmcv.ops imports')
            return
        log(f'mmcv.ops fails to import with the {attempt} wheel: '
            f'{state["errors"]["mmcv_ops"]}')
        shutil.rmtree(wheel_dir)  # a stale or broken build: rebuild once
    raise SystemExit('mmcv.ops does not import even after a fresh build')


def probe_environment() -> dict:
    """What is installed (``tools/setup_probe.py`` in a fresh interpreter,
    from outside the repository, whose rtdetr_mm.egg-info would answer for
    the installed metadata)."""
    proc = subprocess.run([sys.executable, str(PROBE)],
                          capture_output=True,
                          text=True,
                          cwd=tempfile.gettempdir())
    lines = [line for line in proc.stdout.splitlines() if MARKER in line]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f'cannot probe {sys.executable}:\n'
                         f'{proc.stdout}{proc.stderr}')
    return json.loads(lines[-1].split(MARKER, 1)[1])


def package_stamp():
    """What the editable install depends on: metadata files and location."""
    digest = hashlib.sha256(str(REPO_ROOT).encode())
    for name in ('setup.cfg', 'pyproject.toml'):
        digest.update((REPO_ROOT / name).read_bytes())
    return digest.hexdigest()


def link_for_mim(location):
    """Let openmim find our tools/configs in an editable install.

    ``mim train rtdetr_mm CONFIG`` runs ``<dist location>/rtdetr_mm/.mim/
    tools/train.py``, where the dist location is the folder holding the
    package metadata (site-packages). An editable install keeps the package in
    the repository, so we link it there; ``rtdetr_mm/.mim`` links to the
    repository's ``tools/`` and ``configs/`` (as OpenMMLab packages do).
    """
    link = Path(location) / 'rtdetr_mm'
    target = REPO_ROOT / 'rtdetr_mm'
    if link.resolve() == target.resolve():
        return
    if link.is_symlink():
        link.unlink()  # points at another checkout
    elif link.exists():
        return  # a regular (non-editable) install ships its own .mim
    link.symlink_to(target, target_is_directory=True)
    log(f'linked {link} -> {target} for openmim')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--cache-dir',
        type=Path,
        default=default_cache_dir(),
        help='where built mmcv wheels are kept '
        '(default: $XDG_CACHE_HOME/rtdetr_mm or '
        '~/.cache/rtdetr_mm)')
    args = parser.parse_args(argv)
    start = time.time()
    log(f'python {sys.executable} ({platform.python_version()})')
    state = probe_environment()
    if not state['build_tools']:
        pip('install', '-q', *BUILD_REQUIREMENTS)

    torch_v, tv_v, torch_abi = ensure_torch(state)
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    # one file per environment (several venvs may share the cache)
    env_id = hashlib.sha256(sys.prefix.encode()).hexdigest()[:12]
    constraints = args.cache_dir / f'constraints-{env_id}.txt'
    constraints.write_text(
        constraints_text(torch_v, tv_v) + f'setuptools{PINS["setuptools"]}\n')
    log(f'pinned torch=={torch_v} torchvision=={tv_v} in {constraints}')

    if state['mmcv_ops']:
        log(f'mmcv {PINS["mmcv"]} with ops already imports: kept')
    else:
        ensure_mmcv(state, args.cache_dir, torch_abi, constraints)

    if state['openmim']:
        log(f'openmim {PINS["openmim"]} already installed: kept')
    else:
        log('installing openmim without its dataset-download extras '
            '(pip will note that `opendatalab` is missing: intended)')
        pip('install', '-q', '-c', constraints, f'openmim=={PINS["openmim"]}',
            '--no-deps')
        pip('install', '-q', '-c', constraints, *OPENMIM_DEPS)

    stamp = Path(sys.prefix) / 'rtdetr_mm-setup.stamp'
    if state['stack'] and stamp.exists() and \
            stamp.read_text() == package_stamp():
        log('rtdetr_mm and its requirements already installed: kept')
    else:
        log('installing mmdet, mmpretrain, timm and rtdetr_mm '
            '(editable, with test extras)')
        pip('install', '-q', '-c', constraints, '-e', f'{REPO_ROOT}[tests]')
        state.update(probe_environment())
        if not state['stack']:
            raise SystemExit('the installed stack does not import '
                             f'({state["errors"]["stack"]}): run '
                             f'{sys.executable} -c "import rtdetr_mm"')
        stamp.write_text(package_stamp())
    link_for_mim(state['rtdetr_mm_location'])
    log(state['stack'])
    log(f'done in {time.time() - start:.0f} s')


if __name__ == '__main__':
    main()
