"""Evaluation as an ensemble: K networks trained side by side (`train_ensemble`) against one at a time (`train_and_test`).

For every (shape, IPC, K) the two paths of `evaluate_set` (`ensemble=True` and `ensemble=False`) run interleaved in one
process with the same seeds (repetition r uses seed r for both), so clock and load drift hit both alike; each record holds
the median wall and process-CPU seconds of each path, the throughput ratio (one-at-a-time time / side-by-side time: above
1 means the ensemble is faster) and the largest difference between the two paths' final accuracies (0 expected).
The images are synthetic random tensors of the dataset's shape (the timing does not depend on their content), trained
with MTT's recipe (DSA on, lr 0.01) for a few epochs; the test set has 10 images and is tested once, so the time is
training time. One torch thread (another benchmark uses the other core): with one thread, CPU time is what an idle
machine's wall time would be, which makes it the stable measure on a shared machine. Appends to
bench/results/eval_ensemble.jsonl.

    python bench/eval_ensemble.py                        # CIFAR-10 shapes, K = 3 5 10, IPC 1 10 50: ~10 minutes
    python bench/eval_ensemble.py --shape digits --ipc 1 10 --K 3 10   # the demo's shapes, a minute
"""
import argparse, os, resource, sys, time
from pathlib import Path
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import write_record, device_name
from mim4dd.cpu import keep_freed_memory
from mim4dd.data import ImageSet, DatasetInfo
from mim4dd.evaluate import evaluate_set

SHAPES = {'cifar10': dict(channels=3, im_size=32), 'digits': dict(channels=1, im_size=8)}
EPOCHS = {'cifar10': {1: 20, 10: 2, 50: 1}, 'digits': {1: 100, 10: 20, 50: 5}}  # about a second per network and path
REPEATS = {1: 3, 10: 3, 50: 2}  # timed repetitions per path (interleaved); IPC 50 costs most


def problem(shape:str, ipc:int):
    "(x, y, test): a synthetic set of `ipc` images per class and a 10-image test set, seeded"
    s, g = SHAPES[shape], torch.Generator().manual_seed(0)
    c, hw = s['channels'], (s['im_size'], s['im_size'])
    info = DatasetInfo(shape, c, hw, 10, [str(i) for i in range(10)], (0.5,) * c, (0.25,) * c, source='synthetic')
    test = ImageSet(torch.randn(10, c, *hw, generator=g), torch.arange(10), info)
    return torch.randn(10 * ipc, c, *hw, generator=g), torch.arange(10).repeat_interleave(ipc), test


def measure(shape:str, ipc:int, K:int, n_epochs:int, repeats:int) -> dict:
    "Median seconds of both paths, interleaved, and the ratio"
    x, y, test = problem(shape, ipc)
    kw = dict(protocol='mtt', lr=0.01, n_epochs=n_epochs, n_runs=K, n_evals=1)
    times, accs = {False: [], True: []}, {False: [], True: []}
    for rep in range(repeats):
        for ens in (False, True):
            w, c = time.perf_counter(), time.process_time()
            res = evaluate_set(x, y, test, seed=rep, ensemble=ens, **kw)
            times[ens].append((time.perf_counter() - w, time.process_time() - c))
            accs[ens].append(res.accs)
            assert res.ensemble == (K if ens else 1), res.ensemble
    med = lambda v, i: sorted(t[i] for t in v)[len(v) // 2]
    out = dict(seq_seconds=med(times[False], 0), ens_seconds=med(times[True], 0),
               seq_cpu_seconds=med(times[False], 1), ens_cpu_seconds=med(times[True], 1),
               seq_cpu_all=[t[1] for t in times[False]], ens_cpu_all=[t[1] for t in times[True]])
    out['ratio_cpu'] = out['seq_cpu_seconds'] / out['ens_cpu_seconds']
    out['ratio_wall'] = out['seq_seconds'] / out['ens_seconds']
    imgs = K * n_epochs * len(x)  # training images seen, all networks together
    out['seq_images_per_cpu_second'], out['ens_images_per_cpu_second'] = imgs / out['seq_cpu_seconds'], imgs / out['ens_cpu_seconds']
    out['max_acc_diff'] = max(abs(a - b) for ra, rb in zip(accs[False], accs[True]) for a, b in zip(ra, rb))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--shape', nargs='+', default=['cifar10'], choices=list(SHAPES))
    ap.add_argument('--ipc', nargs='+', type=int, default=[1, 10, 50])
    ap.add_argument('--K', nargs='+', type=int, default=[3, 5, 10], help='networks (n_runs)')
    ap.add_argument('--epochs', type=int, default=None, help='override EPOCHS[shape][ipc]')
    ap.add_argument('--repeats', type=int, default=None, help='override REPEATS[ipc]')
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--keep_freed_memory', action='store_true', help='malloc keeps freed memory (mim4dd.cpu); recorded')
    ap.add_argument('--dry', action='store_true', help='print, do not write')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    kept = keep_freed_memory() if a.keep_freed_memory else False
    cmd = 'python bench/eval_ensemble.py ' + ' '.join(sys.argv[1:])
    for shape in a.shape:
        x, y, test = problem(shape, 1)  # warm-up: first calls of oneDNN and the allocator, both paths
        for ens in (False, True): evaluate_set(x, y, test, lr=0.01, n_epochs=1, n_runs=2, n_evals=1, ensemble=ens)
        for ipc in a.ipc:
            for K in a.K:
                n_epochs = a.epochs or EPOCHS[shape].get(ipc, 1)
                repeats = a.repeats or REPEATS.get(ipc, 2)
                load = os.getloadavg()[0]
                rec = dict(shape=shape, ipc=ipc, K=K, n_epochs=n_epochs, repeats=repeats, seeds=list(range(repeats)),
                           protocol='mtt (DSA, lr 0.01, batch 256)', threads=torch.get_num_threads(), device=device_name('cpu'),
                           load_before=load, **measure(shape, ipc, K, n_epochs, repeats), load_after=os.getloadavg()[0],
                           freed_memory_kept=kept, max_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, command=cmd)
                print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in rec.items() if not k.endswith('_all')}, flush=True)
                if not a.dry: write_record('eval_ensemble', **rec)


if __name__ == '__main__': main()
