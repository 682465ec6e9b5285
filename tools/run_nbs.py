"""Re-execute notebooks in place from a fresh shell so their outputs (the documentation) match the code.

    python tools/run_nbs.py [NOTEBOOK ...] [--flags "slow data"]

Every cell that runs has its old outputs cleared first, so a cell that now prints nothing ends with none.
Cells flagged with a test flag (`#| slow`, `#| gpu`, `#| data`) keep their stored outputs unless the flag
is passed; `#| eval: false` cells never run. Progress bars are switched off so outputs stay small.
"""
import argparse, os, sys
from pathlib import Path

os.environ.setdefault('TQDM_DISABLE', '1')
ROOT = Path(__file__).resolve().parents[1]

def _skip(flags):
    def skip(cell):
        if cell.cell_type != 'code': return True
        direc = getattr(cell, 'directives_', {}) or {}
        if direc.get('eval:', [''])[0].lower() == 'false': return True
        return bool(flags & set(direc.keys()))
    return skip

def run_one(path, skip_flags):
    from execnb.shell import CaptureShell
    from execnb.nbio import read_nb, write_nb
    from nbdev.process import NBProcessor
    nb = NBProcessor(path, process=True).nb  # parses directives into cell.directives_
    runs = [not _skip(skip_flags)(c) for c in nb.cells]
    for c, run in zip(nb.cells, runs):  # execnb keeps a cell's old outputs when it now prints nothing: clear them first
        if run: c['outputs'], c['execution_count'] = [], None
    shell = CaptureShell(path, mpl_format='png')
    from fastcore.xtras import working_directory
    with working_directory(path.parent):  # as nbdev's test_nb runs them
        shell.run_all(nb, exc_stop=True, preproc=_skip(skip_flags))
    raw = read_nb(path)
    assert len(raw.cells) == len(nb.cells), f'{path.name}: processing changed the number of cells'
    for c_raw, c, run in zip(raw.cells, nb.cells, runs):
        if run: c_raw['outputs'], c_raw['execution_count'] = c.get('outputs', []), c.get('execution_count')
    write_nb(raw, path)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('nbs', nargs='*')
    ap.add_argument('--flags', default='')
    a = ap.parse_args()
    from nbdev.config import get_config
    cfg = get_config(path=ROOT)
    skip = set(cfg.tst_flags.split()) - set(a.flags.split())
    paths = [Path(p).resolve() for p in a.nbs] or sorted(Path(cfg.nbs_path).glob('*.ipynb'))
    for p in paths:
        print('executing', p.name, flush=True)
        run_one(p, skip)

if __name__ == '__main__': sys.exit(main())
