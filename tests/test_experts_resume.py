"A store killed (SIGKILL) in the middle of training resumes to exactly the files of an uninterrupted run."
import os, signal, subprocess, sys, time
from pathlib import Path
import torch
from conftest import ROOT
from mim4dd.data import load_dataset
from mim4dd.experts import ExpertStore, train_experts

KW = dict(n_experts=2, n_epochs=3, width=8, batch_size=32, seed=1)

def _cli(out):
    cmd = [sys.executable, str(Path(sys.executable).parent/'mim4dd_experts'), '--out', str(out), '--device', 'cpu', '--no-progress']
    cmd += [a for k, v in KW.items() for a in (f'--{k}', str(v))]
    env = dict(os.environ, OMP_NUM_THREADS='1', TQDM_DISABLE='1', PYTHONPATH=str(ROOT))
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

def test_kill_and_resume(tmp_path):
    out, store = tmp_path/'killed', ExpertStore(tmp_path/'killed')
    p = _cli(out)
    t0 = time.time()
    while not store.partial_path(1).exists() and p.poll() is None and time.time() - t0 < 120: time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL); p.wait()  # killed while expert 1 is being trained (expert 0 finished)
    assert store.ids() == [0] and store.partial_path(1).exists()
    p = _cli(out); so, se = p.communicate(timeout=300)
    assert p.returncode == 0, se[-3000:]
    assert store.ids() == [0, 1] and not store.partial_path(1).exists()
    assert not [f for f in os.listdir(out) if f.startswith('.')]  # no temporary files left
    # the uninterrupted run, in this process with one thread like the CLI's
    train, test = load_dataset('digits')
    n = torch.get_num_threads(); torch.set_num_threads(1)
    try: train_experts(train, test, tmp_path/'whole', n_experts=2, n_epochs=3, net_kw=dict(width=8), batch_size=32, seed=1)
    finally: torch.set_num_threads(n)
    whole = ExpertStore(tmp_path/'whole')
    for i in (0, 1):
        assert torch.equal(store.load(i).params, whole.load(i).params)
        assert store.manifest(i)['test_acc'] == whole.manifest(i)['test_acc']
