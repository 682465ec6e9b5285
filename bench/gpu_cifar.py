"""CIFAR-10 end to end in one short GPU lease: experts, MTT and MTT + MIM4DD at IPC 1 and 10, evaluation, paired records.

    python bench/gpu_cifar.py --data_root data --device cuda --mirror $OUT   # on a lent GPU: <= 10 min including start-up
    python bench/gpu_cifar.py --smoke                                        # CPU, fake CIFAR-shaped data, ~15 s (tests/test_gpu_cifar.py)

On the device machine (`run` tool; its python3 has CUDA torch but not fastcore), from this machine's checkout:

    mkdir -p data && cp ../shared/data/cifar10-jpg.zip data/        # data/ and .whl/ are git-ignored
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp -d .whl fastcore==1.14.5
    run(carry=['data', '.whl'], timeout_s=460, command=
        'python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:. &&
         MIM4DD_COMMIT=<short hash>+dirty PYTHONUNBUFFERED=1 python3 bench/gpu_cifar.py --data_root data --device cuda --mirror $OUT')

The zip is 62.2 MB and the tracked tree about 2 MB: together just under the 64 MiB that travels, so carry nothing else.
Records (JSON Lines) go to bench/results/gpu_cifar.jsonl on the machine and, after every record, are copied to `--mirror`
(so whatever finished comes back even if the lease runs out): one per (IPC, method, seed) with test accuracy,
and one per IPC with the paired difference MTT + MIM4DD minus MTT over seeds. Results are labelled
"CIFAR-10 (JPEG q75 copy)": the JPEG copy costs a classifier about a point against the original CIFAR-10.

Budget (SIZES['gpu']), and why it fits 10 minutes. GPU figures are NOT measured on an H200: no device was lent to the
session that wrote this, so they are this project's H100 measurements (bench/results/mtt_speed.jsonl, full unroll,
CIFAR-10 shapes: 0.57-0.63 s per iteration at 40 student steps for IPC 1 and IPC 10 alike, i.e. ~15 ms a step, launch-bound)
taken as the H200's, plus guesses marked (assumed):
- start-up and the 64 MB transfer: ~90 s (assumed; README of the device tool: "a minute or more").
- decoding the 60,000 JPEGs (load_dataset, then its cache is written): 12.7 s measured here on one CPU core of a busy
  machine (load average 4); the device machine's core is assumed no slower -> ~15 s with the imports.
- ZCA fit on the GPU (float64 covariance of 50,000 x 3072, eigh of 3072 x 3072): ~5 s (assumed).
- experts: 4 x 5 epochs (IPC 10 needs max_start_epoch 4 + expert_epochs 2 - 1 = 5; IPC 1 the preset's 2 + 2 - 1 = 3),
  196 batches of 256 with DSA an epoch: ~5 s an epoch (assumed; on one CPU thread an epoch is ~25 min, estimated from evidence.py's ~10 min an MNIST epoch) -> ~100 s.
  They are trained one at a time, and once 120 s have gone no more are started past the second (`expert_budget`;
  the records then say how many there are): a slower GPU costs experts, not the distillations.
- IPC 1: syn_steps 50 (preset), 60 iterations at ~0.75 s (H100, extrapolated from 40 steps) = 45 s per method;
  MTT, MTT + MIM4DD and lam's calibration (3 iterations) -> ~95 s.
- IPC 10: syn_steps 30 (preset), 60 iterations at ~0.45 s = 27 s per method -> ~60 s. Its preset's alpha_0 0.001
  with lr_lr 1e-5 made alpha explode under our exponential step size (bench/evidence.py, MNIST IPC 10); we start at
  alpha_0 0.01 with lr_lr 1e-7, as evidence.py does, and say so in the records.
- CUDA graphs and inductor (issue 14), after the experts: the exact mode at IPC 1 eager, with `capture='cuda_graphs'`
  and with `capture='compile'`, 4 rounds of 3 iterations each, interleaved (round 0, with the captures and the compile,
  left out of the median): ~36 iterations at ~1 s (the exact mode ~1.3x the full unroll; assumed) plus the compile
  (60-80 s on the CPU; assumed no more on the GPU) -> ~110 s; one record (gpu_cifar_capture.jsonl) with the medians, the
  speed-ups over eager, the graphs captured and the largest pixel difference of each from eager (same seed).
  `--no_compile` leaves inductor out (~25 s then), `--no_capture` skips it all.
- evaluation: 3 ConvNets x 300 epochs (MTT protocol shortened; one batch an epoch at IPC 1 and 10) for the random
  start, MTT and MTT + MIM4DD at each IPC: 6 sets at ~8 s (assumed) -> ~50 s.
Total ~90 + ~15 + 5 + 100 + 110 + 95 + 60 + 50 = ~525 s (~440 with `--no_compile`; the command itself ~410 s). `--time_limit`
(default 300 s of the command's own time) skips any distillation that would start after it, and says so in a record, so
a slower machine still returns what it finished (a slow compile costs distillations: pass `--no_compile` when the
accuracies matter more); with timeout_s 460 the whole lease stays under ~10 min even then.
The smoke size runs every stage of this script except the ZCA fit (its 3072 x 3072 eigendecomposition alone takes
~15 s of a core; tests/test_zca.py covers the fit and its use). One seed: the paired difference is one number per IPC; `--seeds 0 1 2` for more on a longer lease.

Every device-dependent call takes `--device` (train_experts, calibrate_lam, Distiller, evaluate_distilled); every random
draw is on CPU generators, so the CPU and the GPU distil from the same starts.
"""
import argparse, os, shutil, sys, tempfile, time
from pathlib import Path
import numpy as np, torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import bench.common as common
from bench.common import device_name, write_record
from mim4dd.augment import ZCA
from mim4dd.cli import evaluate_distilled
from mim4dd.data import load_dataset, make_fake
from mim4dd.distill import Distiller, calibrate_lam
from mim4dd.mtt import CAPTURES
from mim4dd.experts import ExpertStore, fit_zca, train_experts
from mim4dd.spec import RunSpec

