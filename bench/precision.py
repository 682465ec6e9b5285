"""Does bfloat16 in MTT's student forward (`mtt.precision='bf16'`) change what the distilled set is worth?

    python bench/precision.py --dataset mnist --ipc 10 --threads 1       # the evidence budget: ~45 min on one core
    python bench/precision.py --dataset digits --ipc 10 --threads 1

For each seed, the same run spec (bench/evidence.py's budget: experts, iterations, evaluation) is distilled twice, in
float32 and in bf16, from the same experts, starting images and random draws, and both sets are evaluated alike.
Records (bench/results/precision.jsonl): one per precision with the accuracy over seeds and the seconds per
distillation iteration, then one with the paired difference bf16 - float32 and a paired t-test. The speed of one
iteration in isolation is bench/profile_unroll.py's; this is the accuracy side.
"""
import argparse, os, sys, time
from pathlib import Path
import numpy as np, torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import device_name, write_record
from bench.evidence import ROOTS, budget_spec, eval_kw
from mim4dd.data import load_dataset
from mim4dd.distill import Distiller
from mim4dd.evaluate import evaluate_set
from mim4dd.experts import ExpertStore, train_experts

PRECISIONS = ('float32', 'bf16')

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--dataset', default='digits'); ap.add_argument('--ipc', type=int, default=10)
    ap.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    ap.add_argument('--iterations', type=int, help="override the budget's")
    ap.add_argument('--work', default='runs/evidence', help='experts in WORK/<dataset>/experts; runs in WORK/<dataset>/precision')
    ap.add_argument('--threads', type=int); ap.add_argument('--note', default=''); ap.add_argument('--out', default='precision')
    a = ap.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    train, test = load_dataset(a.dataset, root=ROOTS.get(a.dataset))
    kw = dict(iterations=a.iterations) if a.iterations else {}
    spec = budget_spec(a.dataset, a.ipc, 'mtt', a.work, **kw)
    store = ExpertStore(spec.experts.store)
    train_experts(train, test, store, n_experts=spec.experts.n_experts, n_epochs=spec.experts.train_epochs, seed=0, progress=True)
    ev = eval_kw(a.dataset, a.ipc)
    accs, secs = {p: [] for p in PRECISIONS}, {p: [] for p in PRECISIONS}
    for seed in a.seeds:
        for p in PRECISIONS:
            s = spec.override(f'loop.seed={seed}', f'mtt.precision={p}')
            t0 = time.time()
            ds = Distiller(s.distill_config(), train, store).run(Path(a.work) / a.dataset / 'precision' / f'ipc{a.ipc}_{p}_seed{seed}', progress=False)
            secs[p].append((time.time() - t0) / s.loop.iterations)
            res = evaluate_set(ds.x, ds.y, test, **ev, seed=seed, lr=ds.eval_lr)
            accs[p].append(res.acc_final_mean)
            print(f'{a.dataset} ipc={a.ipc} {p} seed={seed}: {res} ({secs[p][-1]:.2f} s an iteration)', flush=True)
    common = dict(dataset=a.dataset, ipc=a.ipc, seeds=a.seeds, device=device_name('cpu'), note=a.note, protocol=res.protocol,
                  experts=f'{spec.experts.n_experts} x {spec.experts.train_epochs} epochs', eval_runs=ev['n_runs'], n_evals=ev['n_evals'])
    for p in PRECISIONS:
        write_record(a.out, **common, precision=p, acc_mean=float(np.mean(accs[p])), acc_std=float(np.std(accs[p])), per_seed=accs[p],
                     seconds_per_iteration=float(np.mean(secs[p])), spec=spec.override(f'mtt.precision={p}', f'loop.seed={a.seeds[0]}').to_dict(),
                     load=os.getloadavg()[0])
    d = np.array(accs['bf16']) - np.array(accs['float32'])
    t = stats.ttest_rel(accs['bf16'], accs['float32']) if len(d) > 1 and d.std() > 0 else None
    write_record(a.out + '_paired', **common, method='bf16 - float32', diff_mean=float(d.mean()),
                 diff_std=float(d.std(ddof=1)) if len(d) > 1 else 0., n_pos=int((d > 0).sum()), n_seeds=len(d),
                 p_value=float(t.pvalue) if t else None, per_seed=d.tolist(),
                 time_ratio=float(np.mean(secs['bf16']) / np.mean(secs['float32'])))
    print(f'bf16 - float32: {d.mean():+.2f} points over seeds {a.seeds}, p = {t.pvalue if t else None}; '
          f'time per iteration {np.mean(secs["bf16"]) / np.mean(secs["float32"]):.2f}x', flush=True)

if __name__ == '__main__': main()
