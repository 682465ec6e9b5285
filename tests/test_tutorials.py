"The tutorials in nbs/tutorials/ run under pytest through nbdev's `test_nb`, one item per notebook, as the chapters do."
import os
import pytest
from nbdev.config import get_config
from nbdev.test import test_nb as run_notebook  # aliased so pytest does not collect it
from conftest import ROOT, NBS

TUTORIALS = sorted(p for p in (NBS/'tutorials').glob('*.ipynb') if not p.name.startswith('_'))
SKIP = get_config(path=ROOT).tst_flags.split()
FORCE = os.environ.get('MIM4DD_TEST_FLAGS', '').split()

def test_there_are_tutorials(): assert {p.stem for p in TUTORIALS} >= {'quick_start', 'own_images'}

@pytest.mark.parametrize('nb', TUTORIALS, ids=lambda p: p.stem)
def test_tutorial(nb):
    ok, secs = run_notebook(nb, skip_flags=SKIP, force_flags=FORCE, showerr=True)
    assert ok, f'{nb.name} failed (see the traceback above)'
