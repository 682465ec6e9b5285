import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / 'nbs'
os.environ.setdefault('TQDM_DISABLE', '1')  # progress bars off in tests: outputs stay readable
