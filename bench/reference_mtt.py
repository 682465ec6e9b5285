"""The reference MTT code run unmodified beside ours, from the same experts and the same starting images (issue 13's
question: is our CIFAR-10 IPC 1 gap the loop's or the starting images'?).

    G=/work/.mirror/GeorgeCazenavette+mtt-distillation/repo; mkdir -p /tmp/mtt_ref     # the code files only: `git archive`
    for f in distill.py utils.py networks.py reparam_module.py; do git --git-dir $G show HEAD:$f > /tmp/mtt_ref/$f; done
    python bench/reference_mtt.py --mtt_repo /tmp/mtt_ref --seed 0 --threads 1 --set eval.runs=3   # ~22 min on one core
    python bench/reference_mtt.py --compare --set eval.runs=3      # pair with bench/mtt_curve.py's runs of the same seeds
    python bench/reference_mtt.py --mtt_repo /tmp/mtt_ref --speed 2 --iterations 20 --threads 1   # wall time, ~8 min

The reference (GeorgeCazenavette/mtt-distillation) is not part of mim4dd and nothing of it is copied here: its
`distill.py` is executed as it is, from the checkout given by `--mtt_repo`, with four things put in its way:
- `utils.get_dataset` returns a training set holding only our starting images (the images `mim4dd.distill.Distiller`
  starts from for the seed, in normalised pixels), so its `get_images(c, ipc)` picks exactly those;
- our experts (bench/evidence.py's budget store) are written in its replay-buffer format (a list of trajectories, each a
  list of epochs, each the list of the ConvNet's parameter tensors; the parameter order and shapes are checked);
- `utils.evaluate_synset` is replaced by a function that keeps the images and step size it is handed (at iteration 0 and
  at the last iteration), and `wandb` by a stand-in that keeps the matching loss of every iteration;
- `Tensor.cuda` returns the tensor when no GPU is present (the reference moves images to the GPU to save them).
Its own randomness is left alone: it reseeds torch from the clock at every network it builds, so a run of it is one
draw and is not reproducible; our runs are. The settings are the budget's MTT fields (bench/evidence.py, cifar10 IPC 1,
with any `--set`): syn_steps, expert_epochs, max_start_epoch, lr_img, lr_lr, syn_lr_init (its lr_teacher); it learns the
raw step size, so the comparison is against `mtt.syn_lr_param=raw`, the budget's.

The final images are evaluated by our evaluator exactly as bench/mtt_curve.py evaluates ours (the budget's networks
and epochs, the same evaluation seed, at the learned step size), so a reference run and our run of the same seed share
the starting images, the experts and the evaluation networks' initialisations. Records (bench/results/reference_mtt.jsonl):
one per run with accuracy, learned step size, matching loss per iteration and seconds per iteration; `--compare` writes
one record (reference_mtt_paired.jsonl) per metric pairing them with mtt_curve.jsonl's points at the same iteration.
`--speed R` times the two loops in one process instead, `--iterations` each, alternating R rounds (reference, then ours:
`Distiller.step` from the same start), and writes the median seconds an iteration of each (reference_mtt_speed.jsonl).
"""
import argparse, json, os, runpy, sys, tempfile, time, types
from pathlib import Path
import numpy as np, torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import RESULTS, device_name, write_record
from bench.evidence import ROOTS, budget_spec
from mim4dd.cpu import keep_freed_memory

DATASET, IPC = 'cifar10', 1

def _spec(iterations:int, seed:int, sets, work:str):
    try: return budget_spec(DATASET, IPC, 'mtt', work, iterations=iterations, seed=seed).override(*sets).check()
    except ValueError as e: raise SystemExit(f'reference_mtt: {e}')

def reference_args(mtt, iterations:int, buffer_path:str) -> list:
    "distill.py's command line for our MTT settings `mtt` (an MTTConfig); refuses settings it has no flag for"
    if mtt.zca or not mtt.dsa or mtt.batch_syn is not None or mtt.momentum != 0.5 or mtt.precision != 'float32':
        raise SystemExit('reference_mtt: the comparison runs without ZCA, with DSA, every image in each step, momentum 0.5, '
                         f'float32 (got zca={mtt.zca}, dsa={mtt.dsa}, batch_syn={mtt.batch_syn}, momentum={mtt.momentum}, precision={mtt.precision})')
    return ['--dataset', 'CIFAR10', '--ipc', str(IPC), '--syn_steps', str(mtt.syn_steps), '--expert_epochs', str(mtt.expert_epochs),
            '--max_start_epoch', str(mtt.max_start_epoch), '--lr_img', repr(float(mtt.lr_img)), '--lr_lr', repr(float(mtt.lr_lr)),
            '--lr_teacher', repr(float(mtt.syn_lr_init)), '--Iteration', str(iterations), '--eval_it', str(iterations),
            '--num_eval', '1', '--buffer_path', buffer_path, '--data_path', 'unused']

