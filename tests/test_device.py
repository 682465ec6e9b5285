"""Runs on a GPU draw what the same seed draws on the CPU, and differ from it only by rounding.

The first test runs everywhere; the others need CUDA and are skipped without it (CI has no GPU: run them on
purpose with `pytest tests/test_device.py` on a machine that has one).
"""
import pytest, torch
from dataclasses import replace
from mim4dd.data import load_dataset
from mim4dd.experts import ExpertStore, train_experts
from mim4dd.distill import DistillConfig, Distiller, DistilledSet
from mim4dd.mtt import CompiledSteps
from mim4dd.evaluate import evaluate_set
from torch._dynamo.utils import counters
from test_mtt_exact import CASES, _grads, test_exact_equals_full as check_exact_equals_full

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
SMALL = dict(dataset='digits', ipc=1, syn_steps=4, max_start_epoch=3, iterations=2, batch_real=100, checkpoint_every=1)

@pytest.fixture(scope='module')
def digits(tmp_path_factory):
    train, test = load_dataset('digits')
    store = ExpertStore(tmp_path_factory.mktemp('experts'))
    train_experts(train, test, store, n_experts=2, n_epochs=4, seed=0)
    return train, test, store

@pytest.fixture
def no_tf32():
    "float32 matmuls and convolutions in full precision on the GPU, so that CPU and GPU differ by rounding only"
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old

def test_device_cpu_is_the_default(digits):
    train, _, store = digits
    cfg = DistillConfig(**SMALL, lam=0.5)
    a = Distiller(cfg, train, store).run(progress=False)
    d = Distiller(cfg, train, store, device='cpu')
    assert d.device == torch.device('cpu') and d.x_syn.device.type == 'cpu'
    b = d.run(progress=False)
    assert torch.equal(a.x, b.x) and a.syn_lr == b.syn_lr

def _close_pixels(xa, xb, x_init, rel=1e-3):
    "xb is xa up to `rel` of how far xa moved from its start; all on the CPU"
    assert xa.device.type == xb.device.type == 'cpu'
    moved = (xa - x_init).abs().max()
    assert moved > 0
    assert (xa - xb).abs().max() <= rel * moved, f'{(xa - xb).abs().max():.3g} vs moved {moved:.3g}'

def _close_runs(a:DistilledSet, b:DistilledSet, x_init, rel=1e-3):
    "b's pixels are a's up to `rel` of how far a moved from its start, and so is its step size"
    _close_pixels(a.x, b.x, x_init, rel)
    if a.syn_lr is not None: assert abs(a.syn_lr - b.syn_lr) <= 1e-4 * a.syn_lr

def _close_losses(ha, hb):
    "Two runs' per-iteration losses agree: the same draws, rounding apart"
    assert len(ha) == len(hb)
    for ra, rb in zip(ha, hb):
        assert ra['loss_base'] == pytest.approx(rb['loss_base'], rel=1e-4)
        assert ra['loss_mim'] == pytest.approx(rb['loss_mim'], rel=1e-3, abs=1e-6)

# With the MIM term (lam > 0) float32 rounding does not stay rounding over iterations: perturbing the starting pixels by
# 1e-7 of their size moved the pixels by up to 2e-2 (iteration 2) and 4e-2 (iteration 3) of how far they moved, against
# 3e-6 after iteration 1 and 3e-7 throughout with lam = 0 (digits, SMALL, 6 perturbations, on the CPU). So pixels are
# compared after the first iteration, and over whole runs only without the term; the losses are compared throughout.

@gpu
@pytest.mark.parametrize('base,mode,lam', [('mtt', 'full', 0.), ('mtt', 'full', 0.5), ('mtt', 'exact', 0.5), ('dm', 'full', 0.5)])
def test_gpu_run_matches_cpu(digits, no_tf32, base, mode, lam):
    train, _, store = digits
    cfg = DistillConfig(**{**SMALL, 'batch_real': 100 if base == 'mtt' else 32}, base=base, mode=mode, lam=lam)
    experts = store if base == 'mtt' else None
    cpu, g = Distiller(cfg, train, experts), Distiller(cfg, train, experts, device='cuda')
    assert g.x_syn.is_cuda and g.base.net.parameters().__next__().is_cuda
    assert torch.equal(cpu.x_init, g.x_init.cpu())  # the same initial images: draws are made on the CPU
    cpu.step(); g.step()
    _close_pixels(cpu.x_syn.detach(), g.x_syn.detach().cpu(), cpu.x_init)
    a, b = cpu.run(progress=False), g.run(progress=False)  # the rest of the iterations
    if lam == 0: _close_runs(a, b, cpu.x_init)
    _close_losses(cpu.history, g.history)

