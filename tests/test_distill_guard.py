"A run whose learned step size underflows to 0 stops with a clear error instead of silently doing nothing."
import pytest, torch
from mim4dd.data import load_dataset
from mim4dd.distill import DistillConfig, Distiller
from mim4dd.experts import ExpertStore, train_experts

def test_collapsed_step_size_is_an_error(tmp_path, one_thread):
    train, test = load_dataset('digits')
    store = ExpertStore(tmp_path / 'experts')
    train_experts(train, test, store, n_experts=1, n_epochs=2, seed=0)
    cfg = DistillConfig(dataset='digits', ipc=1, base='mtt', iterations=3, syn_steps=2, max_start_epoch=1, expert_epochs=1)
    d = Distiller(cfg, train, store)
    rec = d.step()
    # the normalised MTT loss is 1 where the student starts (at the expert's theta_star_t); a working step moves it closer
    assert rec['syn_lr'] > 0 and 0 < rec['loss_base'] < 1, rec  # measured 0.77
    u, = d.base.parameters()
    with torch.no_grad(): u.fill_(-1.0)  # alpha = 0.01 * exp(-100): 0 in float32
    with pytest.raises(FloatingPointError, match='step size collapsed'): d.step()
    assert d.iteration == 1  # the failed iteration is not counted
