"""Is the full unroll doing more work than MTT's plain loop, or only timed differently?

Times `plain` (bench/mtt_speed.py's copy of MTT's loop) and `full` (mim4dd's TrajectoryMatcher) in ONE process,
interleaved iteration by iteration, so that clock, cache and load drift hit both alike; then counts the operators
each dispatches (torch.profiler) and, on a GPU, their kernel time; `--ops` adds where one iteration's time goes, operator
by operator (self time of the 20 most costly aten operators) and by kind (convolutions forward/backward/double backward,
instance norm, pooling, DSA's resampling, matmuls, element-wise and reductions, copies and views: the flat-parameter
plumbing). Shares of self time hold on a loaded machine better than seconds do. Appends one record per setting to
bench/results/unroll_profile.jsonl.

    python bench/profile_unroll.py                                  # CPU, one thread: digits and CIFAR-10 shapes
    python bench/profile_unroll.py --device cuda --shape cifar10 --ipc 1 10 --repeats 20
    python bench/profile_unroll.py --shape cifar10 --ipc 1 --syn_steps 50 --repeats 2 --warmup 1 --ops    # issue 14's settings
    python bench/profile_unroll.py --shape cifar10 --ipc 10 --syn_steps 30 --repeats 1 --warmup 1 --ops
    python bench/profile_unroll.py --shape cifar10 --ipc 1 --syn_steps 50 --repeats 3 --warmup 1 --precision bf16
    python bench/profile_unroll.py --shape cifar10 --ipc 1 --syn_steps 50 --repeats 5 --warmup 1 --layout channels_last --no_count --keep_freed_memory
    python bench/profile_unroll.py --shape cifar10 --ipc 1 --syn_steps 50 --repeats 5 --warmup 1 --exact --compile --no_count --keep_freed_memory

`--precision bf16` adds a third loop, `full_bf16` (the full unroll with MTTConfig.precision='bf16': the student's
forward under bfloat16 autocast), to the interleaved timing, and records how far its gradient on the pixels is from the
float32 one on the same segment, batches and DSA draws (relative error, cosine, and the loss's relative change).
`--exact` adds the exact mode (constant memory) in float32 and in each precision. `--layout channels_last` adds each
loop again with the student's batch in channels-last memory order (MTTConfig.layout; the same numbers), and MTT's plain
loop on a channels-last copy of the images (`plain_cl`), so the layout's gain and the loops' can be told apart.
`--compile` adds `exact_compile`, the exact mode with MTTConfig.capture='compile' (its two step functions compiled by
inductor, the backward step by forward over reverse), with the time of its first, compiling, iteration, its drift from
the eager exact mode, and how far each of the two is from the eager exact mode in float64 (`--drift_only`: only that).
Under TORCH_COMPILE_DISABLE=1 (recorded) `exact_compile` runs the same forward-over-reverse steps uncompiled: what the
compiler adds, apart from the arithmetic.
"""
import argparse, os, sys, time
from pathlib import Path
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import write_record, device_name
from bench.mtt_speed import plain_iteration, problem
from mim4dd.cpu import keep_freed_memory
from mim4dd.mtt import TrajectoryMatcher, MTTConfig, StepSize
from mim4dd.augment import DSA, dsa_strategy_for


def make_matcher(net, t0, t1, n:int, dsa, g, precision:str='float32', mode:str='full', layout:str='contiguous',
                 capture:str='eager') -> TrajectoryMatcher:
    "A matcher over the one segment (t0 -> t1) with n student steps, DSA on"
    return TrajectoryMatcher(net, [torch.stack([t0, t1])], MTTConfig(syn_steps=n, expert_epochs=1, max_start_epoch=1, dsa=True,
                             precision=precision, layout=layout, capture=capture), dsa=dsa, generator=g, mode=mode)

def setting(shape:str, ipc:int, n:int, dev, precisions=(), exact:bool=False, channels_last:bool=False, compiled:bool=False):
    """The iteration functions (plain, full, full_<p> for each extra precision; with `exact`, exact and exact_<p> too;
    with `channels_last`, each of those again as <name>_cl in that layout, and plain_cl: MTT's loop on a channels-last
    copy of the images; with `compiled`, exact_compile: the exact mode with capture='compile') on the same network,
    images, targets, DSA and generator"""
    g, net, x, y, t0, t1, step = problem(shape, ipc, dev)
    dsa = DSA(dsa_strategy_for(shape))
    def run(f, leaf=x):
        def it(): leaf.grad = None; step.zero_grad(); f()
        return it
    loops = {'full': ('float32', 'full'), **{f'full_{p}': (p, 'full') for p in precisions}}  # name: (precision, mode[, capture])
    if exact: loops.update({'exact': ('float32', 'exact'), **{f'exact_{p}': (p, 'exact') for p in precisions}})
    if compiled: loops['exact_compile'] = ('float32', 'exact', 'compile')
    fs = {'plain': run(lambda: plain_iteration(net, x, y, step.value, t0, t1, n, len(x), dsa, g))}
    layouts = {'': 'contiguous'}
    if channels_last:
        xcl = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
        layouts['_cl'] = 'channels_last'
    for suffix, layout in layouts.items():
        if suffix: fs['plain' + suffix] = run(lambda: plain_iteration(net, xcl, y, step.value, t0, t1, n, len(xcl), dsa, g), xcl)
        for name, (p, mode, *capture) in loops.items():
            m = make_matcher(net, t0, t1, n, dsa, g, p, mode, layout, *capture)
            fs[name + suffix] = run(lambda m=m: m.loss_and_grad(x, y, step))
    return fs

