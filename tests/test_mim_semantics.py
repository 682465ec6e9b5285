"""What the MIM4DD term must do, on settings the chapters do not use: the training loss pulls every positive pair
together and pushes every negative pair apart at every similarity; the reported estimate never passes log C."""
import math
import pytest
import torch
from mim4dd.mi import (contrastive_loss, mi_lower_bound, pair_gradient, positive_mask, mi_cap, gaussian_mi,
                       gaussian_log_ratio, sample_correlated_gaussians)
from mim4dd.mim import MIMLoss, ProjectionHead, balanced_batch
from mim4dd.data import load_dataset
from mim4dd.nets import get_network

def _batch(n_classes, counts, ipc, g):
    "Synthetic labels (ipc per class) and real labels (counts[c] per class), shuffled"
    y_syn = torch.arange(n_classes).repeat(ipc)
    y_real = torch.arange(n_classes).repeat_interleave(torch.tensor(counts))
    return y_syn[torch.randperm(len(y_syn), generator=g)], y_real[torch.randperm(len(y_real), generator=g)]

@pytest.mark.parametrize('critic', ['nce', 'infonce'])
@pytest.mark.parametrize('seed', range(6))
def test_training_loss_pulls_every_positive_and_pushes_every_negative(critic, seed):
    g = torch.Generator().manual_seed(seed)
    C = [2, 3, 5, 10, 17, 40][seed]
    counts = torch.randint(1, 9, (C,), generator=g).tolist()
    y_syn, y_real = _batch(C, counts, 1 + seed % 3, g)
    mask = positive_mask(y_syn, y_real)
    tau = [0.05, 0.1, 0.5][seed % 3]
    s = ((torch.rand(mask.shape, generator=g, dtype=torch.float64) * 2 - 1) / tau).requires_grad_()  # cosines in [-1, 1]
    contrastive_loss(s, mask, critic).backward()
    assert (s.grad[mask] < 0).all(), 'a positive pair is pushed apart'
    assert (s.grad[~mask] > 0).all(), 'a negative pair is pulled together'

@pytest.mark.parametrize('critic', ['nce', 'infonce'])
def test_positive_pair_gradient_sign_over_cosines(critic):
    for tau, C, others in ((0.1, 10, 0.5), (0.05, 3, 0.9), (0.3, 50, -0.2)):
        for cos in torch.linspace(-1, 1, 41).tolist():
            kw = dict(tau=tau, n_classes=C, others=others)
            assert pair_gradient(lambda s, m: contrastive_loss(s, m, critic), cos, True, **kw) < 0
            assert pair_gradient(lambda s, m: contrastive_loss(s, m, critic), cos, False, **kw) > 0

def test_estimator_loss_repels_positives_past_tau_log_n():
    "The reason the default changed: counting positives as noise makes the loss push similar positives apart"
    g = pair_gradient(lambda s, m: contrastive_loss(s, m, 'nce', 'all'), 0.5, True, tau=0.1, n_classes=10)
    assert g > 0

@pytest.mark.parametrize('C', [2, 4, 16, 100])
def test_estimate_never_above_log_c_under_adversarial_scores(C):
    g = torch.Generator().manual_seed(C)
    counts = torch.randint(1, 7, (C,), generator=g).tolist()
    y_syn, y_real = _batch(C, counts, 2, g)
    mask = positive_mask(y_syn, y_real)
    s = torch.randn(mask.shape, generator=g, dtype=torch.float64).requires_grad_()
    opt = torch.optim.Adam([s], lr=1.0)
    best = -math.inf
    for _ in range(200):
        est = mi_lower_bound(s, mask); best = max(best, est.item())
        opt.zero_grad(); (-est).backward(); opt.step()
    assert best <= mi_cap(C) + 1e-9
    assert mi_lower_bound(torch.where(mask, 1e4, -1e4).double(), mask).item() <= mi_cap(C) + 1e-9  # a perfect label critic

def test_estimate_below_true_mi_on_gaussians():
    g = torch.Generator().manual_seed(11)
    for rho, d, n in ((0.5, 4, 64), (0.9, 2, 256)):
        eye = torch.eye(n, dtype=torch.bool)
        est = torch.stack([mi_lower_bound(gaussian_log_ratio(*sample_correlated_gaussians(n, rho, d, g, torch.float64), rho), eye)
                           for _ in range(48)])
        assert est.mean() <= gaussian_mi(rho, d) + 2 * est.std() / math.sqrt(48)

def test_mim_loss_defaults_and_estimates():
    shapes = [(6, 4, 4), (6, 2, 2)]
    mim = MIMLoss(shapes, 5, dim=8, generator=torch.Generator().manual_seed(0))
    assert mim.negatives == 'cross' and all(h.proj.bias is None for h in [*mim.heads_real, *mim.heads_syn])
    g = torch.Generator().manual_seed(1)
    fr = [torch.randn(40, *sh, generator=g) for sh in shapes]; yr = torch.arange(5).repeat(8)
    fs = [torch.randn(10, *sh, generator=g) for sh in shapes]; ys = torch.arange(5).repeat(2)
    _, info = mim(fr, yr, fs, ys)
    assert all(m <= math.log(5) for m in info['mi'])

def test_heads_see_the_data_on_digits():
    "Different-class rows of real features do not share a direction through a random network's untrained heads"
    train, _ = load_dataset('digits')
    torch.manual_seed(3); net = get_network('ConvNet', 1, 10, (8, 8))
    x, y = balanced_batch(train, 200, torch.Generator().manual_seed(3))
    with torch.no_grad():
        for f in net.features(x):
            z = ProjectionHead(f.shape[1:], 128, 'avg', generator=torch.Generator().manual_seed(4))(f)
            same = positive_mask(y, y)
            assert (z @ z.T)[~same].mean() < 0.5
        mim = MIMLoss([f.shape[1:] for f in net.features(x[:2])], 10, pool='avg', trainable=False,
                      generator=torch.Generator().manual_seed(5))
        xs, ys = train.sample_per_class(5, torch.Generator().manual_seed(6))
        _, info = mim(net.features(x), y, net.features(xs), ys)
    assert min(info['mi']) > -1.0, info['mi']  # fixed random heads: near zero, not tens of nats below it
