"""Sensitivity of MIM4DD to lambda, gamma, tau, the layer set, the loss's negatives and the heads (METHOD.md §3), one factor at a time.

    python bench/sensitivity.py --threads 1                     # digits, IPC 1, MTT base: about 40 min on one core
    python bench/sensitivity.py --base dm --ipc 1 --threads 1   # the same sweep on top of DM

Every point uses the experts, iteration budget, seeds and evaluation of bench/evidence.py (BUDGET), so the point
(ratio 0.2, gamma 1, tau 0.1, all layers) repeats the evidence run and ratio 0 is the base method. lambda is set
by `calibrate_lam` for each point, so that lambda * L_MIM is `ratio` times the base loss at the start: changing
gamma, tau or the layers changes the size of L_MIM, and recalibrating keeps the term's share of the loss fixed while
its shape changes. `negatives='all'` trains with the estimator's loss (positives among the noise pairs: it repels
same-class pairs past cosine tau*log N); `heads='random'` keeps the heads at their random projections; `warmup=K`
trains the heads for the first K iterations before the term moves any pixel. One record per point in bench/results/sensitivity.jsonl: accuracy over seeds, and the paired
difference to the base method (same seeds) with a paired t-test.
"""
import argparse, os, sys, time
from pathlib import Path
import numpy as np, torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import device_name, write_record
from bench.evidence import BUDGET, ROOTS, budget_spec, eval_kw
from mim4dd.data import load_dataset
from mim4dd.distill import Distiller, calibrate_lam
from mim4dd.evaluate import evaluate_set
from mim4dd.experts import ExpertStore, train_experts, build_net, model_config

DEFAULT = dict(ratio=0.2, gamma=1.0, tau=0.1, layers=None, negatives='cross', heads='trained', warmup=0)
SWEEP = dict(ratio=[0.0, 0.05, 0.2, 1.0], gamma=[4.0], tau=[0.05, 0.5], layers=['first', 'last'], negatives=['all'],
             heads=['random'], warmup=[20])

def points(n_layers:int) -> list:
    "One-at-a-time points around DEFAULT (the default itself once); 'first'/'last' name a single block"
    out, named = [], {'first': (0,), 'last': (n_layers - 1,)}
    for k, values in SWEEP.items():
        for v in values:
            p = {**DEFAULT, k: named.get(v, v) if k == 'layers' else v}
            if p not in out: out.append(p)
    return out

def tag(base, ipc, p, seed):
    if p['ratio'] == 0: return f'{base}_ipc{ipc}_seed{seed}'  # the base method: the evidence run's folder
    if p == DEFAULT: return f'{base}+mim_ipc{ipc}_seed{seed}'  # the evidence run's folder name
    layers = 'all' if p['layers'] is None else '-'.join(map(str, p['layers']))
    extra = ''.join(f'_{k}{p[k]}' for k in ('negatives', 'heads', 'warmup') if p[k] != DEFAULT[k])
    return f"{base}+mim_ipc{ipc}_r{p['ratio']:g}_g{p['gamma']:g}_t{p['tau']:g}_L{layers}{extra}_seed{seed}"

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--dataset', default='digits')
    ap.add_argument('--ipc', type=int, default=1)
    ap.add_argument('--base', default='mtt', choices=['mtt', 'dm'])
    ap.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    ap.add_argument('--eval-runs', type=int, help='fresh networks per distilled set (default: the budget, else 2)')
    ap.add_argument('--critic', default='nce')
    ap.add_argument('--work', default='runs/sensitivity', help='distilled sets (resumable)')
    ap.add_argument('--experts', default='runs/evidence', help="experts are read from (or trained into) EXPERTS/<dataset>/experts")
    ap.add_argument('--only', nargs='*', default=None, help='factors to sweep (default: all of ratio gamma tau layers)')
    ap.add_argument('--threads', type=int)
    ap.add_argument('--note', default='')
    a = ap.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    b, name, ipc = BUDGET[a.dataset], a.dataset, a.ipc
    train, test = load_dataset(name, root=ROOTS.get(name))
    work = Path(a.work) / name
    store = ExpertStore(Path(a.experts) / name / 'experts')
    if a.base == 'mtt': train_experts(train, test, store, n_experts=b['n_experts'], n_epochs=b['train_epochs'], seed=0)
    ev = eval_kw(name, ipc, a.eval_runs)
    with torch.no_grad(): n_layers = len(build_net(model_config(train)).features(train.x[:2]))  # blocks the MIM term can tap
    pts = [p for p in points(n_layers) if a.only is None or p['ratio'] == 0 or
           any(p[k] != DEFAULT[k] for k in a.only) or p == DEFAULT]
    base_acc = None
    for p in pts:
        t0, lam, accs = time.time(), 0.0, []
        spec = budget_spec(name, ipc, a.base, a.experts, a.eval_runs, critic=a.critic, gamma=p['gamma'], tau=p['tau'],
                           layers=p['layers'], negatives=p['negatives'], heads=p['heads'], head_warmup=p['warmup'])
        if p['ratio'] > 0: lam = calibrate_lam(spec.override('loop.seed=0').distill_config(), train, store, ratio=p['ratio'])
        spec = spec.override(f'mim.lam={lam!r}')
        for seed in a.seeds:
            cfg = spec.override(f'loop.seed={seed}').distill_config()
            ds = Distiller(cfg, train, store if a.base == 'mtt' else None).run(work / tag(a.base, ipc, p, seed), progress=False)
            res = evaluate_set(ds.x, ds.y, test, **ev, seed=seed, lr=ds.eval_lr)
            accs.append(res.acc_final_mean)
            print(f"{name} ipc={ipc} {a.base} {p} lam={lam:.4g} seed={seed}: {res}", flush=True)
        if p['ratio'] == 0: base_acc = accs
        d = np.array(accs) - np.array(base_acc) if base_acc is not None else None
        t = stats.ttest_rel(accs, base_acc) if d is not None and d.std() > 0 else None
        write_record('sensitivity', dataset=name, ipc=ipc, method=a.base if p['ratio'] == 0 else f'{a.base}+mim', protocol=res.protocol,
                     acc_mean=float(np.mean(accs)), acc_std=float(np.std(accs)), n_runs=len(accs), per_seed=accs, seeds=a.seeds,
                     device=device_name('cpu'), seconds=time.time() - t0, note=a.note, base=a.base, critic=a.critic,
                     ratio=p['ratio'], lam=lam, gamma=p['gamma'], tau=p['tau'],
                     layers=None if p['layers'] is None else list(p['layers']), n_layers=n_layers,
                     negatives=p['negatives'], heads=p['heads'], head_warmup=p['warmup'], load=os.getloadavg()[0],
                     diff_mean=None if d is None else float(d.mean()), p_value=None if t is None else float(t.pvalue),
                     n_pos=None if d is None else int((d > 0).sum()), eval_runs=ev['n_runs'], n_evals=ev['n_evals'],
                     experts=f"{b['n_experts']} x {b['train_epochs']} epochs" if a.base == 'mtt' else None,
                     spec=spec.override(f'loop.seed={a.seeds[0]}').to_dict())

if __name__ == '__main__': main()