@gpu
@pytest.mark.parametrize('lam', [0., 0.5])
def test_gpu_checkpoint_resumes_on_cpu(digits, no_tf32, tmp_path, lam):
    "A run checkpointed on a GPU resumes on the CPU: its pixels, step size, MIM state and history carry over"
    train, _, store = digits
    cfg = DistillConfig(**{**SMALL, 'iterations': 3}, lam=lam)
    cpu = Distiller(cfg, train, store)
    whole = cpu.run(progress=False)
    Distiller(cfg, train, store, device='cuda').run(tmp_path, progress=False, stop_after=2)
    assert (tmp_path/'checkpoint.pt').is_file() and not (tmp_path/'distilled.pt').exists()
    d = Distiller(cfg, train, store, device='cpu')
    resumed = d.run(tmp_path, progress=False)
    assert d.iteration == 3 and len(d.history) == 3
    _close_losses(cpu.history, d.history)  # iteration 3's losses, on the CPU, from the GPU's checkpoint
    if lam == 0: _close_runs(whole, resumed, d.x_init)
    assert DistilledSet.load(tmp_path/'distilled.pt').x.device.type == 'cpu'

@gpu
@pytest.mark.parametrize('arch,batch_syn,dsa,end,param,syn_steps', CASES)
def test_gpu_exact_equals_full_float64(arch, batch_syn, dsa, end, param, syn_steps):
    "test_mtt_exact's float64 checks, on the GPU"
    check_exact_equals_full(arch, batch_syn, dsa, end, param, syn_steps, device='cuda')

@gpu
def test_gpu_experts_and_evaluation(digits, tmp_path):
    train, test, _ = digits
    store = ExpertStore(tmp_path/'experts')
    train_experts(train, test, store, n_experts=1, n_epochs=3, seed=0, device='cuda')
    cpu = ExpertStore(tmp_path/'experts_cpu')
    train_experts(train, test, cpu, n_experts=1, n_epochs=3, seed=0)
    traj, m, m_cpu = store.load(0), store.manifest(0), cpu.manifest(0)
    assert traj[-1].device.type == 'cpu'
    assert torch.equal(traj[0], cpu.load(0)[0])  # the same initial network: built on the CPU, then moved
    assert abs(m['test_acc'][-1] - m_cpu['test_acc'][-1]) < 0.03, (m['test_acc'], m_cpu['test_acc'])
    x, y = train.sample_per_class(10, torch.Generator().manual_seed(0))
    res = evaluate_set(x, y, test, n_runs=1, n_epochs=50, n_evals=1, lr=0.01, device='cuda')
    assert res.acc_final_mean > 80

@gpu
def test_gpu_ensembles_equal_one_at_a_time(digits, no_tf32, tmp_path, monkeypatch):
    "On a GPU, 'auto' trains experts and evaluation networks side by side, each close to its one-at-a-time run"
    train, test, _ = digits
    groups = []
    train_group = ExpertStore.train_group
    monkeypatch.setattr(ExpertStore, 'train_group', lambda self, ids, *a, **k: groups.append(list(ids)) or train_group(self, ids, *a, **k))
    side, alone = ExpertStore(tmp_path/'side'), ExpertStore(tmp_path/'alone')
    train_experts(train, test, side, n_experts=3, n_epochs=2, seed=0, device='cuda')  # ensemble='auto'
    assert groups == [[0, 1, 2]]
    train_experts(train, test, alone, n_experts=3, n_epochs=2, seed=0, device='cuda', ensemble=False)
    for i in range(3):
        a, b = side.load(i), alone.load(i)
        assert torch.equal(a[0], b[0])  # the same initial network
        torch.testing.assert_close(a[-1], b[-1], rtol=1e-2, atol=1e-3 * b[-1].abs().max().item())
    x, y = train.sample_per_class(10, torch.Generator().manual_seed(0))
    kw = dict(n_runs=3, n_epochs=10, n_evals=1, lr=0.01, device='cuda', seed=1, return_nets=True)
    ens, seq = evaluate_set(x, y, test, **kw), evaluate_set(x, y, test, ensemble=False, **kw)
    assert (ens.ensemble, seq.ensemble) == (3, 1)
    assert ens.accs == pytest.approx(seq.accs, abs=1.0)  # points: a few test images may flip
    for a, b in zip(ens.nets, seq.nets):
        for pa, pb in zip(a.parameters(), b.parameters()): torch.testing.assert_close(pa, pb, rtol=1e-2, atol=1e-3)

