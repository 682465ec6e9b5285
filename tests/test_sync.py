"The committed package equals what nbdev_export makes of the notebooks, and the notebooks are clean."
import filecmp, shutil, subprocess, sys
from pathlib import Path
from conftest import ROOT

BIN = Path(sys.executable).parent

def _copy_project(tmp):
    for name in ('nbs', 'mim4dd'): shutil.copytree(ROOT / name, tmp / name, ignore=shutil.ignore_patterns('__pycache__', '.ipynb_checkpoints'))
    for name in ('settings.ini', 'setup.py'): shutil.copy(ROOT / name, tmp / name)

def _diff(a, b, pattern):
    fa = sorted(p.relative_to(a) for p in a.rglob(pattern) if '.ipynb_checkpoints' not in p.parts)
    fb = sorted(p.relative_to(b) for p in b.rglob(pattern) if '.ipynb_checkpoints' not in p.parts)
    changed = [str(p) for p in fa if p in fb and not filecmp.cmp(a / p, b / p, shallow=False)]
    return sorted(set(map(str, fa)) ^ set(map(str, fb))) + changed

def test_export_and_clean_change_nothing(tmp_path):
    _copy_project(tmp_path)
    for cmd in ('nbdev_export', 'nbdev_clean'):
        r = subprocess.run([str(BIN / cmd)], cwd=tmp_path, capture_output=True, text=True)
        assert r.returncode == 0, f'{cmd} failed: {r.stderr[-2000:]}'
    changed = _diff(ROOT / 'mim4dd', tmp_path / 'mim4dd', '*.py') + _diff(ROOT / 'nbs', tmp_path / 'nbs', '*.ipynb')
    assert not changed, f'run `make export` and commit: these would change: {changed}'