def write_buffer(store, names_shapes, ref_net, path:Path) -> int:
    "Our experts as the reference's replay_buffer_0.pt; the reference ConvNet's parameters must match ours in order and shape"
    ref = [tuple(p.shape) for p in ref_net.parameters()]
    ours = [tuple(s) for _, s in names_shapes]
    if ref != ours: raise SystemExit(f'reference_mtt: the reference ConvNet has parameters {ref}, ours {ours}')
    sizes = [int(np.prod(s)) for s in ours]
    buffer = []
    for i in store.ids():
        traj = store.load(i)
        buffer.append([[p.reshape(s).clone() for p, s in zip(torch.as_tensor(traj[e]).float().split(sizes), ours)]
                       for e in range(len(traj))])
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(buffer, path)
    return len(buffer)

def _mtt_fields(mtt, *extra) -> dict:
    "The MTT settings a record states (those distill.py takes, and `extra` fields)"
    keys = ('syn_steps', 'expert_epochs', 'max_start_epoch', 'lr_img', 'lr_lr', 'syn_lr_init', *extra)
    return {k: getattr(mtt, k) for k in keys}

def _wandb_stub(losses:list, times:list):
    "What distill.py uses of wandb, keeping the matching loss (and its time) of every iteration"
    class Config:
        def __init__(self): self._items = {}
    w = types.ModuleType('wandb'); w.config = Config(); w.run = types.SimpleNamespace(name='reference_mtt')
    def init(config=None, **kw): w.config._items = dict(vars(config))
    def log(d, step=None):
        if 'Grand_Loss' in d: losses.append(float(d['Grand_Loss'])); times.append(time.perf_counter())
    w.init, w.log, w.finish = init, log, lambda: None
    w.Histogram = w.Image = lambda *a, **k: None
    return w

