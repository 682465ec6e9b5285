"""What keeping freed memory (mim4dd.cpu.keep_freed_memory, chapter 05) buys on the CPU: the same work in fresh
processes with glibc's default malloc ('system') and with freed memory kept ('keep'), alternating system, keep, system,
keep, ... so that drift in the machine's load hits both alike; medians per setting and their ratio.

    python bench/cpu_malloc.py                                  # all workloads, 2 rounds (~25 min on one free core)
    python bench/cpu_malloc.py --work unroll10 --rounds 3

Workloads (one thread each):
- unroll1 / unroll10: `bench/profile_unroll.py` at CIFAR-10 shapes, IPC 1 with 50 student steps and IPC 10 with 30
  (issue 14's settings): MTT's plain loop and mim4dd's full unroll, one timed iteration each after one warm-up.
- experts: `--batches` SGD steps of an expert (CIFAR-10 ConvNet, batch 256, DSA) on random images: images per second.
Appends one record per workload to bench/results/cpu_malloc.jsonl with every child's figures, the load and the commit.
"""
import argparse, ast, os, statistics, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import device_name, write_record

UNROLL = {'unroll1': (1, 50), 'unroll10': (10, 30)}

class _Images:  # what train_epoch reads of an ImageSet
    def __init__(self, x, y): self.x, self.y = x, y
    def __len__(self): return len(self.x)

def expert_child(batches:int, keep:bool) -> dict:
    "Seconds and images/s of `batches` expert SGD steps (CIFAR-10 ConvNet, batch 256, DSA) after 2 warm-up steps"
    import torch
    from mim4dd.cpu import keep_freed_memory
    from mim4dd.augment import DSA, dsa_strategy_for
    from mim4dd.experts import train_epoch
    from mim4dd.nets import get_network
    torch.set_num_threads(1)
    kept = keep_freed_memory() if keep else False
    g = torch.Generator().manual_seed(0)
    n = 256 * (batches + 2)
    data = _Images(torch.randn(n, 3, 32, 32, generator=g), torch.randint(10, (n,), generator=g))
    net = get_network('ConvNet', 3, 10, (32, 32), seed=0)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    dsa, warm, rest = DSA(dsa_strategy_for('cifar10')), _Images(data.x[:512], data.y[:512]), _Images(data.x[512:], data.y[512:])
    train_epoch(net, opt, warm, 256, dsa, g)
    t = time.perf_counter()
    train_epoch(net, opt, rest, 256, dsa, g)
    secs = time.perf_counter() - t
    return dict(seconds=secs, images_per_second=len(rest) / secs, kept=kept)

def run_child(work:str, keep:bool, batches:int) -> dict:
    "One fresh process doing `work`; its figures and its user and system CPU seconds"
    if work in UNROLL:
        ipc, steps = UNROLL[work]
        cmd = [sys.executable, str(ROOT/'bench'/'profile_unroll.py'), '--shape', 'cifar10', '--ipc', str(ipc), '--syn_steps', str(steps),
               '--repeats', '1', '--warmup', '1', '--no_count', '--dry'] + (['--keep_freed_memory'] if keep else [])
    else:
        cmd = [sys.executable, __file__, '--child', work, '--batches', str(batches)] + (['--keep'] if keep else [])
    before = os.times()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    after = os.times()
    rec = ast.literal_eval([l for l in out.splitlines() if l.startswith('{')][-1])
    rec.update(user_seconds=after.children_user - before.children_user, sys_seconds=after.children_system - before.children_system)
    return rec

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--work', nargs='+', default=['unroll1', 'unroll10', 'experts'], choices=[*UNROLL, 'experts'])
    ap.add_argument('--rounds', type=int, default=2, help='alternations of system and keep')
    ap.add_argument('--batches', type=int, default=20, help='expert SGD steps timed (experts)')
    ap.add_argument('--note', default='')
    ap.add_argument('--dry', action='store_true', help='print, do not write')
    ap.add_argument('--child', help=argparse.SUPPRESS); ap.add_argument('--keep', action='store_true', help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child: return print(expert_child(a.batches, a.keep), flush=True)
    for work in a.work:
        runs = {'system': [], 'keep': []}
        load0 = os.getloadavg()[0]
        for r in range(a.rounds):
            for setting in ('system', 'keep'):
                runs[setting].append(run_child(work, setting == 'keep', a.batches))
                print(work, setting, {k: round(v, 3) if isinstance(v, float) else v for k, v in runs[setting][-1].items()
                                      if k.endswith('seconds') or k.endswith('second') or k.endswith('plain')}, flush=True)
        keys = ['plain_seconds', 'full_seconds'] if work in UNROLL else ['seconds']
        med = {s: {k: statistics.median(x[k] for x in runs[s]) for k in keys + ['sys_seconds', 'user_seconds']} for s in runs}
        rec = dict(work=work, rounds=a.rounds, threads=1, device=device_name('cpu'), load_start=load0, load_end=os.getloadavg()[0],
                   note=a.note, median=med, keep_over_system={k: med['keep'][k] / med['system'][k] for k in keys},
                   runs=runs, command='python bench/cpu_malloc.py ' + ' '.join(sys.argv[1:]))
        if work in UNROLL:  # mim4dd's full unroll against MTT's plain loop run as it comes (system malloc) and with the same malloc
            rec.update(full_keep_over_plain_system=med['keep']['full_seconds'] / med['system']['plain_seconds'],
                       full_keep_over_plain_keep=med['keep']['full_seconds'] / med['keep']['plain_seconds'],
                       ipc=UNROLL[work][0], syn_steps=UNROLL[work][1])
        else: rec.update(batches=a.batches, batch_size=256)
        if not a.dry: write_record('cpu_malloc', **rec)
        print(work, 'keep/system', {k: round(v, 3) for k, v in rec['keep_over_system'].items()}, flush=True)

if __name__ == '__main__': main()