LABEL = 'CIFAR-10 (JPEG q75 copy)'
SIZES = {
    'gpu': dict(n_experts=4, train_epochs=5, expert_budget=120, seeds=[0], eval_runs=3, eval_epochs=300, batch_real=256, time_limit=300, zca=True, calib_n=3,
                capture=dict(ipc=1, rounds=4, iterations=3),
                ipc={1: dict(syn_steps=50, max_start_epoch=2, iterations=60),
                     10: dict(syn_steps=30, max_start_epoch=4, iterations=60, syn_lr_init=0.01, lr_lr=1e-7)}),
    # CPU, one thread, fake data: every stage once, as small as it goes (1 expert of 1 epoch, 1-2 student steps, 1 iteration,
    # 1 evaluation epoch). No ZCA: its eigendecomposition of 3072 x 3072 alone takes ~15 s of one core (tests/test_zca.py pays it)
    'smoke': dict(n_experts=1, train_epochs=1, expert_budget=None, seeds=[0], eval_runs=1, eval_epochs=1, batch_real=20, time_limit=None, zca=False, calib_n=1,
                  capture=dict(ipc=1, rounds=2, iterations=1),
                  ipc={1: dict(syn_steps=2, expert_epochs=1, max_start_epoch=1, iterations=1),
                       10: dict(syn_steps=1, expert_epochs=1, max_start_epoch=1, iterations=1, batch_syn=10, syn_lr_init=0.01, lr_lr=1e-7)}),
}
METHODS = ('random', 'mtt', 'mtt+mim')

class Recorder:
    "write_record into `results_dir`, copying the file to `mirror` after every record"
    def __init__(self, name, results_dir=None, mirror=None, **common_fields):
        self.name, self.mirror, self.common = name, mirror, common_fields
        if results_dir is not None: common.RESULTS = Path(results_dir)
    def __call__(self, suffix='', **rec):
        out = write_record(self.name + suffix, **self.common, **rec)
        if self.mirror is not None:
            Path(self.mirror).mkdir(parents=True, exist_ok=True)
            shutil.copy(common.RESULTS / f'{self.name}{suffix}.jsonl', Path(self.mirror) / f'{self.name}{suffix}.jsonl')
        return out