def run_reference(mtt_repo:Path, x0, y0, mtt, iterations:int, store, names_shapes, workdir:Path) -> dict:
    "Run the reference distill.py from images `x0` (labels `y0`); return the final images, step size, losses, timing"
    if str(mtt_repo) not in sys.path: sys.path.insert(0, str(mtt_repo))
    losses, times, seen = [], [], []
    sys.modules['wandb'] = _wandb_stub(losses, times)
    sys.modules.setdefault('kornia', types.ModuleType('kornia'))  # only its ZCA uses kornia; ZCA is off here
    from mim4dd.vision import import_torchvision
    import_torchvision()  # the reference imports torchvision; this wheel needs the op-schema shim first
    import utils as ref_utils  # the reference's utils.py (on sys.path above)
    n_classes, im_size = int(y0.max()) + 1, tuple(x0.shape[-2:])
    def get_dataset(*a, **k):
        train = [(x0[i], int(y0[i])) for i in range(len(x0))]
        ident = {c: c for c in range(n_classes)}
        return (x0.shape[1], im_size, n_classes, [str(c) for c in range(n_classes)], None, None, train, None, None, None, ident, ident)
    def evaluate_synset(it_eval, net, images, labels, testloader, args, **k):
        seen.append((images.detach().clone(), float(args.lr_net), time.perf_counter()))
        return net, 0., 0.  # never "best": the reference then saves nothing but its iteration-0 images
    ref_utils.get_dataset, ref_utils.evaluate_synset = get_dataset, evaluate_synset
    if not torch.cuda.is_available(): torch.Tensor.cuda = lambda self, *a, **k: self
    ref_net = ref_utils.get_network('ConvNet', x0.shape[1], n_classes, im_size, dist=False)
    n = write_buffer(store, names_shapes, ref_net, workdir / 'buffers' / 'CIFAR10_NO_ZCA' / 'ConvNet' / 'replay_buffer_0.pt')
    argv, cwd = sys.argv, os.getcwd()
    sys.argv = [str(mtt_repo / 'distill.py'), *reference_args(mtt, iterations, str(workdir / 'buffers'))]
    try:
        os.chdir(workdir); t0 = time.perf_counter()
        runpy.run_path(str(mtt_repo / 'distill.py'), run_name='__main__')
        wall = time.perf_counter() - t0
    finally: sys.argv = argv; os.chdir(cwd)
    if len(seen) != 2: raise SystemExit(f'reference_mtt: expected the evaluations at iteration 0 and {iterations}, got {len(seen)}')
    if not torch.equal(seen[0][0], x0): raise SystemExit('reference_mtt: the reference did not start from our images')
    steps = np.diff(times[:iterations + 1])  # iteration i's loss is logged when its update is done
    return dict(x=seen[1][0], syn_lr=seen[1][1], losses=losses[:iterations], n_experts=n, wall=wall,
                seconds_per_iteration=float(np.median(steps)) if len(steps) else None)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--mtt_repo', type=Path, help='a checkout of GeorgeCazenavette/mtt-distillation (distill.py, utils.py, ...)')
    ap.add_argument('--seed', type=int, default=0); ap.add_argument('--iterations', type=int, default=200)
    ap.add_argument('--set', nargs='*', default=[], help='run spec fields, as bench/mtt_curve.py (e.g. eval.runs=3)')
    ap.add_argument('--work', default='runs/evidence', help='experts are read from WORK/cifar10/experts (bench/mtt_curve.py trains them)')
    ap.add_argument('--threads', type=int); ap.add_argument('--note', default='')
    ap.add_argument('--compare', action='store_true', help='pair reference runs with mtt_curve.jsonl runs of the same seeds and settings')
    ap.add_argument('--mtt_commit', help="the reference's commit, recorded (default: git rev-parse HEAD in --mtt_repo)")
    ap.add_argument('--speed', type=int, default=0, help='time R alternating rounds of both loops instead (no evaluation)')
    a = ap.parse_args(argv)
    if a.compare: return compare(a.iterations, a.set)
    if a.mtt_repo is None or not (a.mtt_repo / 'distill.py').is_file():
        raise SystemExit(f'reference_mtt: --mtt_repo must be a checkout of the reference MTT code with distill.py, got {a.mtt_repo}')
    if a.threads: torch.set_num_threads(a.threads)
    kept = keep_freed_memory()  # as bench/mtt_curve.py's runs of ours
    from mim4dd.data import load_dataset
    from mim4dd.distill import Distiller
    from mim4dd.evaluate import evaluate_set
    from mim4dd.experts import ExpertStore
    from mim4dd.nets import param_names, param_shapes
    from bench.evidence import eval_kw
    spec = _spec(a.iterations, a.seed, a.set, a.work)
    store = ExpertStore(spec.experts.store)
    if not list(store.ids()): raise SystemExit(f'reference_mtt: no experts in {spec.experts.store}: run bench/mtt_curve.py first')
    train, test = load_dataset(DATASET, root=ROOTS.get(DATASET))
    d = Distiller(spec.distill_config(), train, store)  # only for the seed's starting images and labels
    x0, y0, mtt = d.x_syn.detach().clone(), d.y_syn.clone(), d.base.mcfg
    names_shapes = list(zip(param_names(d.base.net), param_shapes(d.base.net)))
    ref_commit = a.mtt_commit or os.popen(f'git -C "{a.mtt_repo}" rev-parse HEAD 2>/dev/null').read().strip() or None
    if a.speed: return speed(a, spec, train, store, x0, y0, mtt, names_shapes, ref_commit, kept)
    with tempfile.TemporaryDirectory() as tmp:
        out = run_reference(a.mtt_repo.resolve(), x0, y0, mtt, a.iterations, store, names_shapes, Path(tmp))
    ev = dict(eval_kw(DATASET, IPC), n_runs=spec.eval.runs, n_epochs=spec.eval.epochs)
    res = evaluate_set(out['x'], y0, test, **ev, seed=a.seed, lr=out['syn_lr'])
    L = out['losses']
    rec = write_record('reference_mtt', dataset=DATASET, ipc=IPC, seed=a.seed, implementation='reference distill.py',
                       reference_commit=ref_commit, iterations=a.iterations, experts=f'{out["n_experts"]} x {spec.experts.train_epochs} epochs',
                       mtt=_mtt_fields(mtt),
                       overrides=a.set, eval=ev, acc=res.acc_final_mean, acc_std=res.acc_final_std, protocol=res.protocol,
                       syn_lr=out['syn_lr'], losses=L, loss_mean_by_100=[float(np.mean(L[i:i + 100])) for i in range(0, len(L), 100)],
                       loss_last50=float(np.mean(L[-50:])), seconds_per_iteration=out['seconds_per_iteration'], wall=out['wall'],
                       freed_memory_kept=kept, device=device_name('cpu'), load=os.getloadavg()[0], note=a.note)
    print(f'reference MTT seed {a.seed}: {res.acc_final_mean:.2f} % (alpha {out["syn_lr"]:.4g}, loss over the last 50 '
          f'{rec["loss_last50"]:.4f}, {out["seconds_per_iteration"]:.2f} s an iteration)', flush=True)
    return rec

