"""Why the reference MTT lowers the matching loss more than ours: its raw step size against our exponential one, and its
expert sampling against ours, side by side from the same experts, seeds and starting images.

    python bench/mtt_gap.py --threads 1                               # digits IPC 1, 3 seeds, 200 iterations: ~10 min on one core
    python bench/mtt_gap.py --threads 1 --lr_lr 1e-7 --note "CIFAR-10 IPC 1's lr_lr"
    python bench/mtt_gap.py --threads 1 --lr_lr 1e-7 --n_experts 2 --max_start_epoch 1 --syn_steps 50 --lr_img 100 --sampling iid --seeds 0
                                                                      # issue 13's CIFAR-10 recipe, on digits: ~9 min a seed
    python bench/mtt_gap.py --dataset cifar10 --data_root data --device cuda --zca 0 --n_experts 2 --train_epochs 3 \
        --max_start_epoch 1 --syn_steps 50 --lr_img 100 --lr_lr 1e-7 --sampling iid --seeds 0 1 --experts runs/mtt_gap
                                                                      # the issue's own setting, on a GPU (not run yet)

What differs between mim4dd's MTT and the reference code (GeorgeCazenavette/mtt-distillation, distill.py), read side by side:
- the step size: the reference learns alpha itself (`syn_lr`, SGD lr_lr, momentum 0.5); we learn u with
  alpha = alpha_0 exp(u / alpha_0) (`MTTConfig.syn_lr_param`: 'log', the default, or 'raw', the reference's). The two agree
  in value and gradient at the start; afterwards a step of u moves alpha by the raw step times (alpha / alpha_0)^2.
- the experts: the reference walks through a shuffled list of its experts and reshuffles after each pass (every expert
  once per pass); we draw one uniformly at every iteration (`--sampling cycle` imitates the reference here, in this
  script only). Start epochs: both uniform on {0, ..., T+ - 1}.
- everything else is the same: DSA inside the unroll with per-image parameters and one family per step (the six families
  with the reference's ranges; our rotation is the mirror image of theirs, the same distribution), the normalised loss
  ||theta_N - theta*_{t+M}||^2 / ||theta*_t - theta*_{t+M}||^2 (the reference divides both by the parameter count),
  SGD with momentum 0.5 on the pixels with no gradient scaling, all images in every student step (batch_syn None),
  ZCA off in the issue's comparison, the ConvNet (instance norm as GroupNorm(128, 128), average pooling).

Each variant runs the chapter-13 loop (`TrajectoryMatcher` + `mtt_step`, full unroll) with the generators a
`Distiller` would use for the seed (`make_generators`), so `log`/`iid` is our distillation loop exactly. Records (JSON Lines,
bench/results/mtt_gap.jsonl): one per (variant, seed) with the matching-loss and step-size curves, the mean loss over the
last 50 iterations, the loss of the final set on a fixed set of segments (the same for every variant) and its test
accuracy; then one per variant against ours (`log`/`iid`), paired over seeds.
"""
import argparse, os, sys, time
from pathlib import Path
from dataclasses import asdict
import numpy as np, torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import device_name, write_record
from bench.evidence import BUDGET, ROOTS, eval_kw
from mim4dd.augment import DSA, dsa_strategy_for
from mim4dd.data import load_dataset
from mim4dd.distill import make_generators
from mim4dd.evaluate import evaluate_set
from mim4dd.experts import ExpertStore, apply_zca, fit_zca, train_experts
from mim4dd.mtt import Segment, StepSize, TrajectoryMatcher, make_optimizers, mtt_preset, mtt_step
from mim4dd.nets import get_network
from mim4dd.spec import RunSpec

class CyclingMatcher(TrajectoryMatcher):
    "The reference's expert order: a shuffled pass over all experts, reshuffled after each pass; start epoch uniform"
    def sample_segment(self, device=None) -> Segment:
        if not getattr(self, '_queue', None):
            self._queue = [self.ids[int(i)] for i in torch.randperm(len(self.ids), generator=self.generator)]
        e = self._queue.pop(0)
        t = int(torch.randint(self.config.max_start_epoch, (1,), generator=self.generator))
        traj = self._trajectory(e)
        return Segment(traj[t].to(device, torch.float32), traj[t + self.config.expert_epochs].to(device, torch.float32), expert=e, start_epoch=t)

def fixed_loss(net, store, cfg, x, y, alpha:float, dsa=None, n:int=16, seed:int=12345) -> float:
    "Mean matching loss of the set (x, y) at step size alpha over n segments, DSA draws and batches fixed by `seed`"
    m = TrajectoryMatcher(net, store, cfg, dsa=dsa, generator=torch.Generator().manual_seed(seed))
    xs, step = x.detach().clone().requires_grad_(True), StepSize(alpha, 'raw')
    return float(np.mean([m.loss_and_grad(xs, y, step)['loss_mtt'] for _ in range(n)]))