def test_cuda_graphs_fall_back_to_eager_on_cpu(digits):
    "capture='cuda_graphs' on the CPU captures nothing and runs the exact mode's steps eagerly: the same pixels bit for bit"
    train, _, store = digits
    cfg = DistillConfig(**SMALL, mode='exact', lam=0.5)
    a = Distiller(cfg, train, store).run(progress=False)
    d = Distiller(replace(cfg, capture='cuda_graphs'), train, store)
    b = d.run(progress=False)
    assert d.base.matcher._graphs.captured == 0 and d.base.matcher._graphs.slots
    assert torch.equal(a.x, b.x) and a.syn_lr == b.syn_lr

@gpu
@pytest.mark.parametrize('capture', ['cuda_graphs', 'compile'])
@pytest.mark.parametrize('arch,batch_syn,dsa,end,param,syn_steps', CASES)
def test_captured_steps_equal_eager_float64(capture, arch, batch_syn, dsa, end, param, syn_steps):
    "On a GPU the replayed CUDA graphs, and inductor's compiled steps, give the eager exact mode's loss and gradients"
    if capture == 'compile' and arch == 'ConvNetBN': pytest.skip("capture='compile' refuses batch norm")
    eager = _grads('exact', arch, batch_syn, dsa, end, param, syn_steps, device='cuda')
    counters.clear()
    other = _grads('exact', arch, batch_syn, dsa, end, param, syn_steps, device='cuda', capture=capture)
    if capture == 'compile': assert counters['stats']['unique_graphs'] >= 2  # both steps compiled, not run eagerly
    assert abs(eager[0] - other[0]) <= 1e-12 * abs(eager[0])
    torch.testing.assert_close(other[1], eager[1], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(other[2], eager[2], rtol=1e-8, atol=1e-10 * eager[2].abs().max().item())
    torch.testing.assert_close(other[3], eager[3], rtol=1e-8, atol=0)

@gpu
@pytest.mark.parametrize('capture', ['cuda_graphs', 'compile'])
def test_captured_steps_in_a_run(digits, no_tf32, capture):
    "A float32 run on a GPU with the steps captured: graphs captured (or steps compiled), and the eager run's numbers"
    train, _, store = digits
    cfg = DistillConfig(**{**SMALL, 'iterations': 3}, mode='exact', lam=0.)
    eager, other = Distiller(cfg, train, store, device='cuda'), Distiller(replace(cfg, capture=capture), train, store, device='cuda')
    counters.clear()
    eager.step(); other.step()
    m = other.base.matcher
    if capture == 'cuda_graphs': assert m._graphs.use_graphs and m._graphs.captured == len(m._graphs.slots) > 0
    else: assert isinstance(m._compiled, CompiledSteps) and counters['stats']['unique_graphs'] >= 2
    # compiled kernels round differently: 2.5e-3 of the movement after one iteration on the CPU (graphs: eager's kernels)
    _close_pixels(eager.x_syn.detach().cpu(), other.x_syn.detach().cpu(), eager.x_init.cpu(), rel=1e-3 if capture == 'cuda_graphs' else 2e-2)
    eager.run(progress=False); other.run(progress=False)
    if capture == 'cuda_graphs': assert m._graphs.captured == len(m._graphs.slots)  # later steps replayed, none recaptured
    for ra, rb in zip(eager.history, other.history): assert ra['loss_base'] == pytest.approx(rb['loss_base'], rel=1e-2)
