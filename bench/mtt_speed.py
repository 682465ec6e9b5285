"""Time and peak memory of one MTT iteration against syn_steps and IPC, for three implementations:

- `plain`: MTT's reference loop (a list of student parameter vectors, `autograd.grad(create_graph=True)` each step,
  one backward at the end), written here verbatim as the baseline;
- `full`:  `mim4dd.mtt.TrajectoryMatcher(mode='full')` (the same maths, keeps every step's graph);
- `exact`: `mim4dd.mtt.TrajectoryMatcher(mode='exact')` (constant-memory reverse pass, same gradients);
- `exact_graphs` (asked for with `--modes`): the exact mode with `capture='cuda_graphs'`, each student step replayed
  from a captured CUDA graph (on a CPU the same steps run eagerly);
- `exact_compile` (asked for with `--modes`): the exact mode with `capture='compile'`, its two step functions compiled
  by inductor (keep `--warmup` >= 1: the first iteration compiles; on a CPU its peak RSS includes the compiler's).

DSA runs inside every unroll, its family cycling through the strategy (rather than drawn at random) so that every
mode does the same augmentation work. Every (mode, syn_steps, ipc) runs in a fresh subprocess so that its peak resident memory (ru_maxrss) is its own.
Each record also holds the FLOP count of one iteration (torch.utils.flop_counter.FlopCounterMode: matmuls and
convolutions, forward and all backward passes) and the achieved FLOP/s. Times are wall-clock
and process CPU time (with one intra-op thread, CPU time is what an idle machine's wall time would be: it does not
count the time other processes hold the core, which makes it the stable measure on a shared machine). Results are
appended to bench/results/mtt_speed.jsonl; `bench/mtt_speed.py --summary` prints the ratios from that file.

    python bench/mtt_speed.py --quick          # digits-sized ConvNet, a minute or two on 2 CPU cores
    python bench/mtt_speed.py                  # CIFAR-10-sized ConvNet (3x32x32, width 128, depth 3)
    python bench/mtt_speed.py --device cuda --ipc 1,10,50 --syn_steps 10,20,40,80 --repeats 10 --max_full_gb 60
    python bench/mtt_speed.py --device cuda --ipc 1,10 --syn_steps 50 --modes exact,exact_graphs,full --repeats 10  # graphs

On a GPU, times are taken after torch.cuda.synchronize() and memory is the CUDA allocator's peak above what the
process held before the timed iterations (torch.cuda.max_memory_allocated), not the resident set size. The record
also keeps the allocator's peak reservation (peak_reserved_mb, torch.cuda.max_memory_reserved): memory that CUDA graphs'
pools hold between replays counts there, not in the allocated peak.
"""
import argparse, json, os, resource, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHAPES = {'cifar10': dict(channels=3, im_size=32, n_classes=10, width=128),
          'digits': dict(channels=1, im_size=8, n_classes=10, width=128)}


def _rss_mb():
    "Current resident set size in MB (Linux /proc)"
    with open('/proc/self/statm') as f: return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def plain_iteration(net, x_syn, y_syn, syn_lr, theta_start, theta_target, syn_steps, batch_syn, dsa, generator):
    "MTT's reference unroll (distill.py of the MTT repo), with mim4dd's functional forward and DSA"
    import torch, torch.nn.functional as F
    from mim4dd.nets import functional_forward
    student_params = [theta_start.clone().requires_grad_(True)]
    indices_chunks = []
    for step in range(syn_steps):
        if not indices_chunks: indices_chunks = list(torch.split(torch.randperm(len(x_syn), generator=generator), batch_syn))
        these = indices_chunks.pop()
        x, y = x_syn[these], y_syn[these]
        if dsa is not None: x = dsa(x, generator=generator)
        ce = F.cross_entropy(functional_forward(net, student_params[-1], x), y)
        grad = torch.autograd.grad(ce, student_params[-1], create_graph=True)[0]
        student_params.append(student_params[-1] - syn_lr * grad)
    param_loss = F.mse_loss(student_params[-1], theta_target, reduction='sum')
    param_dist = F.mse_loss(theta_start, theta_target, reduction='sum')
    loss = param_loss / param_dist
    loss.backward()
    return loss.item()


