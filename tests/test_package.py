"What is true of the installed package, independent of any one notebook."
import subprocess, sys, json
from conftest import ROOT

def _py(code, **kw):
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=kw.get('cwd', ROOT))

def test_import_is_cheap_and_needs_no_nbdev(tmp_path):
    "`import mim4dd` works with nbdev unavailable and pulls in neither torch nor torchvision."
    r = _py("import sys; sys.modules['nbdev'] = None; import mim4dd; "
            "print(mim4dd.__version__, 'torch' in sys.modules, 'torchvision' in sys.modules)", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    version, torch_loaded, tv_loaded = r.stdout.split()
    assert version.count('.') == 2 and torch_loaded == 'False' and tv_loaded == 'False'

def test_every_module_imports_without_nbdev(tmp_path):
    mods = sorted(p.stem for p in (ROOT / 'mim4dd').glob('*.py') if not p.stem.startswith('_'))
    code = "import sys, importlib; sys.modules['nbdev'] = None\n" + ''.join(f"importlib.import_module('mim4dd.{m}')\n" for m in mods)
    r = _py(code, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]

def test_torchvision_imports_through_the_shim(tmp_path):
    r = _py("from mim4dd.vision import import_torchvision, ensure_vision_ops\n"
            "tv = import_torchvision(); a = ensure_vision_ops(); b = ensure_vision_ops()\n"
            "assert a == b; print(tv.models.resnet18(num_classes=3).fc.out_features)", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == '3'

def test_version_matches_settings():
    import configparser, mim4dd
    cfg = configparser.ConfigParser(); cfg.read(ROOT / 'settings.ini')
    assert mim4dd.__version__ == cfg['DEFAULT']['version']

def test_readme_is_generated_from_index():
    r = subprocess.run([sys.executable, str(ROOT / 'tools' / 'make_readme.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
