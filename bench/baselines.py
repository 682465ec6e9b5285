"""Baselines for every distillation table: full-data ConvNet accuracy, and random / herding coresets at IPC 1, 10, 50.

    python bench/baselines.py                                  # digits and MNIST, CPU-sized defaults
    python bench/baselines.py --datasets digits                # a few minutes on 2 CPU cores
    python bench/baselines.py --datasets mnist --epochs 1000 --full-epochs 50 --runs 5 --device cuda  # the real protocol

Appends one JSON record per (dataset, ipc, method, protocol) to bench/results/baselines.jsonl. Evaluation is MTT's
protocol (SGD momentum 0.9, wd 5e-4, batch 256, lr x0.1 at the midpoint, DSA on every batch) with lr 0.01, since
real images come with no learned step size; shortened runs say so in the protocol string, e.g.
'mtt(epochs=300, lr=0.01)'. The herding embedder is the first full-data network (its penultimate features).
On a CPU shared with other jobs pass --threads 1: two OpenMP threads time-sliced against other processes ran
about 5x slower per step here than one. Every record stores the threads, the 1-minute load average and a note.
"""
import argparse, os, sys, time
from dataclasses import replace
from pathlib import Path
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import device_name, write_record
from mim4dd.coreset import herding_coreset, random_coreset
from mim4dd.data import load_dataset
from mim4dd.evaluate import PROTOCOLS, evaluate_set

# CPU-sized defaults: epochs per IPC for the coresets, epochs and runs for the full set, test evaluations per run.
DEFAULTS = {'digits': dict(epochs={1: 300, 10: 300, 50: 100}, full_epochs=50, full_runs=3, n_evals=4),
            'mnist': dict(epochs={1: 300, 10: 100, 50: 30}, full_epochs=1, full_runs=1, n_evals=1)}
ROOTS = {'mnist': Path(__file__).resolve().parents[2] / 'shared' / 'data'}  # /work/shared/data holds mnist/*.gz

def parse_epochs(items):
    "['300'] -> 300 for every IPC; ['1=300', '50=100'] -> {1: 300, 50: 100}."
    if not items: return None
    if len(items) == 1 and '=' not in items[0]: return int(items[0])
    return {int(k): int(v) for k, v in (i.split('=') for i in items)}

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--datasets', nargs='+', default=['digits', 'mnist'])
    ap.add_argument('--ipcs', nargs='+', type=int, default=[1, 10, 50])
    ap.add_argument('--methods', nargs='+', default=['random', 'herding'], choices=['random', 'herding'])
    ap.add_argument('--epochs', nargs='*', help="coreset epochs: N for all IPCs, or IPC=N pairs (default: per dataset)")
    ap.add_argument('--full-epochs', type=int, help='epochs on the full training set (default: per dataset)')
    ap.add_argument('--full-runs', type=int, help='fresh networks on the full set (default: per dataset)')
    ap.add_argument('--runs', type=int, default=3, help='fresh networks per coreset')
    ap.add_argument('--n-evals', type=int, help='test evaluations per run (for best-over-time; default per dataset)')
    ap.add_argument('--lr', type=float, default=0.01, help='evaluation lr (real images have no learned syn_lr)')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--root', help='data root for datasets on disk (default: /work/shared/data for mnist)')
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--threads', type=int, help='torch.set_num_threads')
    ap.add_argument('--note', default='', help='free text stored in every record (e.g. "CPU shared with other jobs")')
    ap.add_argument('--out', default='baselines', help='results file stem under bench/results/')
    a = ap.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    dev, epochs_arg = torch.device(a.device), parse_epochs(a.epochs)
    for name in a.datasets:
        d = DEFAULTS.get(name, DEFAULTS['mnist'])
        root = a.root or ROOTS.get(name)
        train, test = load_dataset(name, root=root)
        n_evals = a.n_evals or d['n_evals']
        common = dict(dataset=name, arch='ConvNet', device=device_name(a.device), threads=torch.get_num_threads(),
                      note=a.note, seed=a.seed)

        skip = set(common) | {'n_runs', 'seconds', 'acc_best_mean', 'acc_best_std'}

        def record(ipc, method, res, **extra):
            r = res.to_dict(); r.pop('curves')
            rec = write_record(a.out, **common, ipc=ipc, method=method, protocol=r.pop('protocol'),
                               acc_mean=res.acc_final_mean, acc_std=res.acc_final_std,
                               acc_best_mean=res.acc_best_mean, acc_best_std=res.acc_best_std, n_runs=res.n_runs,
                               seconds=round(res.seconds, 1), load_avg_1min=round(os.getloadavg()[0], 2),
                               **{k: v for k, v in r.items() if k not in skip}, **extra)
            print(f"{name:7s} ipc={str(ipc):5s} {method:8s} {rec['protocol']:24s} {res.acc_final_mean:5.1f} ± "
                  f"{res.acc_final_std:.1f} (best {res.acc_best_mean:5.1f})  {res.seconds:7.1f}s", flush=True)

        full_p = replace(PROTOCOLS['mtt'], lr=a.lr, n_epochs=a.full_epochs or d['full_epochs'])
        full = evaluate_set(train.x, train.y, test, protocol=full_p, n_runs=a.full_runs or d['full_runs'],
                            seed=a.seed, n_evals=n_evals, device=dev, return_nets=True)
        record(None, 'full', full)
        embedder = full.nets[0]  # herding's embedding: penultimate features of a full-data ConvNet
        for ipc in a.ipcs:
            n_ep = epochs_arg if isinstance(epochs_arg, int) else (epochs_arg or {}).get(ipc, d['epochs'].get(ipc, 300))
            p = replace(PROTOCOLS['mtt'], lr=a.lr, n_epochs=n_ep)
            for method in a.methods:
                t0 = time.perf_counter()
                if method == 'random': x, y = random_coreset(train, ipc, torch.Generator().manual_seed(a.seed))
                else: x, y = herding_coreset(train, ipc, embedder)
                t_select = time.perf_counter() - t0
                res = evaluate_set(x, y, test, protocol=p, n_runs=a.runs, seed=a.seed, n_evals=n_evals, device=dev)
                extra = dict(select_seconds=round(t_select, 1))
                if method == 'herding': extra.update(embedder=f'ConvNet full-data run 0, {full.protocol}',
                                                     embedder_acc=full.accs[0])
                record(ipc, method, res, **extra)

if __name__ == '__main__': main()
