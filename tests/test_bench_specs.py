"The benchmark scripts build their runs as run specs (chapter 21), and pair records written by two processes of one commit."
import json, sys
import torch
from dataclasses import asdict
import pytest
from conftest import ROOT
sys.path.insert(0, str(ROOT))
import bench.common
from bench.evidence import BUDGET, budget_spec, distill_kw, pair_records
from mim4dd.distill import DistillConfig
from mim4dd.spec import RunSpec

@pytest.mark.parametrize('name,ipc,base', [(n, i, b) for n, bud in BUDGET.items() for b in ('mtt', 'dm')
                                           for i in (bud['mtt'] if b == 'mtt' else bud['dm_iterations'])])
def test_budget_spec_is_the_budget(name, ipc, base):
    spec = budget_spec(name, ipc, base, 'w', seed=2, lam=0.3, critic='infonce')
    cfg = spec.distill_config()
    want = DistillConfig(**distill_kw(name, ipc, base), seed=2, lam=0.3, critic='infonce')
    got, want = asdict(cfg), asdict(want)
    if base == 'dm': want['momentum'] = 0.5  # DM's default, written out by the spec
    assert got == want
    assert (spec.experts.n_experts, spec.experts.train_epochs) == (BUDGET[name]['n_experts'], BUDGET[name]['train_epochs'])
    assert spec.experts.store.endswith(f'w/{name}/experts')
    assert RunSpec.from_dict(spec.to_dict()) == spec  # what a record holds reads back as the same spec

def _rec(method, per_seed, commit='abc1234', **kw):
    return dict(dataset='mnist', ipc=1, method=method, per_seed=per_seed, seeds=[0, 1, 2], protocol='mtt(epochs=300)',
                experts='2 x 3 epochs', commit=commit, time='t', lam=0.01 if '+' in method else None, **kw)

def test_pair_records(tmp_path, monkeypatch):
    monkeypatch.setattr(bench.common, 'RESULTS', tmp_path)
    path = tmp_path/'ev.jsonl'
    rows = [_rec('mtt', [50., 60., 70.], commit='old'), _rec('mtt', [10., 20., 30.]), _rec('mtt+mim', [11., 19., 32.])]
    path.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    r = pair_records('mnist', 1, 'mtt', 'ev', results=tmp_path)
    assert r['per_seed'] == [1., -1., 2.] and r['n_pos'] == 2 and r['commit'] == 'abc1234' and 'paired_by' in r
    assert json.loads((tmp_path/'ev_paired.jsonl').read_text()) == r
    with path.open('a') as f: f.write(json.dumps(_rec('mtt+mim', [1., 2., 3.], commit='def5678')) + '\n')
    with pytest.raises(SystemExit, match='differ in commit'): pair_records('mnist', 1, 'mtt', 'ev', results=tmp_path)
    with pytest.raises(SystemExit, match='no dm and dm\\+mim records'): pair_records('mnist', 1, 'dm', 'ev', results=tmp_path)
    # two processes of one commit whose runs differ in more than the MIM term (here the unroll mode) are not a pair
    spec = lambda mode, lam: {'mtt': {'mode': mode}, 'mim': {'lam': lam}}
    with path.open('a') as f:
        for rec in (_rec('mtt', [1., 2., 3.], spec=spec('exact', 0.)), _rec('mtt+mim', [2., 2., 3.], spec=spec('exact', .01))):
            f.write(json.dumps(rec) + '\n')
    assert pair_records('mnist', 1, 'mtt', 'ev', results=tmp_path)['per_seed'] == [1., 0., 0.]
    with path.open('a') as f: f.write(json.dumps(_rec('mtt+mim', [2., 2., 3.], spec=spec('full', .01))) + '\n')
    with pytest.raises(SystemExit, match="differ in their spec's 'mtt' section"): pair_records('mnist', 1, 'mtt', 'ev', results=tmp_path)

def _point(seed, it, acc, commit='abc1234', **kw):
    return {**dict(dataset='cifar10', ipc=1, seed=seed, iteration=it, acc=acc, syn_lr=0.01, loss_mean=None if it == 0 else 0.7,
                   distill_seconds=10. * it, eval={'n_runs': 3}, protocol='mtt(epochs=300)', experts='2 x 3 epochs',
                   overrides=['eval.runs=3'], note='', spec={}, device='cpu', commit=commit, time='t'), **kw}

def test_curve_summary(tmp_path, monkeypatch):
    "mtt_curve --summarise: one record per iteration every seed reached, each seed's newest curve, one clean commit"
    from bench.mtt_curve import summarise
    monkeypatch.setattr(bench.common, 'RESULTS', tmp_path)
    path = tmp_path/'curve.jsonl'
    rows = [_point(0, 0, 99.), _point(0, 100, 99.),  # seed 0's older run: replaced by its newer one
            _point(0, 0, 15.), _point(1, 0, 17.), _point(0, 100, 25.), _point(1, 100, 27.), _point(0, 200, 28.),
            _point(2, 0, 16., overrides=[])]  # other settings: not this summary's
    path.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    recs = summarise('cifar10', 1, 'curve', ['eval.runs=3'], results=tmp_path)
    assert [r['iteration'] for r in recs] == [0, 100]  # seed 1 has not reached 200
    assert recs[1]['per_seed'] == [25., 27.] and recs[1]['acc_mean'] == pytest.approx(26.) and recs[1]['seeds'] == [0, 1]
    assert recs[1]['acc_std'] == pytest.approx(2 ** 0.5) and recs[1]['distill_seconds'] == [1000., 1000.]
    assert len((tmp_path/'curve_summary.jsonl').read_text().splitlines()) == 2
    with path.open('a') as f: f.write(json.dumps(_point(1, 200, 30., commit='abc1234+dirty')) + '\n')
    with pytest.raises(SystemExit, match='one clean commit'): summarise('cifar10', 1, 'curve', ['eval.runs=3'], results=tmp_path)
    with pytest.raises(SystemExit, match='no curve'): summarise('mnist', 1, 'curve', results=tmp_path)

