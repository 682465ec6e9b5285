"Every notebook runs under pytest through nbdev's `test_nb`, one item per notebook, honouring `tst_flags`."
import os
import pytest
from nbdev.config import get_config
from nbdev.test import test_nb as run_notebook  # aliased so pytest does not collect it
from conftest import ROOT, NBS

NOTEBOOKS = sorted(p for p in NBS.glob('*.ipynb') if not p.name.startswith('_'))
SKIP = get_config(path=ROOT).tst_flags.split()
FORCE = os.environ.get('MIM4DD_TEST_FLAGS', '').split()

def test_there_are_notebooks(): assert len(NOTEBOOKS) >= 2

@pytest.mark.parametrize('nb', NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook(nb):
    ok, secs = run_notebook(nb, skip_flags=SKIP, force_flags=FORCE, showerr=True)
    assert ok, f'{nb.name} failed (see the traceback above)'