def fake_cifar(root) -> Path:
    "A tiny CIFAR-10-shaped JPEG zip (11 train / 5 test images a class) where the real one would be"
    make_fake('cifar10', root, n_per_class=11, n_test_per_class=5, source='jpg')
    return Path(root)

def cpu_zca(train, device) -> ZCA:
    "The one ZCA fit (experts.fit_zca, [0, 1] pixels), computed on `device`, kept on the CPU"
    z = fit_zca(train.to(device))
    return ZCA.from_state_dict({k: v.cpu() if torch.is_tensor(v) else v for k, v in z.state_dict().items()})

def cifar_spec(size, root, store, n_experts, ipc, iterations, seed, device, mtt) -> RunSpec:
    "The run spec of one MTT distillation of this script (`mtt`: the size's MTT fields for the IPC, and any more)"
    return RunSpec.from_dict(dict(data=dict(name='cifar10', root=None if root is None else str(root)),
                                  experts=dict(store=str(store.root), n_experts=n_experts, train_epochs=size['train_epochs']),
                                  loop=dict(base='mtt', ipc=ipc, iterations=iterations, seed=seed, batch_real=size['batch_real'],
                                            checkpoint_every=0, device=str(device)),
                                  mtt=dict(mtt, zca=size['zca']), eval=dict(runs=size['eval_runs'], epochs=size['eval_epochs'])))

def time_capture(a, size, root, store, n_experts, train, rec):
    "Issue 14's launch-bound case: the exact mode eager against its steps replayed from CUDA graphs, interleaved, one record"
    c = size['capture']; ipc, b = c['ipc'], dict(size['ipc'][c['ipc']]); b.pop('iterations')
    spec = cifar_spec(size, root, store, n_experts, ipc, c['rounds'] * c['iterations'], 0, a.device, dict(b, mode='exact'))
    caps = [k for k in CAPTURES if not (k == 'compile' and a.no_compile)]
    runs = {k: Distiller(spec.override(f'mtt.capture={k}').distill_config(), train, store, device=a.device) for k in caps}
    sync = (lambda: torch.cuda.synchronize(a.device)) if str(a.device).startswith('cuda') else (lambda: None)
    times = {k: [] for k in runs}
    for _ in range(c['rounds']):  # round 0 holds the captures (and the first launches of both): left out of the median
        for k, d in runs.items():
            sync(); t0 = time.perf_counter()
            for _ in range(c['iterations']): d.step()
            sync(); times[k].append((time.perf_counter() - t0) / c['iterations'])
    eager, graphed = runs['eager'], runs['cuda_graphs']
    moved = float((eager.x_syn.detach() - eager.x_init).abs().max())
    med = {k: float(np.median(v[1:] if len(v) > 1 else v)) for k, v in times.items()}
    graphs = graphed.base.matcher._graphs
    extra = {}
    if 'compile' in runs:  # another arithmetic (forward over reverse, other kernels): equal to rounding, not bit for bit
        extra = dict(speedup_compile=med['eager'] / med['compile'],
                     max_pixel_diff_compile=float((eager.x_syn - runs['compile'].x_syn).detach().abs().max()))
    rec('_capture', ipc=ipc, syn_steps=b['syn_steps'], rounds=c['rounds'], iterations_per_round=c['iterations'],
        seconds_per_iteration=times, median_s=med, speedup=med['eager'] / med['cuda_graphs'], graphs_captured=graphs.captured,
        step_kinds=len(graphs.slots), max_pixel_diff=float((eager.x_syn - graphed.x_syn).detach().abs().max()), pixels_moved=moved,
        load=os.getloadavg()[0], **extra)
    print(f"capture at IPC {ipc}: eager {med['eager']:.3f} s, CUDA graphs {med['cuda_graphs']:.3f} s an iteration "
          f"({graphs.captured} graphs)" + (f", compiled {med['compile']:.3f} s" if 'compile' in med else ''), flush=True)