def compile_drift(shape:str, ipc:int, n:int, dev) -> dict:
    """How far the pixel and step-size gradients and the loss of one iteration are from float64's (the eager exact mode
    in float64 on the same segment, batches and DSA draws: the oracle), for the eager exact mode and the compiled one in
    float32, and how far the two float32 runs are from each other"""
    out = {}
    for name, c, dtype in (('eager', 'eager', torch.float32), ('compile', 'compile', torch.float32), ('oracle', 'eager', torch.float64)):
        _, net, x, y, t0, t1, _ = problem(shape, ipc, dev)
        net, x, t0, t1 = net.to(dtype), x.detach().to(dtype).requires_grad_(), t0.to(dtype), t1.to(dtype)
        step = StepSize(0.01, device=dev, dtype=dtype)
        m = make_matcher(net, t0, t1, n, DSA(dsa_strategy_for(shape)), torch.Generator().manual_seed(7), mode='exact', capture=c)
        out[name] = (m.loss_and_grad(x, y, step)['loss'], x.grad.detach().double().flatten(), float(step.u.grad))
    def err(a, b):
        (la, ga, sa), (lb, gb, sb) = out[a], out[b]
        return float((ga - gb).norm() / gb.norm()), abs(la - lb) / abs(lb), abs(sa - sb) / abs(sb)
    rec = {}
    for a, b in (('compile', 'eager'), ('eager', 'oracle'), ('compile', 'oracle')):
        tag = 'compile' if b == 'eager' else f'{a}_vs_float64'
        rec[f'{tag}_grad_rel_err'], rec[f'{tag}_loss_rel_change'], rec[f'{tag}_steplr_grad_rel_change'] = err(a, b)
    return rec

def drift(shape:str, ipc:int, n:int, dev, precision:str) -> dict:
    "How far the pixel gradient and the loss of one iteration in `precision` are from float32's (same segment, batches, DSA)"
    _, net, x, y, t0, t1, step = problem(shape, ipc, dev)
    out = {}
    for p in ('float32', precision):
        m = make_matcher(net, t0, t1, n, DSA(dsa_strategy_for(shape)), torch.Generator().manual_seed(7), p)
        x.grad = None; step.zero_grad()
        out[p] = (m.loss_and_grad(x, y, step)['loss'], x.grad.detach().clone().flatten(), float(step.u.grad))
    (l32, g32, a32), (lp, gp, ap_) = out['float32'], out[precision]
    return {f'{precision}_grad_rel_err': float((gp - g32).norm() / g32.norm()),
            f'{precision}_grad_cos': float(torch.nn.functional.cosine_similarity(gp, g32, 0)),
            f'{precision}_loss_rel_change': abs(lp - l32) / l32, f'{precision}_steplr_grad_rel_change': abs(ap_ - a32) / abs(a32)}


# kinds of operator, first match wins (aten names, lower case)
KINDS = (('convolution', ('conv',)), ('instance norm', ('norm',)), ('pooling', ('pool',)),
         ('DSA resampling', ('grid_sampler', 'affine_grid')), ('matmul', ('mm', 'matmul', 'linear')),
         ('copies and views', ('copy', 'view', 'reshape', 'cat', 'stack', 'split', 'slice', 'select', 'index', 'clone',
                               'expand', 'permute', 'transpose', 'as_strided', 'contiguous', 'unbind', 'narrow', 'flatten',
                               'empty', 'zeros', 'ones', 'fill', 'detach', 'alias', 'to', '_to_copy')),
         ('element-wise and reductions', ('',)))

def kind(op:str) -> str:
    name = op.split('::')[-1].lower()
    return next(k for k, subs in KINDS if any(s in name for s in subs))