def problem(shape:str, ipc:int, dev) -> tuple:
    "(generator, net, x_syn, y_syn, theta_start, theta_target, step_size): one MTT iteration's inputs on `dev`, seeded"
    import torch
    from mim4dd.nets import get_network, flat_params
    from mim4dd.mtt import StepSize
    s, g = SHAPES[shape], torch.Generator().manual_seed(0)
    net = get_network('ConvNet', s['channels'], s['n_classes'], s['im_size'], seed=0, width=s['width']).to(dev)
    x_syn = torch.randn(ipc * s['n_classes'], s['channels'], s['im_size'], s['im_size'], generator=g).to(dev).requires_grad_()
    y_syn = torch.arange(s['n_classes']).repeat_interleave(ipc).to(dev)
    theta_start = flat_params(net)
    theta_target = theta_start + 0.01 * torch.randn(theta_start.shape, generator=g).to(dev)
    return g, net, x_syn, y_syn, theta_start, theta_target, StepSize(0.01, device=dev)


def child(cfg):
    "Run one configuration in this (fresh) process and print one JSON line"
    import torch
    torch.set_num_threads(cfg['threads'])
    dev = torch.device(cfg.get('device', 'cpu'))
    cuda = dev.type == 'cuda'
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    from torch.utils.flop_counter import FlopCounterMode
    from mim4dd.mtt import TrajectoryMatcher, MTTConfig
    g, net, x_syn, y_syn, theta_start, theta_target, step_size = problem(cfg['shape'], cfg['ipc'], dev)
    n_syn = len(x_syn)
    dsa = None
    if cfg['dsa']:
        from mim4dd.augment import DSA, dsa_strategy_for
        class CycleDSA(DSA):
            "DSA whose family cycles through the strategy instead of being drawn: the same work in every mode"
            k = 0
            def sample(self, x, generator=None, **kw):
                self.k += 1
                return super().sample(x, generator, family=self.families[(self.k - 1) % len(self.families)])
        dsa = CycleDSA(dsa_strategy_for(cfg['shape']))
    def make_iteration(syn_steps, counting=False):  # counting: under the FLOP counter, which captures no CUDA graph
        if cfg['mode'] == 'plain':
            return lambda: plain_iteration(net, x_syn, y_syn, step_size.value, theta_start, theta_target, syn_steps, n_syn, dsa, g)
        capture = {'exact_graphs': 'cuda_graphs', 'exact_compile': 'compile'}.get(cfg['mode'], 'eager')
        config = MTTConfig(syn_steps=syn_steps, expert_epochs=1, max_start_epoch=1, dsa=cfg['dsa'],
                           capture='eager' if counting else capture)  # the FLOP counter counts the eager steps
        matcher = TrajectoryMatcher(net, [torch.stack([theta_start, theta_target])], config, dsa=dsa, generator=g,
                                    mode='full' if cfg['mode'] == 'full' else 'exact')
        return lambda: matcher.loss_and_grad(x_syn, y_syn, step_size)
    def reset(f):
        def run():
            if dsa is not None: dsa.k = 0  # every iteration sees the same sequence of families
            return f()
        return run
    iteration = reset(make_iteration(cfg['syn_steps']))
    if cuda: sync(); torch.cuda.reset_peak_memory_stats(dev)
    base = torch.cuda.memory_allocated(dev) / 2**20 if cuda else _rss_mb()
    times, cpu = [], []
    for r in range(cfg['repeats'] + cfg['warmup']):
        x_syn.grad = None; step_size.zero_grad()
        sync(); t0, c0 = time.perf_counter(), time.process_time()
        iteration(); sync()
        times.append(time.perf_counter() - t0); cpu.append(time.process_time() - c0)
    reserved = torch.cuda.max_memory_reserved(dev) / 2**20 if cuda else None  # CUDA graphs' pools are reserved, not allocated
    if cuda: peak = torch.cuda.max_memory_allocated(dev) / 2**20
    else: peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB -> MB on Linux
    # FLOPs: every step has the same shapes (the whole synthetic set per step), so one iteration's count is affine in
    # syn_steps; count 1- and 2-step iterations and extrapolate rather than run a long one under the counter.
    counts = []
    for n in (1, 2):
        with FlopCounterMode(display=False) as fc: reset(make_iteration(n, counting=True))()
        counts.append(fc.get_total_flops())
    flops = counts[0] + (cfg['syn_steps'] - 1) * (counts[1] - counts[0])
    times, cpu = times[cfg['warmup']:], cpu[cfg['warmup']:]
    t, c = sorted(times)[len(times) // 2], sorted(cpu)[len(cpu) // 2]
    print(json.dumps(dict(cfg, seconds_per_iter=t, seconds_all=times, cpu_seconds_per_iter=c, cpu_seconds_all=cpu, peak_rss_mb=peak, base_rss_mb=base, peak_reserved_mb=reserved,
                          peak_minus_base_mb=peak - base, flops_per_iter=flops, flops_per_s=flops / t, flops_per_cpu_s=flops / c, n_syn=n_syn,
                          n_params=theta_start.numel())), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--quick', action='store_true', help='digits-sized net, small grid')
    ap.add_argument('--shape', choices=sorted(SHAPES), default=None)
    ap.add_argument('--modes', default='plain,full,exact', help="any of plain, full, exact, exact_graphs (exact's steps replayed "
                    "from CUDA graphs: on a GPU; on a CPU it runs them eagerly), exact_compile (compiled by inductor)")
    ap.add_argument('--syn_steps', default=None, help='comma-separated')
    ap.add_argument('--ipc', default=None, help='comma-separated')
    ap.add_argument('--repeats', type=int, default=None, help='timed iterations per process (median recorded)')
    ap.add_argument('--rounds', type=int, default=1, help='fresh processes per (mode, config), interleaved across modes')
    ap.add_argument('--threads', type=int, default=1, help='intra-op threads (1: stable timings on a shared machine)')
    ap.add_argument('--device', default='cpu', help="'cpu' or 'cuda' (peak memory is then the CUDA allocator's)")
    ap.add_argument('--warmup', type=int, default=None, help='untimed iterations first (default: 2 with --quick, else 1)')
    ap.add_argument('--no_dsa', action='store_true')
    ap.add_argument('--max_full_gb', type=float, default=8., help='skip full/plain configs whose graph would exceed this (estimated)')
    ap.add_argument('--child', default=None, help=argparse.SUPPRESS)
    ap.add_argument('--dry', action='store_true', help='print records, do not write them')
    ap.add_argument('--summary', action='store_true', help='print the table of medians and ratios from the results file')
    ap.add_argument('--tag', default=None, help='label of this run in the records (default: the start time); --summary groups by it')
    a = ap.parse_args()
    if a.child: return child(json.loads(a.child))
    if a.summary: return summary(tag=a.tag)
    from bench.common import write_record, device_name
    shape = a.shape or ('digits' if a.quick else 'cifar10')
    steps = [int(s) for s in (a.syn_steps or ('2,4,8,16' if a.quick else '5,10,20,40')).split(',')]
    ipcs = [int(s) for s in (a.ipc or ('1,10' if a.quick else '1,10')).split(',')]
    repeats = a.repeats or (5 if a.quick else 2)
    warmup = a.warmup if a.warmup is not None else (2 if a.quick else 1)
    tag = a.tag or time.strftime('%Y-%m-%dT%H:%M:%S')
    per_step_gb = {}  # measured graph memory per step of the full unroll, to skip configs that would not fit
    for ipc in ipcs:
        for n in steps:
          for rnd in range(a.rounds):
            for mode in a.modes.split(','):
                if mode not in ('exact', 'exact_graphs', 'exact_compile') and ipc in per_step_gb and per_step_gb[ipc] * n > a.max_full_gb:
                    print(f'skip {mode} ipc={ipc} syn_steps={n}: ~{per_step_gb[ipc] * n:.1f} GB > --max_full_gb', flush=True)
                    continue
                cfg = dict(mode=mode, syn_steps=n, ipc=ipc, shape=shape, repeats=repeats, warmup=warmup, threads=a.threads,
                           dsa=not a.no_dsa, round=rnd, device=a.device)
                r = subprocess.run([sys.executable, __file__, '--child', json.dumps(cfg)], capture_output=True, text=True, cwd=ROOT)
                if r.returncode != 0: print(r.stderr[-2000:], flush=True); continue
                rec = json.loads(r.stdout.strip().splitlines()[-1])
                if mode == 'full': per_step_gb[ipc] = max(per_step_gb.get(ipc, 0), rec['peak_minus_base_mb'] / 1024 / n)
                name = device_name(a.device) if a.device.startswith('cuda') else device_name('cpu').split(',')[0] + f', {a.threads} threads)'
                rec.update(device=name, loadavg_1min=os.getloadavg()[0],
                           bench='mtt_speed', tag=tag)
                print(json.dumps({k: rec[k] for k in ('mode', 'ipc', 'syn_steps', 'round', 'seconds_per_iter', 'cpu_seconds_per_iter', 'peak_rss_mb',
                                                       'peak_minus_base_mb', 'flops_per_iter', 'flops_per_s')}), flush=True)
                if not a.dry: write_record('mtt_speed', **rec)


def summary(path=None, tag=None):
    "Medians over rounds per (tag or commit, shape, ipc, syn_steps, mode), with the ratios exact/full, full/plain and exact_graphs/exact"
    from bench.common import RESULTS
    from collections import defaultdict
    from statistics import median
    recs = [json.loads(l) for l in open(path or RESULTS/'mtt_speed.jsonl')]
    recs = [r for r in recs if tag is None or r.get('tag') == tag]
    groups = defaultdict(list)
    for r in recs: groups[(r.get('tag', r['commit']), r['shape'], r['threads'], r['ipc'], r['syn_steps'], r['mode'])].append(r)
    med = {k: dict(wall=median(r['seconds_per_iter'] for r in v), cpu=median(r['cpu_seconds_per_iter'] for r in v),
                   mem=median(r['peak_minus_base_mb'] for r in v), gflop=v[0]['flops_per_iter'] / 1e9, n=len(v))
           for k, v in groups.items()}
    print(f"{'tag/commit':19} {'shape':8} thr ipc   N mode   n  wall_s   cpu_s  mem_MB   GFLOP  GFLOP/s(cpu)  exact/full(cpu,wall)  full/plain(cpu,wall)")
    for k in sorted(med, key=lambda k: (k[0], k[1], k[2], k[3], k[4], ['plain', 'full', 'exact', 'exact_graphs', 'exact_compile'].index(k[5]))):
        m, base = med[k], k[:5]
        ratio = lambda a, b: (f"{med[base + (a,)]['cpu'] / med[base + (b,)]['cpu']:.2f}, {med[base + (a,)]['wall'] / med[base + (b,)]['wall']:.2f}"
                              if base + (a,) in med and base + (b,) in med else '')
        extra, col = {'exact': (ratio('exact', 'full'), 'e/f'), 'full': (ratio('full', 'plain'), 'f/p'),
                      'exact_graphs': (ratio('exact_graphs', 'exact'), 'g/e'),
                      'exact_compile': (ratio('exact_compile', 'exact'), 'c/e')}.get(k[5], ('', ''))
        print(f"{k[0]:19} {k[1]:8} {k[2]:3} {k[3]:3} {k[4]:3} {k[5]:6} {m['n']:2} {m['wall']:7.3f} {m['cpu']:7.3f} {m['mem']:7.1f} "
              f"{m['gflop']:7.2f} {m['gflop'] / m['cpu']:10.2f}    {col} {extra}")


if __name__ == '__main__': main()