def _main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--data_root', help='folder holding cifar10-jpg.zip (or cifar-10-batches-py/)')
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--smoke', action='store_true', help='the CPU size on fake CIFAR-shaped data (ignores --data_root)')
    ap.add_argument('--seeds', nargs='+', type=int, help="distillation seeds (default: the size's)")
    ap.add_argument('--ipcs', nargs='+', type=int, default=[1, 10])
    ap.add_argument('--ratio', type=float, default=0.2, help='lam * L_MIM / L_MTT at the start (calibrate_lam)')
    ap.add_argument('--time_limit', type=float, help="seconds after which no new stage starts (default: the size's)")
    ap.add_argument('--work', help='experts (default: runs/gpu_cifar, or a temporary folder for --smoke)')
    ap.add_argument('--cache_dir', help="load_dataset's decoded-data cache (default: its own; a temporary one for --smoke)")
    ap.add_argument('--results_dir', help='where the records go (default: bench/results; a temporary folder for --smoke)')
    ap.add_argument('--mirror', help='also copy the records here after each one (e.g. $OUT on the device machine)')
    ap.add_argument('--threads', type=int, help='torch.set_num_threads (default: 1 for --smoke)')
    ap.add_argument('--out', default='gpu_cifar')
    ap.add_argument('--note', default='')
    ap.add_argument('--no_capture', action='store_true', help="skip timing the exact mode's steps as CUDA graphs against eager")
    ap.add_argument('--no_compile', action='store_true', help="time CUDA graphs against eager without capture='compile'")
    a = ap.parse_args(argv)
    t_start, size = time.time(), SIZES['smoke' if a.smoke else 'gpu']
    if [i for i in a.ipcs if i not in size['ipc']]: ap.error(f"--ipcs: this size has budgets for IPC {sorted(size['ipc'])} only")
    threads = a.threads or (1 if a.smoke else None)
    if threads: torch.set_num_threads(threads)
    seeds, limit = a.seeds or size['seeds'], a.time_limit if a.time_limit is not None else size['time_limit']
    tmp = Path(tempfile.mkdtemp(prefix='gpu_cifar_')) if a.smoke else None
    root = fake_cifar(tmp / 'data') if a.smoke else a.data_root
    work = Path(a.work) if a.work else (tmp / 'work' if a.smoke else Path('runs/gpu_cifar'))
    results_dir = a.results_dir or (tmp / 'results' if a.smoke else None)
    label = 'fake CIFAR-10-shaped data (smoke)' if a.smoke else LABEL
    t0 = time.time()
    train, test = load_dataset('cifar10', root=root, cache_dir=a.cache_dir or (tmp / 'cache' if a.smoke else None))
    secs = dict(load=time.time() - t0)
    if not a.smoke and 'JPEG' not in train.info.source: label = 'CIFAR-10'
    train, test = train.to(a.device), test.to(a.device)  # whitening and sampling then run where the training does
    rec = Recorder(a.out, results_dir, a.mirror, data=label, size='smoke' if a.smoke else 'gpu', device=device_name(a.device),
                   experts=f"{size['n_experts']} x {size['train_epochs']} epochs", note=a.note)
    late = lambda: limit is not None and time.time() - t_start > limit

    t0 = time.time()
    store = ExpertStore(work / 'experts')
    zca = (store.load_zca() or store.save_zca(cpu_zca(train, a.device))) if size['zca'] else None
    secs['zca'] = time.time() - t0; t0 = time.time()
    for n in range(1, size['n_experts'] + 1):  # one at a time: past `expert_budget` seconds, stop at 2 (or what is there)
        train_experts(train, test, store, n_experts=n, n_epochs=size['train_epochs'], zca=zca, seed=0, device=a.device)
        if n >= 2 and size['expert_budget'] is not None and time.time() - t0 > size['expert_budget']: break
    secs['experts'] = time.time() - t0
    expert_acc = [store.manifest(i)['test_acc'][-1] for i in store.ids()]
    if len(expert_acc) < size['n_experts']: rec.common['experts'] = f"{len(expert_acc)} x {size['train_epochs']} epochs (expert_budget reached)"
    print(f'experts: test accuracy {np.round(expert_acc, 3).tolist()} ({secs["experts"]:.0f} s)', flush=True)

    if not a.no_capture and not late():
        t0 = time.time(); time_capture(a, size, root, store, len(expert_acc), train, rec); secs['capture'] = time.time() - t0

    for ipc in a.ipcs:
        b = dict(size['ipc'][ipc]); iterations = b.pop('iterations')
        accs, lam = {m: {} for m in METHODS}, None
        for seed in seeds:
            for method in ('mtt', 'mtt+mim'):
                if late():
                    rec(ipc=ipc, method=method, seed=seed, skipped=f'time limit {limit} s reached'); continue
                spec = cifar_spec(size, root, store, len(expert_acc), ipc, iterations, seed, a.device, b)
                cfg = spec.distill_config()
                t0 = time.time()
                try:
                    if method == 'mtt+mim':
                        if lam is None:
                            lam = calibrate_lam(cfg, train, store, ratio=a.ratio, n=size['calib_n'], device=a.device)
                            secs[f'calibrate_ipc{ipc}'] = time.time() - t0; t0 = time.time()
                        spec = spec.override(f'mim.lam={lam!r}'); cfg = spec.distill_config()
                    d = Distiller(cfg, train, store, device=a.device)
                    start = d.result()  # iteration 0: the random real images both methods start from
                    ds = d.run(progress=False)
                except FloatingPointError as e:
                    rec(ipc=ipc, method=method, seed=seed, failed=str(e), seconds=time.time() - t0); continue
                distill_s = time.time() - t0
                losses = [h['loss_base'] for h in d.history]
                for name, s in {method: ds, **({'random': start} if method == 'mtt' else {})}.items():
                    r = evaluate_distilled(s, test, n_runs=size['eval_runs'], n_epochs=size['eval_epochs'], seed=seed, device=a.device)
                    accs[name][seed] = r.acc_final_mean
                    print(f'ipc {ipc} {name} seed {seed}: {r} (distilled in {distill_s:.0f} s)', flush=True)
                    rec(ipc=ipc, method=name, seed=seed, acc=r.acc_final_mean, acc_std=r.acc_final_std, accs=r.accs,
                        acc_best=r.acc_best_mean, protocol=r.protocol, eval_lr=r.lr, eval_seconds=r.seconds,
                        **({} if name == 'random' else dict(
                            spec=spec.to_dict(), lam=cfg.lam, iterations=iterations, mtt=dict(b), zca=size['zca'], syn_lr_final=ds.syn_lr,
                            loss_first=losses[0], loss_last10=float(np.mean(losses[-10:])), distill_seconds=distill_s,
                            seconds_per_iteration=distill_s / iterations)),
                        load=os.getloadavg()[0])
        both = sorted(set(accs['mtt']) & set(accs['mtt+mim']))
        if both:
            d = np.array([accs['mtt+mim'][s] - accs['mtt'][s] for s in both])
            rec('_paired', ipc=ipc, method='mtt+mim - mtt', seeds=both, per_seed=d.tolist(), diff_mean=float(d.mean()),
                diff_std=float(d.std(ddof=1)) if len(d) > 1 else None, lam=lam, ratio=a.ratio)
            print(f'ipc {ipc}: MTT + MIM4DD - MTT = {d.mean():+.2f} points over seeds {both}', flush=True)
    secs['total'] = time.time() - t_start
    rec('_timing', seconds=secs, seconds_per_expert_epoch=secs['experts'] / (len(expert_acc) * size['train_epochs']),
        expert_test_acc=expert_acc, time_limit=limit, seeds=seeds, ipcs=a.ipcs, threads=torch.get_num_threads(), load=os.getloadavg()[0])
    print(f'done in {secs["total"]:.0f} s: {secs}', flush=True)
    if tmp is not None:  # the smoke's fake data, experts and cache; its records stay (in --results_dir, else tmp/results)
        for sub in ('data', 'work', 'cache'): shutil.rmtree(tmp / sub, ignore_errors=True)
        if not any(tmp.iterdir()): tmp.rmdir()
        print(f'records in {common.RESULTS}', flush=True)
    return secs

def main(argv=None):
    "Run (see the module's docstring); bench/results stays where it was for whoever imported bench.common"
    results = common.RESULTS
    try: return _main(argv)
    finally: common.RESULTS = results

if __name__ == '__main__': main()
