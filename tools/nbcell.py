"""Read and edit single notebook cells from the shell, keeping nbdev's JSON layout.

    python tools/nbcell.py list NB                      # id, type and first line of every cell
    python tools/nbcell.py show NB ID                   # one cell's source
    python tools/nbcell.py set NB ID < source.txt       # replace a cell's source (clears its outputs)
    python tools/nbcell.py insert NB AFTER_ID code|markdown < source.txt   # new cell after AFTER_ID ('-' for first)
    python tools/nbcell.py delete NB ID

Each command reads the notebook, changes one cell and writes it back at once, so edits to other cells by
other people in between are kept. Prints the id of a new cell.
"""
import json, secrets, sys
from pathlib import Path

def _load(p): return json.loads(Path(p).read_text())

def _save(p, nb):
    Path(p).write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')

def _find(nb, cid):
    for i, c in enumerate(nb['cells']):
        if c.get('id') == cid: return i
    sys.exit(f'no cell with id {cid!r}')

def _lines(text): return text.splitlines(keepends=True)

def _new(kind, src):
    c = dict(cell_type=kind, id=secrets.token_hex(4), metadata={}, source=_lines(src))
    if kind == 'code': c.update(execution_count=None, outputs=[])
    return c

def main(argv):
    if len(argv) < 2: sys.exit(__doc__)
    cmd, path, rest = argv[0], argv[1], argv[2:]
    nb = _load(path)
    if cmd == 'list':
        for c in nb['cells']:
            first = ''.join(c['source']).split('\n', 1)[0]
            print(c.get('id'), c['cell_type'][:4], first[:100])
        return
    if cmd == 'show':
        print(''.join(nb['cells'][_find(nb, rest[0])]['source'])); return
    if cmd == 'set':
        c = nb['cells'][_find(nb, rest[0])]
        c['source'] = _lines(sys.stdin.read().rstrip('\n'))
        if c['cell_type'] == 'code': c['outputs'], c['execution_count'] = [], None
    elif cmd == 'insert':
        at = 0 if rest[0] == '-' else _find(nb, rest[0]) + 1
        c = _new(rest[1], sys.stdin.read().rstrip('\n'))
        nb['cells'].insert(at, c); print(c['id'])
    elif cmd == 'delete':
        del nb['cells'][_find(nb, rest[0])]
    else: sys.exit(__doc__)
    _save(path, nb)

if __name__ == '__main__': main(sys.argv[1:])
