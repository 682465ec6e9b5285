"Training K networks side by side (`train_ensemble`) gives each network what training it alone gives, for the same seed."
import pytest, torch
import torch.nn.functional as F
import mim4dd.evaluate as ev
from mim4dd.data import load_dataset
from mim4dd.evaluate import (evaluate_set, ensemble_forward, ensemble_supported, label_loss, stack_params, get_protocol,
                             train_and_test, train_ensemble, fresh_net, run_generator)
from mim4dd.nets import get_network


@pytest.fixture(scope='module')
def digits():
    train, test = load_dataset('digits')
    x, y = train.sample_per_class(2, torch.Generator().manual_seed(3))
    return x, y, test


@pytest.mark.parametrize('arch', ['ConvNet', 'ConvNetLN', 'ConvNetGN', 'ConvNetNN', 'ConvNetAL', 'ConvNetMP', 'ConvNetNP'])
def test_gradients_equal_each_networks_own_float64(arch):
    "One loss over K side-by-side networks gives each network exactly its own loss's gradient, eq. (4), in float64."
    g = torch.Generator().manual_seed(0)
    nets = [get_network(arch, 3, 5, 8, seed=k, width=8, depth=2).double() for k in range(3)]
    x = torch.randn(3, 4, 3, 8, 8, generator=g, dtype=torch.float64)  # (K, B, C, H, W)
    y = torch.randint(5, (3, 4), generator=g)
    params = stack_params(nets)
    sum(label_loss(lk, yk) for lk, yk in zip(ensemble_forward(nets[0], params, x), y)).backward()
    for k, net in enumerate(nets):
        grads = torch.autograd.grad(label_loss(net(x[k]), y[k]), list(net.parameters()))
        for (name, _), gr in zip(net.named_parameters(), grads):
            torch.testing.assert_close(params[name].grad[k], gr, rtol=1e-10, atol=1e-12, msg=f'{arch} {name}')


def test_forward_cifar_shapes_alexnet_vgg():
    "The larger supported architectures (5 and 8 conv blocks, max pooling) on 3x32x32 images."
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 3, 32, 32, generator=g)
    for arch in ('AlexNet', 'VGG11'):
        nets = [get_network(arch, 3, 10, 32, seed=k) for k in range(2)]
        assert ensemble_supported(nets[0])
        out = ensemble_forward(nets[0], stack_params(nets), x)
        for k in range(2): torch.testing.assert_close(out[k], nets[k](x[k]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('protocol,soft', [('mtt', False), ('mtt', True), ('dc', False)])
def test_evaluate_set_ensemble_equals_one_at_a_time(digits, protocol, soft):
    "Same seed: the same accuracies and curves and, to float tolerance, the same trained weights (DSA on for 'mtt')."
    x, y, test = digits
    y = F.one_hot(y, 10).float() * 0.9 + 0.01 if soft else y
    kw = dict(protocol=protocol, lr=0.01, n_epochs=15, n_runs=3, n_evals=3, width=16, seed=4, return_nets=True)
    seq, ens = evaluate_set(x, y, test, ensemble=False, **kw), evaluate_set(x, y, test, ensemble=True, **kw)
    assert (seq.ensemble, ens.ensemble) == (1, 3)
    assert ens.accs == pytest.approx(seq.accs, abs=1e-9) and ens.curves == seq.curves
    for a, b in zip(seq.nets, ens.nets):
        for pa, pb in zip(a.parameters(), b.parameters()): torch.testing.assert_close(pa, pb, rtol=1e-4, atol=1e-5)


def test_runs_beyond_ensemble_max_are_chunked(digits, monkeypatch):
    "More runs than ENSEMBLE_MAX train in passes of ENSEMBLE_MAX (the last one smaller), with the same numbers."
    x, y, test = digits
    monkeypatch.setattr(ev, 'ENSEMBLE_MAX', 2)
    kw = dict(protocol='mtt', lr=0.01, n_epochs=4, n_runs=3, n_evals=1, width=8)
    seq, ens = evaluate_set(x, y, test, ensemble=False, **kw), evaluate_set(x, y, test, ensemble=True, **kw)
    assert ens.ensemble == 2 and ens.accs == pytest.approx(seq.accs, abs=1e-9)


def test_unsupported_architectures_fall_back(digits):
    x, y, test = digits
    res = evaluate_set(x, y, test, arch='ConvNetBN', protocol='dc', n_epochs=1, n_runs=2, n_evals=1, width=8, ensemble=True)
    assert res.ensemble == 1
    net = get_network('ConvNetBN', 1, 10, 8)
    gens = [run_generator(0, r) for r in range(2)]
    with pytest.raises(ValueError, match='one at a time|cannot be trained'):
        train_ensemble([net, net], x, y, test, 'dc', gens)
    with pytest.raises(ValueError, match='generators'):
        train_ensemble([fresh_net('ConvNet', test.info, g) for g in gens], x, y, test, 'dc', gens[:1])


def test_generators_are_each_networks_own(digits):
    "Network k of an ensemble consumes exactly the draws of its generator that training it alone consumes."
    x, y, test = digits
    p = get_protocol('mtt', 3)
    alone = run_generator(7, 1); train_and_test(fresh_net('ConvNet', test.info, alone, width=8), x, y, test, p, alone, lr=0.01, n_evals=1)
    gens = [run_generator(7, r) for r in range(2)]
    train_ensemble([fresh_net('ConvNet', test.info, g, width=8) for g in gens], x, y, test, p, gens, lr=0.01, n_evals=1)
    assert torch.equal(gens[1].get_state(), alone.get_state())
