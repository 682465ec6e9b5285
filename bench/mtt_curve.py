"""Accuracy of an MTT set against distillation iterations, beside herding and DM at the same budget (issue 13's MNIST IPC 1
question: is MTT below herding because it stops too early, or does it plateau there?).

    python bench/mtt_curve.py --dataset mnist --ipc 1 --iterations 200 --every 25 --threads 1      # ~25 min on one core
    python bench/mtt_curve.py --dataset mnist --ipc 1 --set mtt.syn_lr_param=raw --note "raw step size"

One distillation (the run spec of bench/evidence.py's budget: its experts, store and settings; `--set` changes any field of
the spec, mim4dd.spec),
stopped every `--every` iterations to evaluate the set as it stands (the budget's evaluation, at the step size learned so
far). Iteration 0 is the random real start. Records (bench/results/mtt_curve.jsonl): one per evaluation point with the
accuracy, the step size and the mean matching loss since the last point; herding and DM of the newest
bench/results/evidence.jsonl rows of the dataset and IPC are read by the experiments notebook, not copied here.
"""
import argparse, json, os, sys, time
from dataclasses import asdict
from pathlib import Path
import numpy as np, torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import RESULTS, device_name, write_record
from bench.evidence import ROOTS, budget_spec, eval_kw
from mim4dd.cpu import keep_freed_memory
from mim4dd.data import load_dataset
from mim4dd.distill import Distiller
from mim4dd.evaluate import evaluate_set
from mim4dd.experts import ExpertStore, train_experts

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--dataset', default='mnist'); ap.add_argument('--ipc', type=int, default=1)
    ap.add_argument('--iterations', type=int, default=200); ap.add_argument('--every', type=int, default=25)
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--set', nargs='*', default=[], help='run spec fields, e.g. mtt.syn_lr_param=raw mtt.lr_img=1000')
    ap.add_argument('--work', default='runs/evidence', help="experts are read from (or trained into) WORK/<dataset>/experts")
    ap.add_argument('--threads', type=int); ap.add_argument('--note', default=''); ap.add_argument('--out', default='mtt_curve')
    ap.add_argument('--system_malloc', action='store_true', help="leave glibc's malloc as it is (default: keep freed memory, mim4dd.cpu)")
    ap.add_argument('--summarise', action='store_true', help='only gather the points of curves of one commit, dataset, IPC, '
                    'settings and note that ran one seed a process into one record per iteration (OUT_summary.jsonl)')
    a = ap.parse_args(argv)
    if a.summarise: return summarise(a.dataset, a.ipc, a.out, a.set, a.note)
    if a.threads: torch.set_num_threads(a.threads)
    kept = False if a.system_malloc else keep_freed_memory()
    try: spec = budget_spec(a.dataset, a.ipc, 'mtt', a.work, iterations=a.iterations, seed=a.seed).override(*a.set).check()
    except ValueError as e: raise SystemExit(f'mtt_curve: {e}')
    train, test = load_dataset(a.dataset, root=ROOTS.get(a.dataset))
    e = spec.experts
    store = ExpertStore(e.store)
    train_experts(train, test, store, n_experts=e.n_experts, n_epochs=e.train_epochs, seed=0, progress=True)
    ev = dict(eval_kw(a.dataset, a.ipc), n_runs=spec.eval.runs, n_epochs=spec.eval.epochs)  # n_evals: the budget's
    d = Distiller(spec.distill_config(), train, store)
    common = dict(dataset=a.dataset, ipc=a.ipc, seed=a.seed, experts=f"{e.n_experts} x {e.train_epochs} epochs",
                  mtt=asdict(d.base.mcfg), overrides=a.set, spec=spec.to_dict(), freed_memory_kept=kept,
                  eval=ev, device=device_name('cpu'), note=a.note, iterations_total=a.iterations)
    secs = 0.
    while True:
        x, lr = d.x_syn.detach().clone(), d.base.syn_lr()
        res = evaluate_set(x, d.y_syn, test, **ev, seed=a.seed, lr=lr if d.iteration else 0.01)
        losses = [h['loss_base'] for h in d.history[-a.every:]] if d.iteration else []
        write_record(a.out, **common, iteration=d.iteration, acc=res.acc_final_mean, acc_std=res.acc_final_std, protocol=res.protocol,
                     syn_lr=lr, loss_mean=float(np.mean(losses)) if losses else None, distill_seconds=secs,
                     load=os.getloadavg()[0])
        print(f'{a.dataset} ipc={a.ipc} iteration {d.iteration}: {res.acc_final_mean:.2f} % (alpha {lr:.4g}, loss '
              f'{np.mean(losses) if losses else float("nan"):.4f}, {secs:.0f} s of distillation)', flush=True)
        if d.iteration >= a.iterations: break
        t1 = time.time()
        for _ in range(min(a.every, a.iterations - d.iteration)): d.step()
        secs += time.time() - t1

def summarise(dataset:str, ipc:int, out:str='mtt_curve', overrides=(), note:str='', results=None) -> list:
    """One record per iteration with every seed's accuracy at it, from the newest curve of each seed of (dataset, ipc,
    overrides, note) in bench/results/OUT.jsonl; refuses curves of different commits or dirty trees"""
    path = Path(results or RESULTS) / f'{out}.jsonl'
    rows = [json.loads(l) for l in path.read_text().splitlines() if l.strip()]
    rows = [r for r in rows if r['dataset'] == dataset and r['ipc'] == ipc and r.get('overrides', []) == list(overrides)
            and r.get('note', '') == note]
    if not rows: raise SystemExit(f'{path}: no curve of {dataset} IPC {ipc} with settings {list(overrides)} and note {note!r}')
    newest = {}  # seed -> its newest run's points (a run starts at iteration 0)
    for r in rows:
        if r['iteration'] == 0: newest[r['seed']] = []
        newest.setdefault(r['seed'], []).append(r)
    commits = {p['commit'] for pts in newest.values() for p in pts}
    if len(commits) != 1 or next(iter(commits)).endswith('+dirty'):
        raise SystemExit(f'{dataset} IPC {ipc}: the curves come from {sorted(commits)}: one clean commit needed')
    seeds = sorted(newest)
    by_it = {}
    for s in seeds:
        for p in newest[s]: by_it.setdefault(p['iteration'], {})[s] = p
    recs = []
    for it in sorted(by_it):
        pts = by_it[it]
        if sorted(pts) != seeds: continue  # a seed has not reached this point yet
        accs = [pts[s]['acc'] for s in seeds]
        first = pts[seeds[0]]
        recs.append(write_record(f'{out}_summary', dataset=dataset, ipc=ipc, iteration=it, seeds=seeds, per_seed=accs,
                                 acc_mean=float(np.mean(accs)), acc_std=float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.,
                                 syn_lr=[pts[s]['syn_lr'] for s in seeds], loss_mean=[pts[s]['loss_mean'] for s in seeds],
                                 distill_seconds=[pts[s]['distill_seconds'] for s in seeds], eval=first['eval'],
                                 protocol=first['protocol'], experts=first['experts'], overrides=list(overrides), note=note,
                                 spec=first['spec'], curve_commit=first['commit'], device=first['device']))
        print(f"{dataset} IPC {ipc} iteration {it}: {recs[-1]['acc_mean']:.2f} ± {recs[-1]['acc_std']:.2f} % over seeds {seeds}")
    return recs

if __name__ == '__main__': main()