def speed(a, spec, train, store, x0, y0, mtt, names_shapes, ref_commit, kept) -> dict:
    "Median seconds an iteration of the reference loop and of ours, alternating rounds in this process"
    from mim4dd.distill import Distiller
    ref, ours = [], []
    for r in range(a.speed):
        with tempfile.TemporaryDirectory() as tmp:
            out = run_reference(a.mtt_repo.resolve(), x0, y0, mtt, a.iterations, store, names_shapes, Path(tmp))
        ref.append(out['seconds_per_iteration'])
        d = Distiller(spec.distill_config(), train, store)
        if not torch.equal(d.x_syn.detach(), x0): raise SystemExit('reference_mtt: our start moved between rounds')
        times = []
        for _ in range(a.iterations):
            t0 = time.perf_counter(); d.step(); times.append(time.perf_counter() - t0)
        ours.append(float(np.median(times)))
        print(f'round {r}: reference {ref[-1]:.3f} s an iteration, ours {ours[-1]:.3f} s', flush=True)
    return write_record('reference_mtt_speed', dataset=DATASET, ipc=IPC, seed=a.seed, iterations_per_round=a.iterations, rounds=a.speed,
                        mtt=dict(_mtt_fields(mtt, 'syn_lr_param', 'precision'), mode=spec.distill_config().mode),
                        reference_seconds=ref, ours_seconds=ours, ratio=float(np.median(ours) / np.median(ref)),
                        reference_commit=ref_commit, freed_memory_kept=kept, device=device_name('cpu'),
                        load=os.getloadavg()[0], note=a.note)

def _rows(name:str, results=None) -> list:
    p = Path(results or RESULTS) / f'{name}.jsonl'
    return [json.loads(l) for l in open(p)] if p.exists() else []

def compare(iterations:int, sets, results=None) -> list:
    "Pair each reference run with our mtt_curve run of the same seed, settings and evaluation (newest of each, clean commits)"
    ref = {}
    for r in _rows('reference_mtt', results):
        if r['iterations'] == iterations and r['overrides'] == list(sets): ref[r['seed']] = r
    ours = {}
    for r in _rows('mtt_curve', results):
        if (r.get('dataset'), r.get('ipc'), r.get('iteration'), r.get('iterations_total')) == (DATASET, IPC, iterations, iterations) \
           and r.get('overrides') == list(sets) and r['mtt'].get('syn_lr_param') == 'raw': ours[r['seed']] = r
    seeds = sorted(set(ref) & set(ours))
    if not seeds: raise SystemExit('reference_mtt: no seed has both a reference run and a run of ours at these settings')
    dirty = sorted({r['commit'] for r in [*ref.values(), *ours.values()] if r['commit'].endswith('+dirty')})
    if dirty: raise SystemExit(f'reference_mtt: records of uncommitted trees ({dirty}) are not paired')
    out = []
    for metric, get_r, get_o in (('acc', lambda r: r['acc'], lambda o: o['acc']),
                                 ('loss_last100', lambda r: r['loss_mean_by_100'][-1], lambda o: o['loss_mean'])):
        diff = np.array([get_o(ours[s]) - get_r(ref[s]) for s in seeds])
        p = float(stats.ttest_1samp(diff, 0).pvalue) if len(diff) > 1 and diff.std() > 0 else None
        out.append(write_record('reference_mtt_paired', dataset=DATASET, ipc=IPC, iterations=iterations, overrides=list(sets),
                                metric=metric, comparison='ours (mtt_curve, raw step size) - reference distill.py', seeds=seeds,
                                ours=[get_o(ours[s]) for s in seeds], reference=[get_r(ref[s]) for s in seeds],
                                diff_mean=float(diff.mean()), diff_std=float(diff.std(ddof=1)) if len(diff) > 1 else 0.,
                                p_value=p, ours_commits=sorted({ours[s]['commit'] for s in seeds}),
                                reference_commits=sorted({ref[s]['commit'] for s in seeds})))
        print(f'{metric}: ours - reference = {diff.mean():+.3f} (seeds {seeds}: {np.round(diff, 3).tolist()}, p={p})')
    return out

if __name__ == '__main__': main()
