"Experts trained in parallel by `torchrun` (2 CPU processes, gloo): every id written exactly once, same files as serially."
import json, os, subprocess, sys
from pathlib import Path
import torch
from conftest import ROOT
from mim4dd.data import load_dataset
from mim4dd.experts import ExpertStore, train_experts
from mim4dd.spec import RunSpec

ARGS = dict(n_experts=5, n_epochs=2, width=8, batch_size=128, seed=3)

def _torchrun(out, logs, **kw):
    "Run `mim4dd_experts` on 2 ranks; return each rank's JSON summary line, read from that rank's own stdout file"
    # torchrun merges its workers' stdout into one stream, where two ranks' lines can interleave mid-line
    # (this test failed 1 run in 4 that way); `--redirects 1` gives each rank its own stdout file instead.
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
           '--log-dir', str(logs), '--redirects', '1',
           str(Path(sys.executable).parent/'mim4dd_experts'), '--out', str(out), '--device', 'cpu', '--no-progress']
    cmd += [a for k, v in kw.items() for a in (f'--{k}', str(v))]
    env = dict(os.environ, OMP_NUM_THREADS='1', TQDM_DISABLE='1', PYTHONPATH=str(ROOT))
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=out.parent)
    files = sorted(logs.rglob('stdout.log'))  # logs/<run id>/attempt_0/<local rank>/stdout.log
    stdouts = {int(f.parent.name): f.read_text() for f in files}
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:] + str(stdouts)[-3000:]
    assert sorted(stdouts) == [0, 1], files
    return {rank: [json.loads(l) for l in s.splitlines() if l.startswith('{')] for rank, s in stdouts.items()}

def test_torchrun_two_ranks(tmp_path):
    out = tmp_path/'store'
    lines = _torchrun(out, tmp_path/'logs', **ARGS)
    assert [len(ls) for ls in lines.values()] == [1, 1], lines  # one summary line per rank
    assert all(ls[0]['rank'] == r and ls[0]['world_size'] == 2 for r, ls in lines.items())
    by_rank = {r: ls[0]['written'] for r, ls in lines.items()}
    written = [i for ids in by_rank.values() for i in ids]
    assert sorted(written) == list(range(5))  # every expert written, none twice
    assert by_rank == {0: [0, 2, 4], 1: [1, 3]}
    store = ExpertStore(out)
    assert store.ids() == list(range(5))
    for i in store.ids(): assert store.manifest(i)['written_by'] == dict(rank=i % 2, world_size=2)
    assert sorted(p.name for p in out.iterdir()) == [f'expert_{i:05d}.pt' for i in range(5)] + ['spec.json']  # no partial or tmp left
    spec = RunSpec.load(out/'spec.json')  # the resolved spec the store was trained for, written once (rank 0)
    assert (spec.experts.n_experts, spec.experts.train_epochs, spec.experts.batch_size, spec.experts.seed) == (5, 2, 128, 3)
    assert spec.experts.store == str(out.resolve())
    # the same expert as a serial run in this process (its seed depends on its id only); a rerun finds nothing to do
    train, test = load_dataset('digits')
    kw = dict(n_epochs=2, net_kw=dict(width=8), batch_size=128, seed=3)
    assert [train_experts(train, test, out, n_experts=5, rank=r, world_size=2, **kw) for r in (0, 1)] == [[], []]
    n = torch.get_num_threads(); torch.set_num_threads(1)
    try: train_experts(train, test, tmp_path/'serial', n_experts=2, **kw)
    finally: torch.set_num_threads(n)
    serial = ExpertStore(tmp_path/'serial')
    assert serial.manifest(1)['written_by'] == dict(rank=0, world_size=1)
    torch.testing.assert_close(serial.load(1).params, store.load(1).params, rtol=1e-5, atol=1e-6)
