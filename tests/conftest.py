import os
from pathlib import Path
import pytest, torch

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / 'nbs'
os.environ.setdefault('TQDM_DISABLE', '1')  # progress bars off in tests: outputs stay readable

@pytest.fixture
def one_thread():
    "Run the test on one torch thread (small CPU use beside other jobs), then restore the caller's count"
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try: yield
    finally: torch.set_num_threads(n)

@pytest.fixture(autouse=True)
def _threads_restored():
    "No test leaks a changed torch thread count into the tests after it"
    n = torch.get_num_threads()
    yield
    if torch.get_num_threads() != n: torch.set_num_threads(n)
