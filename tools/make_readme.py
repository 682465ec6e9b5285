"""Generate README.md from nbs/index.ipynb (Quarto, which nbdev_readme needs, is not available here).

    python tools/make_readme.py          # write README.md
    python tools/make_readme.py --check  # exit 1 if README.md is out of date

Markdown cells are copied; code cells are shown as Python blocks with their stored text outputs;
`#| hide` cells are dropped and directive lines removed. The notebook's outputs are the ones stored in
it (run `make nbs NB=nbs/index.ipynb` to refresh them), so this script needs no kernel.
"""
import json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIRECTIVE = re.compile(r'^\s*#\|\s*(.*)$')
HEADER = '<!-- Generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, not this file. -->\n\n'

def _src(cell): return ''.join(cell['source'])

def _text_output(out):
    if out['output_type'] == 'stream': return ''.join(out['text'])
    if out['output_type'] in ('execute_result', 'display_data'):
        data = out.get('data', {})
        if 'text/markdown' in data: return None, ''.join(data['text/markdown'])
        return ''.join(data.get('text/plain', ''))
    return ''

def render(nb):
    parts = []
    for cell in nb['cells']:
        src = _src(cell)
        if cell['cell_type'] == 'markdown': parts.append(src.strip()); continue
        if cell['cell_type'] != 'code': continue
        direcs = [m.group(1).strip() for l in src.splitlines() if (m := DIRECTIVE.match(l))]
        if any(d.startswith(('hide', 'default_exp')) for d in direcs): continue
        code = '\n'.join(l for l in src.splitlines() if not DIRECTIVE.match(l)).strip()
        if code and not any(d.startswith('echo: false') for d in direcs): parts.append(f'```python\n{code}\n```')
        for out in cell.get('outputs', []):
            t = _text_output(out)
            if isinstance(t, tuple): parts.append(t[1].strip())
            elif t and t.strip(): parts.append(f'```\n{t.rstrip()}\n```')
    return HEADER + '\n\n'.join(p for p in parts if p) + '\n'

def main(argv):
    text = render(json.loads((ROOT / 'nbs' / 'index.ipynb').read_text()))
    readme = ROOT / 'README.md'
    if '--check' in argv:
        if not readme.exists() or readme.read_text() != text:
            print('README.md is out of date: run `make readme`'); return 1
        return 0
    readme.write_text(text)
    return 0

if __name__ == '__main__': sys.exit(main(sys.argv[1:]))