def test_full_data_resumes(tmp_path, monkeypatch):
    "bench/full_data.py: a record per epoch; killed after an epoch, the same command resumes to the same network"
    from bench import full_data
    monkeypatch.setattr(bench.common, 'RESULTS', tmp_path/'results')
    whole = full_data.main(['--dataset', 'digits', '--epochs', '2', '--work', str(tmp_path/'a')])
    recs = [json.loads(l) for l in (tmp_path/'results'/'full_data.jsonl').read_text().splitlines()]
    assert [r['epoch'] for r in recs] == [1, 2] and recs[-1]['test_acc'] == pytest.approx(100 * whole['test_acc'][-1])
    assert recs[-1]['test_acc'] > 80  # the digits ConvNet after two epochs
    real = bench.common.write_record
    def crash(name, **r):
        real(name, **r)
        raise KeyboardInterrupt  # killed after the first epoch's checkpoint
    monkeypatch.setattr(full_data, 'write_record', crash)
    with pytest.raises(KeyboardInterrupt): full_data.main(['--dataset', 'digits', '--epochs', '2', '--work', str(tmp_path/'b')])
    monkeypatch.setattr(full_data, 'write_record', real)
    again = full_data.main(['--dataset', 'digits', '--epochs', '2', '--work', str(tmp_path/'b')])
    assert again['test_acc'] == whole['test_acc']
    from mim4dd.experts import ExpertStore
    assert torch.equal(ExpertStore(tmp_path/'a'/'digits').load(0).params, ExpertStore(tmp_path/'b'/'digits').load(0).params)

def test_reference_buffer_and_args():
    "bench/reference_mtt.py: our experts in the reference's replay-buffer layout, parameter by parameter; settings it has no flag for are refused"
    from bench.reference_mtt import write_buffer, reference_args
    from mim4dd.mtt import MTTConfig
    from mim4dd.nets import ConvNet, param_names, param_shapes
    net = ConvNet(3, 10, 32)
    n = sum(p.numel() for p in net.parameters())
    trajs = [[torch.randn(n) for _ in range(3)] for _ in range(2)]
    class Store:
        def ids(self): return [0, 1]
        def load(self, i): return trajs[i]
    names_shapes = list(zip(param_names(net), param_shapes(net)))
    import tempfile, pathlib
    with tempfile.TemporaryDirectory() as d:
        path = pathlib.Path(d)/'b'/'replay_buffer_0.pt'
        assert write_buffer(Store(), names_shapes, net, path) == 2
        buf = torch.load(path)
        assert [[tuple(p.shape) for p in ep] for ep in buf[1]][0] == [tuple(p.shape) for p in net.parameters()]
        assert all(torch.equal(torch.cat([p.reshape(-1) for p in buf[i][e]]), trajs[i][e]) for i in range(2) for e in range(3))
        with pytest.raises(SystemExit, match='reference ConvNet has parameters'): write_buffer(Store(), names_shapes, ConvNet(3, 10, 32, width=64), path)
    args = reference_args(MTTConfig(syn_steps=50, expert_epochs=2, max_start_epoch=1, lr_img=100., lr_lr=1e-7, syn_lr_init=0.01), 200, 'buf')
    flags = dict(zip(args[::2], args[1::2]))
    assert flags['--syn_steps'] == '50' and flags['--max_start_epoch'] == '1' and flags['--lr_teacher'] == '0.01' and flags['--Iteration'] == '200'
    with pytest.raises(SystemExit, match='without ZCA'): reference_args(MTTConfig(zca=True), 10, 'buf')

def test_reference_compare(tmp_path, monkeypatch):
    "bench/reference_mtt.py --compare: each seed's newest reference run against our curve's point at the same iteration"
    from bench.reference_mtt import compare
    monkeypatch.setattr(bench.common, 'RESULTS', tmp_path)
    ref = [dict(seed=s, iterations=200, overrides=['eval.runs=3'], acc=a, loss_mean_by_100=[0.9, l], commit='abc1234')
           for s, a, l in ((0, 28., 0.75), (1, 29., 0.76))]
    ours = [_point(s, 200, a, iterations_total=200, loss_mean=l, mtt={'syn_lr_param': 'raw'}) for s, a, l in ((0, 27., 0.8), (1, 28.5, 0.78))]
    (tmp_path/'reference_mtt.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in ref))
    (tmp_path/'mtt_curve.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in ours))
    acc, loss = compare(200, ['eval.runs=3'], results=tmp_path)
    assert acc['seeds'] == [0, 1] and acc['diff_mean'] == pytest.approx(-0.75) and acc['reference'] == [28., 29.]
    assert loss['metric'] == 'loss_last100' and loss['diff_mean'] == pytest.approx(0.035)
    with pytest.raises(SystemExit, match='no seed'): compare(100, ['eval.runs=3'], results=tmp_path)

def test_profile_unroll_layouts():
    "bench/profile_unroll.py's --layout adds every loop again in channels-last order, and plain_cl; each runs"
    from bench.profile_unroll import setting
    fs = setting('digits', 1, 2, torch.device('cpu'), ('bf16',), exact=True, channels_last=True)
    assert set(fs) == {'plain', 'full', 'full_bf16', 'exact', 'exact_bf16',
                       'plain_cl', 'full_cl', 'full_bf16_cl', 'exact_cl', 'exact_bf16_cl'}
    for f in fs.values(): f()
