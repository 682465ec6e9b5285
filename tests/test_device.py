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
from test_mtt_exact import CASES, test_exact_equals_full as check_exact_equals_full

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

def _close_runs(a:DistilledSet, b:DistilledSet, x_init, rel=1e-3):
    "b's pixels are a's up to `rel` of how far a moved from its start; both on the CPU"
    assert a.x.device.type == b.x.device.type == 'cpu'
    moved = (a.x - x_init).abs().max()
    assert moved > 0
    assert (a.x - b.x).abs().max() <= rel * moved, f'{(a.x - b.x).abs().max():.3g} vs moved {moved:.3g}'
    if a.syn_lr is not None: assert abs(a.syn_lr - b.syn_lr) <= 1e-4 * a.syn_lr

@gpu
@pytest.mark.parametrize('base,mode,lam', [('mtt', 'full', 0.), ('mtt', 'full', 0.5), ('mtt', 'exact', 0.5), ('dm', 'full', 0.5)])
def test_gpu_run_matches_cpu(digits, no_tf32, base, mode, lam):
    train, _, store = digits
    cfg = DistillConfig(**{**SMALL, 'batch_real': 100 if base == 'mtt' else 32}, base=base, mode=mode, lam=lam)
    experts = store if base == 'mtt' else None
    cpu = Distiller(cfg, train, experts)
    a = cpu.run(progress=False)
    g = Distiller(cfg, train, experts, device='cuda')
    assert g.x_syn.is_cuda and g.base.net.parameters().__next__().is_cuda
    b = g.run(progress=False)
    assert torch.equal(cpu.x_init, g.x_init.cpu())  # the same initial images: draws are made on the CPU
    _close_runs(a, b, cpu.x_init)
    for ra, rb in zip(cpu.history, g.history):
        assert ra['loss_base'] == pytest.approx(rb['loss_base'], rel=1e-4)
        assert ra['loss_mim'] == pytest.approx(rb['loss_mim'], rel=1e-3, abs=1e-6)

@gpu
def test_gpu_checkpoint_resumes_on_cpu(digits, no_tf32, tmp_path):
    train, _, store = digits
    cfg = DistillConfig(**{**SMALL, 'iterations': 3}, lam=0.5)
    whole = Distiller(cfg, train, store).run(progress=False)
    Distiller(cfg, train, store, device='cuda').run(tmp_path, progress=False, stop_after=2)
    assert (tmp_path/'checkpoint.pt').is_file() and not (tmp_path/'distilled.pt').exists()
    d = Distiller(cfg, train, store, device='cpu')
    resumed = d.run(tmp_path, progress=False)
    assert d.iteration == 3 and len(d.history) == 3
    _close_runs(whole, resumed, d.x_init)
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
def test_captured_steps_match_eager(digits, no_tf32, capture):
    "On a GPU the replayed CUDA graphs, and inductor's compiled steps, give the eager exact mode's run there, to rounding"
    train, _, store = digits
    cfg = DistillConfig(**{**SMALL, 'iterations': 4}, mode='exact', lam=0.5)
    eager = Distiller(cfg, train, store, device='cuda')
    a = eager.run(progress=False)
    other = Distiller(replace(cfg, capture=capture), train, store, device='cuda')
    b = other.run(progress=False)
    m = other.base.matcher
    if capture == 'cuda_graphs': assert m._graphs.use_graphs and m._graphs.captured == len(m._graphs.slots) > 0
    else: assert isinstance(m._compiled, CompiledSteps)
    _close_runs(a, b, eager.x_init.cpu(), rel=1e-5 if capture == 'cuda_graphs' else 1e-4)  # compiled: other kernels
