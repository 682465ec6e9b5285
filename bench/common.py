"Shared helpers for benchmark scripts: every record carries the machine, the commit and the config."
import json, os, platform, subprocess, time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / 'results'

def commit():
    "Short hash of HEAD, with '+dirty' when tracked files other than bench/results/ differ from it; 'unknown' outside git; $MIM4DD_COMMIT wins."
    if os.environ.get('MIM4DD_COMMIT'): return os.environ['MIM4DD_COMMIT']  # a copy of the tree without .git (a GPU box)
    root = Path(__file__).resolve().parents[1]
    try:
        h = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        status = subprocess.run(['git', 'status', '--porcelain', '--untracked-files=no'], cwd=root, capture_output=True, text=True).stdout
        dirty = [l for l in status.splitlines() if l.strip() and not l[3:].startswith('bench/results/')]  # records appended meanwhile are not code
        return h + ('+dirty' if dirty else '')
    except Exception: return 'unknown'

def device_name(device='cpu'):
    "A human-readable name of the device the benchmark ran on."
    import torch
    if str(device).startswith('cuda') and torch.cuda.is_available(): return torch.cuda.get_device_name(0)
    return f'cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)'

STARTED_AT = commit()  # the code this process imported: later commits or edits must not relabel its records

def write_record(name, **record):
    "Append one JSON record to bench/results/<name>.jsonl, adding commit (at process start), time and torch version."
    import torch
    RESULTS.mkdir(parents=True, exist_ok=True)
    rec = dict(record, commit=record.get('commit', STARTED_AT), torch=torch.__version__,
               time=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()))
    with open(RESULTS / f'{name}.jsonl', 'a') as f: f.write(json.dumps(rec) + '\n')
    return rec
