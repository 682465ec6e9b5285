"""The foundations are cheap to import: `import mim4dd.mim` (and the loop, `mim4dd.distill`) costs well under a second
beyond `import torch`, and pulls in none of the heavy libraries that only a reader, a figure or an experiment needs.

Measured in fresh subprocesses (median of 3), as the time of the import after torch is already imported. Measured here
on 2 shared CPU cores: torch ~2 s; then mim4dd.mim 0.1 s and mim4dd.distill 0.3 s (mim4dd.mim was 3 s before the
readers imported scikit-learn and scipy lazily). The 1 s limit leaves room for a loaded machine; the module check
below is the exact guard, the time the coarse one.
"""
import json, statistics, subprocess, sys
import pytest
from conftest import ROOT

HEAVY = ('scipy', 'sklearn', 'pandas', 'matplotlib', 'seaborn', 'IPython', 'ipywidgets', 'torchvision')
CODE = """import json, sys, time
import torch
t = time.perf_counter()
import {mod}
print(json.dumps(dict(seconds=time.perf_counter() - t, heavy=[m for m in {heavy!r} if m in sys.modules])))"""

def _measure(mod):
    "Seconds `import mod` takes in a fresh interpreter that has already imported torch, and the heavy modules it loaded"
    r = subprocess.run([sys.executable, '-c', CODE.format(mod=mod, heavy=HEAVY)], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])

@pytest.mark.parametrize('mod', ['mim4dd.mim', 'mim4dd.distill'])
def test_import_beyond_torch_is_cheap(mod):
    runs = [_measure(mod) for _ in range(3)]
    assert runs[0]['heavy'] == [], f"{mod} imports {runs[0]['heavy']}: import them where they are used (see `python -X importtime -c 'import {mod}'`)"
    secs = statistics.median(r['seconds'] for r in runs)
    assert secs < 1.0, f'import {mod} took {secs:.2f} s beyond torch (runs: {[round(r["seconds"], 2) for r in runs]})'
