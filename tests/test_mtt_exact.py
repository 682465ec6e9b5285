"The exact (constant-memory) MTT gradient equals the full unroll's in float64, across the options that touch it."
import pytest, torch
import torch.nn.functional as F
from mim4dd.nets import get_network, flat_params, functional_forward
from mim4dd.augment import DSA
from mim4dd.mtt import TrajectoryMatcher, MTTConfig, StepSize, Segment

def _grads(mode, arch, batch_syn, dsa, end, param, syn_steps, seed=0, device='cpu', capture='eager'):
    g = torch.Generator().manual_seed(seed)
    net = get_network(arch, 3, 5, 8, seed=seed, width=6, depth=2).double().to(device)
    theta0 = flat_params(net)
    traj = torch.stack([theta0, theta0 + 0.05 * torch.randn(theta0.shape, generator=g, dtype=torch.float64).to(device)])
    x = torch.randn(10, 3, 8, 8, generator=g, dtype=torch.float64).to(device).requires_grad_()
    y = (torch.arange(10) % 5).to(device)
    s = StepSize(0.05, param, dtype=torch.float64, device=device)
    cfg = MTTConfig(syn_steps=syn_steps, expert_epochs=1, max_start_epoch=1, batch_syn=batch_syn, dsa=dsa, capture=capture)
    m = TrajectoryMatcher(net, [traj], cfg, dsa=DSA() if dsa else None, generator=torch.Generator().manual_seed(seed + 1), mode=mode)
    end_loss = (lambda th: F.cross_entropy(functional_forward(net, th, x), y) + th.pow(2).sum() * 1e-3) if end else None
    out = m.loss_and_grad(x, y, s, end_loss=end_loss)
    return out['loss'], out['theta_hat'], x.grad, s.u.grad

CASES = [('ConvNet', None, False, False, 'log', 4),
         ('ConvNet', 3, True, False, 'log', 7),     # mini-batches (uneven chunks) and DSA inside the unroll
         ('ConvNet', 4, True, True, 'raw', 5),      # an end loss that reads x directly; MTT's raw step size
         ('ConvNetBN', None, True, True, 'log', 3), # batch norm: batch statistics, recomputed identically
         ('ConvNetNP', 5, False, True, 'log', 1)]   # no pooling; a single step

@pytest.mark.parametrize('arch,batch_syn,dsa,end,param,syn_steps', CASES)
def test_exact_equals_full(arch, batch_syn, dsa, end, param, syn_steps, device='cpu'):
    lf, tf, xf, uf = _grads('full', arch, batch_syn, dsa, end, param, syn_steps, device=device)
    le, te, xe, ue = _grads('exact', arch, batch_syn, dsa, end, param, syn_steps, device=device)
    assert abs(lf - le) <= 1e-12 * abs(lf)
    torch.testing.assert_close(te, tf, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(xe, xf, rtol=1e-9, atol=1e-12 * xf.abs().max().item())
    torch.testing.assert_close(ue, uf, rtol=1e-9, atol=0)
    assert xf.abs().max() > 0 and uf.abs() > 0

def test_float32_close():
    "In float32 the two modes agree to float tolerance"
    g = torch.Generator().manual_seed(0)
    net = get_network('ConvNet', 1, 10, 8, seed=0, width=32)
    theta0 = flat_params(net)
    traj = torch.stack([theta0, theta0 + 0.01 * torch.randn(theta0.shape, generator=g)])
    x0, y = torch.randn(20, 1, 8, 8, generator=g), torch.arange(20) % 10
    res = {}
    for mode in ('full', 'exact'):
        x, s = x0.clone().requires_grad_(), StepSize(0.01)
        m = TrajectoryMatcher(net, [traj], MTTConfig(syn_steps=10, expert_epochs=1, max_start_epoch=1), dsa=DSA('crop_scale_rotate'),
                              generator=torch.Generator().manual_seed(3), mode=mode)
        m.loss_and_grad(x, y, s); res[mode] = (x.grad, s.u.grad)
    torch.testing.assert_close(res['exact'][0], res['full'][0], rtol=1e-4, atol=1e-4 * res['full'][0].abs().max().item())
    torch.testing.assert_close(res['exact'][1], res['full'][1], rtol=1e-4, atol=0)