def op_shares(ev) -> tuple:
    "(20 most costly aten operators by self CPU time, share of self time per kind) of one profiled iteration"
    rows = sorted(((e.key, e.count, e.self_cpu_time_total / 1e3) for e in ev if e.key.startswith('aten::')), key=lambda r: -r[2])
    total = sum(r[2] for r in rows) or 1.
    top = [dict(op=o, calls=c, self_ms=round(ms, 2), share=round(ms / total, 4)) for o, c, ms in rows[:20]]
    kinds = {k: 0. for k, _ in KINDS}
    for o, _, ms in rows: kinds[kind(o)] += ms / total
    return top, {k: round(v, 4) for k, v in kinds.items()}

def measure(fs:dict, repeats:int, warmup:int, dev, ops:bool=False, count:bool=True) -> dict:
    sync = torch.cuda.synchronize if dev.type == 'cuda' else (lambda: None)
    times, first = {k: [] for k in fs}, {}
    for r in range(warmup + repeats):
        for k, f in fs.items():
            sync(); t = time.perf_counter(); f(); sync()
            if r >= warmup: times[k].append(time.perf_counter() - t)
            elif r == 0: first[k] = time.perf_counter() - t
    out = {f'{k}_seconds': sorted(v)[len(v) // 2] for k, v in times.items()}
    if warmup: out.update({f'{k}_first_seconds': v for k, v in first.items()})  # the compile, where there is one
    from torch.profiler import profile, ProfilerActivity
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == 'cuda' else [])
    for k, f in (fs.items() if count or ops else ()):
        with profile(activities=acts) as prof:
            f(); sync()
        ev = prof.key_averages()
        out[f'{k}_ops'] = int(sum(e.count for e in ev if e.key.startswith('aten::')))
        if ops: out[f'{k}_top_ops'], out[f'{k}_kinds'] = op_shares(ev)
        if dev.type == 'cuda':
            out[f'{k}_kernel_ms'] = sum(getattr(e, 'self_device_time_total', 0) for e in ev) / 1e3
            out[f'{k}_launches'] = int(sum(e.count for e in ev if e.key.startswith('cudaLaunchKernel')))
    for k in fs:
        if k != 'plain': out[f'{k}_over_plain'] = out[f'{k}_seconds'] / out['plain_seconds']
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--shape', nargs='+', default=['digits', 'cifar10'], choices=['digits', 'cifar10'])
    ap.add_argument('--ipc', nargs='+', type=int, default=[1, 10])
    ap.add_argument('--syn_steps', type=int, default=10)
    ap.add_argument('--repeats', type=int, default=10, help='timed iterations of each, interleaved (median recorded)')
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--dry', action='store_true', help='print, do not write')
    ap.add_argument('--ops', action='store_true', help='record the per-operator and per-kind shares of self time')
    ap.add_argument('--precision', nargs='*', default=[], choices=['bf16'], help='also time the full unroll in these precisions, and their drift')
    ap.add_argument('--exact', action='store_true', help='also time the exact mode (in float32 and in each --precision)')
    ap.add_argument('--layout', choices=['channels_last'], help="also time every loop with the student's batch in this "
                    "memory layout (MTTConfig.layout; names end in _cl)")
    ap.add_argument('--compile', action='store_true', help="also time the exact mode with capture='compile' (exact_compile; "
                    "keep --warmup >= 1: the first iteration compiles), and record its drift from the eager exact mode")
    ap.add_argument('--drift_only', action='store_true', help='with --compile: record only the drifts, time nothing')
    ap.add_argument('--no_count', action='store_true', help='skip the profiled pass that counts operators (halves a long run)')
    ap.add_argument('--keep_freed_memory', action='store_true', help='malloc keeps freed memory (mim4dd.cpu, chapter 05); recorded')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    kept = keep_freed_memory() if a.keep_freed_memory else False
    dev = torch.device(a.device)
    for shape in a.shape:
        for ipc in a.ipc:
            rec = dict(shape=shape, ipc=ipc, syn_steps=a.syn_steps, repeats=0 if a.drift_only else a.repeats, threads=a.threads,
                       device=device_name(a.device) if dev.type == 'cuda' else device_name('cpu'),
                       load=os.getloadavg()[0], command='python bench/profile_unroll.py ' + ' '.join(sys.argv[1:]), freed_memory_kept=kept,
                       torch_compile_disabled=torch._dynamo.config.disable)  # TORCH_COMPILE_DISABLE=1: exact_compile runs eagerly
            if not a.drift_only:
                rec.update(measure(setting(shape, ipc, a.syn_steps, dev, a.precision, a.exact, a.layout == 'channels_last', a.compile),
                                   a.repeats, a.warmup, dev, a.ops, not a.no_count))
            for p in a.precision: rec.update(drift(shape, ipc, a.syn_steps, dev, p))
            if a.compile: rec.update(compile_drift(shape, ipc, a.syn_steps, dev))
            print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rec.items() if 'top_ops' not in k}, flush=True)
            if not a.dry: write_record('unroll_profile', **rec)


if __name__ == '__main__': main()