def run_variant(train, store, cfg, ipc:int, seed:int, sampling:str, iterations:int) -> dict:
    "One distillation from seed's starting images; returns the curves and the final set"
    info, gens = train.info, make_generators(seed)
    net = get_network('ConvNet', info.channels, info.n_classes, tuple(info.im_size)).to(train.x.device)
    x, y = train.sample_per_class(ipc, gens['init'])  # the starting images a Distiller draws for this seed
    x = x.detach().clone().requires_grad_(True)
    dsa = DSA(dsa_strategy_for(info.name)) if cfg.dsa else None
    matcher = (CyclingMatcher if sampling == 'cycle' else TrajectoryMatcher)(net, store, cfg, dsa=dsa, generator=gens['base'], mode='full')
    step = StepSize.from_config(cfg)
    opt_img, opt_lr = make_optimizers(x, step, cfg)
    losses, alphas, experts, t0 = [], [], [], time.time()
    for _ in range(iterations):
        out = mtt_step(matcher, x, y, step, opt_img, opt_lr)
        losses.append(out['loss_mtt']); alphas.append(float(step.value.detach())); experts.append(out['expert'])
        if not (np.isfinite(losses[-1]) and alphas[-1] > 0): break  # raw alpha can cross 0: the run is over
    return dict(x=x.detach(), y=y, losses=losses, alphas=alphas, experts=experts, seconds=time.time() - t0, net=net, dsa=dsa)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--dataset', default='digits')
    ap.add_argument('--ipc', type=int, default=1)
    ap.add_argument('--params', nargs='+', default=['log', 'raw'], choices=['log', 'raw'])
    ap.add_argument('--sampling', nargs='+', default=['iid', 'cycle'], choices=['iid', 'cycle'])
    ap.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    ap.add_argument('--iterations', type=int, default=200)
    ap.add_argument('--lr_lr', type=float, help="override the budget's/preset's lr_lr")
    ap.add_argument('--lr_img', type=float, help="override the preset's lr_img")
    ap.add_argument('--syn_steps', type=int, help="override the budget's syn_steps")
    ap.add_argument('--max_start_epoch', type=int, help="override the budget's max_start_epoch")
    ap.add_argument('--zca', type=int, choices=[0, 1], help="override the preset's ZCA (the issue's CIFAR-10 comparison: 0)")
    ap.add_argument('--n_experts', type=int, help="experts (default: bench/evidence.py's BUDGET)")
    ap.add_argument('--train_epochs', type=int, help="training epochs of each expert (default: the BUDGET's)")
    ap.add_argument('--eval_epochs', type=int, help="evaluation epochs (default: the BUDGET's)")
    ap.add_argument('--eval_runs', type=int, help="evaluation networks (default: the BUDGET's)")
    ap.add_argument('--no-eval', action='store_true', help='skip the test-set evaluation')
    ap.add_argument('--experts', default='runs/evidence', help='experts are read from (or trained into) EXPERTS/<dataset>/experts')
    ap.add_argument('--data_root')
    ap.add_argument('--device', default='cpu', help="where experts, distillation and evaluation run ('cuda' on a GPU)")
    ap.add_argument('--threads', type=int)
    ap.add_argument('--note', default='')
    ap.add_argument('--out', default='mtt_gap')
    a = ap.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    b = dict(BUDGET.get(a.dataset, dict(mtt={a.ipc: {}}, eval_epochs=300)))  # a dataset without a BUDGET needs the options
    b.update({k: getattr(a, k) for k in ('n_experts', 'train_epochs') if getattr(a, k) is not None})
    over = dict(b['mtt'].get(a.ipc, {}), **{k: getattr(a, k) for k in ('lr_lr', 'lr_img', 'syn_steps', 'max_start_epoch') if getattr(a, k) is not None})
    if a.zca is not None: over['zca'] = bool(a.zca)
    train, test = load_dataset(a.dataset, root=a.data_root or ROOTS.get(a.dataset))
    store = ExpertStore(Path(a.experts) / a.dataset / ('experts' if not over.get('zca', mtt_preset(a.dataset, a.ipc).zca) else 'experts_zca'))
    store_dir = store.root  # (the store may become a list of its first trajectories below)
    zca = (store.load_zca() or store.save_zca(fit_zca(train))) if mtt_preset(a.dataset, a.ipc, **over).zca else None
    train_experts(train, test, store, n_experts=b['n_experts'], n_epochs=b['train_epochs'], zca=zca, seed=0, device=a.device)
    if len(store.ids()) > b['n_experts']:  # a larger store (e.g. evidence.py's): its first n_experts, as trajectories
        store = [store.load(i) for i in store.ids()[:b['n_experts']]]
    train, test = apply_zca(train, zca).to(a.device), apply_zca(test, zca).to(a.device)  # the experts' and the distillation's space
    ev = dict(eval_kw(a.dataset, a.ipc) if a.dataset in BUDGET else dict(n_runs=3, n_epochs=300, n_evals=5),
              **{k: v for k, v in dict(n_epochs=a.eval_epochs, n_runs=a.eval_runs).items() if v is not None})
    common = dict(dataset=a.dataset, ipc=a.ipc, iterations=a.iterations, experts=f"{b['n_experts']} x {b['train_epochs']} epochs",
                  device=device_name(a.device), note=a.note, eval=None if a.no_eval else ev, mode='full')
    res = {}
    for param in a.params:
        for sampling in a.sampling:
            spec = RunSpec.from_dict(dict(
                data=dict(name=a.dataset, root=a.data_root or (str(ROOTS[a.dataset]) if a.dataset in ROOTS else None)),
                experts=dict(store=str(store_dir.resolve()), n_experts=b['n_experts'],
                             train_epochs=b['train_epochs']),
                loop=dict(ipc=a.ipc, iterations=a.iterations, device=str(a.device)), mtt=dict(over, syn_lr_param=param),
                eval=dict(runs=ev['n_runs'], epochs=ev['n_epochs'])))
            cfg = spec.distill_config().mtt_config(train.info)  # = mtt_preset(dataset, ipc, **over, syn_lr_param=param)
            for seed in a.seeds:
                r = run_variant(train, store, cfg, a.ipc, seed, sampling, a.iterations)
                ok = len(r['losses']) == a.iterations and r['alphas'][-1] > 0 and np.isfinite(r['losses'][-1])
                fixed = fixed_loss(r['net'], store, cfg, r['x'], r['y'], r['alphas'][-1], r['dsa']) if ok else None
                acc = None
                if ok and not a.no_eval:
                    acc = evaluate_set(r['x'], r['y'], test, **ev, seed=seed, lr=r['alphas'][-1], device=a.device).acc_final_mean
                last = float(np.mean(r['losses'][-50:]))
                res[param, sampling, seed] = dict(last50=last if ok else None, fixed=fixed, acc=acc, alpha=r['alphas'][-1])  # pairs: finished runs only
                print(f'{param:>3} {sampling:>5} seed {seed}: last-50 loss {last:.4f}, fixed-segment loss {fixed}, '
                      f'alpha {r["alphas"][-1]:.4g}, acc {acc}, {r["seconds"]:.0f} s', flush=True)
                write_record(a.out, **common, syn_lr_param=param, sampling=sampling, seed=seed, completed=bool(ok),
                             mtt=asdict(cfg), spec=spec.override(f'loop.seed={seed}').to_dict(),
                             loss_last50=last, loss_final=r['losses'][-1], loss_fixed=fixed, acc=acc, syn_lr_final=r['alphas'][-1],
                             loss_curve=[round(v, 5) for v in r['losses']], syn_lr_curve=[float(f'{v:.5g}') for v in r['alphas']],
                             expert_counts=np.bincount(r['experts'], minlength=b['n_experts']).tolist(),
                             seconds=r['seconds'], load=os.getloadavg()[0])
    ref = ('log', 'iid')
    for param in a.params:
        for sampling in a.sampling:
            if (param, sampling) == ref or ref[0] not in a.params or ref[1] not in a.sampling: continue
            for key in ('last50', 'fixed', 'acc'):
                pairs = [(res[param, sampling, s][key], res[(*ref, s)][key]) for s in a.seeds]
                if any(p is None or q is None for p, q in pairs): continue
                d = np.array([p - q for p, q in pairs])
                t = stats.ttest_rel(*zip(*pairs)) if len(d) > 1 and d.std() > 0 else None
                write_record(a.out + '_paired', **common, variant=f'{param}/{sampling} - log/iid', metric=key,
                             diff_mean=float(d.mean()), diff_std=float(d.std(ddof=1)) if len(d) > 1 else 0.,
                             per_seed=d.tolist(), seeds=a.seeds, p_value=float(t.pvalue) if t else None,
                             mtt={k: v for k, v in over.items()})
                print(f'{param}/{sampling} - log/iid, {key}: {d.mean():+.4f} (per seed {np.round(d, 4).tolist()})', flush=True)

if __name__ == '__main__': main()
