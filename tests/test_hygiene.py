"Notebook hygiene: what must hold for every notebook, whoever wrote it."
import ast, json, re
import pytest
from conftest import NBS

NOTEBOOKS = sorted(NBS.glob('*.ipynb'))
CHAPTERS = [p for p in NOTEBOOKS if p.name != 'index.ipynb']
EXPERIMENTS = sorted(NBS.glob('experiments/*.ipynb'))  # not run by CI, but read like the chapters
ALL = NOTEBOOKS + EXPERIMENTS
MAX_BYTES = 256_000
DOWNLOAD = re.compile(r'download\s*=\s*True|urlretrieve|urlopen|requests\.get|download_url|download_and_extract|wget |curl ')
DIRECTIVE = re.compile(r'^\s*#\|\s*([\w:-]+)')

def cells(nb): return json.loads(nb.read_text())['cells']
def code_cells(nb): return [''.join(c['source']) for c in cells(nb) if c['cell_type'] == 'code']
def directives(src): return {m.group(1) for l in src.splitlines() if (m := DIRECTIVE.match(l))}
def body(src): return '\n'.join(l for l in src.splitlines() if not DIRECTIVE.match(l))

def is_import_cell(src):
    "True when any top-level statement of the cell is an import."
    try: tree = ast.parse(body(src))
    except SyntaxError: return False
    return any(isinstance(s, (ast.Import, ast.ImportFrom)) for s in tree.body)

def only_imports(src):
    tree = ast.parse(body(src))
    return all(isinstance(s, (ast.Import, ast.ImportFrom)) for s in tree.body)

@pytest.mark.parametrize('nb', CHAPTERS, ids=lambda p: str(p.relative_to(NBS).with_suffix('')))
def test_one_default_exp(nb):
    exps = [s for s in code_cells(nb) if 'default_exp' in directives(s)]
    assert len(exps) == 1, f'{nb.name}: {len(exps)} default_exp cells, want 1'

def test_default_exp_unique():
    names = [re.search(r'#\|\s*default_exp\s+(\S+)', s).group(1) for nb in CHAPTERS for s in code_cells(nb) if 'default_exp' in directives(s)]
    assert len(names) == len(set(names)), f'duplicate default_exp: {names}'

@pytest.mark.parametrize('nb', ALL, ids=lambda p: str(p.relative_to(NBS).with_suffix('')))
def test_size(nb): assert nb.stat().st_size < MAX_BYTES, f'{nb.name} is {nb.stat().st_size} bytes'

@pytest.mark.parametrize('nb', ALL, ids=lambda p: str(p.relative_to(NBS).with_suffix('')))
def test_import_cells_hold_imports_only(nb):
    bad = [s[:80] for s in code_cells(nb) if is_import_cell(s) and not only_imports(s)]
    assert not bad, f'{nb.name}: cells mixing imports with code: {bad}'

@pytest.mark.parametrize('nb', ALL, ids=lambda p: str(p.relative_to(NBS).with_suffix('')))
def test_no_downloads_outside_data_cells(nb):
    "Only `#| data` cells (or never-run ones) may download; exported definitions may hold download code."
    def runs_here(d): return not ({'data', 'eval:'} & d) and not any(x.startswith('export') for x in d)
    bad = [s[:80] for s in code_cells(nb) if runs_here(directives(s)) and DOWNLOAD.search(body(s))]
    assert not bad, f'{nb.name}: downloads in cells CI runs: {bad}'

@pytest.mark.parametrize('nb', NOTEBOOKS, ids=lambda p: str(p.relative_to(NBS).with_suffix('')))
def test_export_cells_hold_definitions(nb):
    "Exported cells define things; no data access, training or file writes at import time."
    allowed = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign,
               ast.AnnAssign, ast.If, ast.Try)
    for s in code_cells(nb):
        if not any(d.startswith('export') for d in directives(s)): continue
        for st in ast.parse(body(s)).body:
            ok = isinstance(st, allowed) or (isinstance(st, ast.Expr) and isinstance(st.value, ast.Constant))
            assert ok, f'{nb.name}: exported top-level statement `{ast.unparse(st)[:60]}` is not a definition'

@pytest.mark.parametrize('nb', EXPERIMENTS, ids=lambda p: p.stem)
def test_experiments_export_nothing(nb):
    "An experiments notebook reads bench/results and plots; it defines no part of the package"
    bad = [s[:60] for s in code_cells(nb) if any(d.startswith('export') or d == 'default_exp' for d in directives(s))]
    assert not bad, f'{nb.name}: exported cells in an experiments notebook: {bad}'
