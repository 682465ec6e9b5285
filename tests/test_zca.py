"""ZCA is fitted in one place (`experts.fit_zca`, on [0, 1] pixels), and the experts, the distillation and the evaluation
(test set included) whiten with that one transform, which is saved with the distilled set. CIFAR-shaped random data."""
import pytest, torch
import mim4dd.cli
from mim4dd.data import load_dataset, make_fake
from mim4dd.augment import ZCA
from mim4dd.experts import ExpertStore, fit_zca, apply_zca, zca_identity
from mim4dd.distill import DistillConfig, Distiller, DistilledSet
from mim4dd.cli import distill_run
from mim4dd.spec import RunSpec

@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

def test_experts_distillation_and_evaluation_share_one_transform(tmp_path, monkeypatch):
    monkeypatch.setenv('MIM4DD_DATA', str(tmp_path/'home'))
    root = tmp_path/'data'
    make_fake('cifar10', root, n_per_class=20, n_test_per_class=5)  # 200 training images, 3x32x32, CIFAR's own files
    seen = {}
    def spy(x, y, test, **kw): seen['test'] = test; return evaluate_set(x, y, test, **kw)
    evaluate_set = mim4dd.cli.evaluate_set
    monkeypatch.setattr(mim4dd.cli, 'evaluate_set', spy)
    cfg = DistillConfig(dataset='cifar10', ipc=1, iterations=1, syn_steps=1, expert_epochs=1, max_start_epoch=1, batch_real=20)
    assert cfg.mtt_config().zca  # the CIFAR presets whiten
    spec = RunSpec.from_dict(dict(data=dict(name='cifar10', root=str(root)), experts=dict(n_experts=1),
                                  loop=dict(ipc=1, iterations=1, batch_real=20, device='cpu'),
                                  mtt=dict(syn_steps=1, expert_epochs=1, max_start_epoch=1), eval=dict(runs=1, epochs=1)))
    distill_run(spec, tmp_path/'run', progress=False)

    train, test = load_dataset('cifar10', root)
    store = ExpertStore(tmp_path/'run'/'experts')
    z, pixels = store.load_zca(), train.info.denormalise(train.x)  # the fit distill_run kept with the experts; pixels (200, 3, 32, 32) in [0, 1]
    torch.testing.assert_close(z.mean.view(3, 32, 32), pixels.mean(0), atol=1e-5, rtol=0)  # fitted on [0, 1] pixels (fit_zca)
    assert (z.mean.view(3, 32, 32) - train.x.mean(0)).abs().max() > 0.5  # not on the normalised images (the old cli's fit)
    want = zca_identity(z)
    assert store.manifest(0)['zca'] == want  # the experts trained on it
    ds = DistilledSet.load(tmp_path/'run'/'distilled.pt')
    assert zca_identity(ZCA.from_state_dict(ds.zca)) == want  # saved with the set
    d = Distiller(cfg, train, store)
    assert zca_identity(d.zca) == want  # the distillation whitens with it: its starting images are whitened real images
    white = apply_zca(train, z).x
    assert all(any(torch.allclose(x, w, atol=1e-5) for w in white) for x in d.x_init)
    assert white.mean(0).abs().max() < 1e-4
    torch.testing.assert_close(seen['test'].x, apply_zca(test, z).x)  # and the evaluation's test set too
