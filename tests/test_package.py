"""The package as a wheel: it ships its data, and installed outside the repository it finds
its label maps, the NTU missing-sample lists and the demo data, and trains the demo.

The wheel is built from a copy of the sources in a temporary folder (so building leaves no
``build/`` folder in the repository). The install test builds a venv and trains, so it runs
when ``SKELETONAGENT_TEST_WHEEL_INSTALL=1`` (``.ci/run`` sets it).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ('setup.py', 'README.md', 'LICENSE', 'requirements.txt', 'MANIFEST.in')
LABEL_MAPS = {'demo', 'demo_hard', 'finegym', 'k400', 'ntu120', 'ntu60', 'uav'}


def _env(**extra: str) -> dict:
    """The environment without PYTHONPATH (which could point the child at the repository)."""
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    env.update(OMP_NUM_THREADS='1', **extra)
    return env


@pytest.fixture(scope='module')
def wheel(tmp_path_factory) -> Path:
    """``pip wheel`` of a copy of the sources (no network, no build isolation)."""
    tmp = tmp_path_factory.mktemp('wheel')
    src = tmp / 'src'
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / 'skeletonagent', src / 'skeletonagent',
                    ignore=shutil.ignore_patterns('__pycache__', '*.pyc', '*.egg-info'))
    proc = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps',
                           '--no-build-isolation', '--no-index', '-q', '-w', str(tmp / 'dist'),
                           str(src)], capture_output=True, text=True, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheels = list((tmp / 'dist').glob('skeletonagent-*.whl'))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_ships_the_package_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    data = {n for n in names if n.startswith('skeletonagent/data/') and not n.endswith('.py')}
    assert data == {f'skeletonagent/data/label_map/{m}.txt' for m in LABEL_MAPS} | {
        'skeletonagent/data/ntu_missing/ntu60_missing.txt',
        'skeletonagent/data/ntu_missing/ntu120_missing.txt'}
    for name in data:                                  # the files themselves, not stubs
        assert zipfile.ZipFile(wheel).read(name) == (ROOT / name).read_bytes(), name
    assert 'skeletonagent/datasets/synthetic.py' in names
    template = 'skeletonagent/evaluation/report/template.html'     # the report's page
    assert zipfile.ZipFile(wheel).read(template) == (ROOT / template).read_bytes()
    assert not any(n.startswith(('tools/', 'tests/', 'configs/')) for n in names)


_LOOKUPS = '''
import json, sys
import skeletonagent
from skeletonagent.data import package_data
from skeletonagent.datasets import DEMO_CLASSES, PoseDataset, load_label_map
from skeletonagent.datasets.prep.ntu import (default_missing_file, missing_list_file,
                                            read_missing_list)
print(json.dumps(dict(
    module=skeletonagent.__file__, label_map_file=str(package_data('label_map', 'ntu60.txt')),
    ntu60=load_label_map('ntu60'), demo=load_label_map('demo'),
    missing120=len(read_missing_list(default_missing_file())),
    missing60=len(read_missing_list(missing_list_file('ntu60'))),
    demo_classes=list(DEMO_CLASSES))))
'''

# Runs the repository's tools/train.py (copied out of the repository, so its sys.path line
# points at the run folder, not at the sources) and says which skeletonagent it imported.
_TRAIN = '''
import runpy, sys
sys.argv = ['tools/train.py', *sys.argv[1:]]
code = 0
try:
    runpy.run_path('tools/train.py', run_name='__main__')
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
print('SKELETONAGENT_MODULE', sys.modules['skeletonagent'].__file__)
sys.exit(code)
'''


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get('SKELETONAGENT_TEST_WHEEL_INSTALL'),
                    reason='builds a venv and trains from the installed wheel; set '
                           'SKELETONAGENT_TEST_WHEEL_INSTALL=1 (.ci/run does)')
def test_wheel_installed_outside_the_repository_trains_the_demo(wheel, tmp_path):
    venv = tmp_path / 'venv'
    # --system-site-packages: torch and the other dependencies come from the host; the
    # package itself is imported from the venv's site-packages, which come first.
    subprocess.run([sys.executable, '-m', 'venv', '--system-site-packages', str(venv)],
                   check=True, timeout=300)
    python = venv / 'bin' / 'python'
    proc = subprocess.run([str(python), '-m', 'pip', 'install', '-q', '--no-deps',
                           '--no-index', str(wheel)], capture_output=True, text=True,
                          env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = tmp_path / 'run'
    (run / 'tools').mkdir(parents=True)
    (run / 'configs' / 'demo').mkdir(parents=True)
    shutil.copy2(ROOT / 'tools' / 'train.py', run / 'tools' / 'train.py')
    shutil.copy2(ROOT / 'configs' / 'demo' / 'j.py', run / 'configs' / 'demo' / 'j.py')

    proc = subprocess.run([str(python), '-c', _LOOKUPS], capture_output=True, text=True,
                          cwd=run, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    site = str(venv.resolve())
    assert Path(found['module']).resolve().is_relative_to(site), found['module']
    assert Path(found['label_map_file']).resolve().is_relative_to(site)
    assert len(found['ntu60']) == 60 and found['ntu60'][0] == 'drink water'
    assert found['demo'] == found['demo_classes']
    assert (found['missing60'], found['missing120']) == (302, 535)

    proc = subprocess.run(
        [str(python), '-c', _TRAIN, 'configs/demo/j.py', '--cfg-options', 'total_epochs=1',
         'work_dir=work', 'data.workers_per_gpu=0', 'data.videos_per_gpu=8',
         'data.train.demo_cfg.num_train_per_class=2', 'data.train.demo_cfg.num_val_per_class=1',
         'data.train.demo_cfg.num_test_per_class=1'],
        capture_output=True, text=True, cwd=run, env=_env(), timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    module = proc.stdout.split('SKELETONAGENT_MODULE', 1)[1].split()[0]
    assert Path(module).resolve().is_relative_to(site), module
    assert (run / 'data' / 'demo' / 'demo_3danno.pkl').is_file()   # generated at the demo path
    assert list((run / 'work').glob('*.pth')), sorted(p.name for p in (run / 'work').iterdir())
