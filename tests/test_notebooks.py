"""Every chapter runs under pytest through nbdev's `test_nb`, one item per notebook, honouring `tst_flags`.

Only the chapters (`nbs/*.ipynb`) run: the `nbs/experiments/` notebooks plot committed benchmark records, assert
nothing and teach nothing the package depends on, so CI does not run them (`make nbs NB=nbs/experiments/X.ipynb` does)."""
import os, re
import pytest
from nbdev.config import get_config
from nbdev.test import test_nb as run_notebook  # aliased so pytest does not collect it
from conftest import ROOT, NBS

NOTEBOOKS = sorted(p for p in NBS.glob('*.ipynb') if not p.name.startswith('_'))
SKIP = get_config(path=ROOT).tst_flags.split()
FORCE = os.environ.get('MIM4DD_TEST_FLAGS', '').split()

def test_the_chapters_and_only_they_are_collected():
    "Every chapter that exports a module is run, and no experiments notebook is"
    modules = {p.stem for p in (ROOT / 'mim4dd').glob('*.py') if not p.stem.startswith('_')}
    chapters = {m.group(1) for p in NOTEBOOKS if (m := re.search(r'#\|\s*default_exp\s+([\w.]+)', p.read_text()))}
    assert modules <= chapters, f'modules without a collected chapter: {sorted(modules - chapters)}'
    assert all(p.parent == NBS for p in NOTEBOOKS) and not any('experiments' in p.parts for p in NOTEBOOKS)

@pytest.mark.parametrize('nb', NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook(nb):
    ok, secs = run_notebook(nb, skip_flags=SKIP, force_flags=FORCE, showerr=True)
    assert ok, f'{nb.name} failed (see the traceback above)'
