"""Run the benchmark scripts in bench/ one at a time, each with its CPU-sized defaults on one torch thread, and say
how long each took.

    python bench/run_all.py                          # every benchmark below, in order: a few hours on 2 CPU cores
    python bench/run_all.py --only mtt_speed eval_ensemble   # some of them
    python bench/run_all.py --list                   # the commands, without running anything

Each script appends its own records (config, machine, commit) to bench/results/*.jsonl, as its docstring says; this
runner records nothing itself. It runs them one after another (never side by side: they time themselves), stops at
the first that fails unless --keep-going, and ends with a table of wall-clock times. Only the embedded digits data
is used, so nothing is downloaded; MNIST and the GPU settings are in each script's docstring.
"""
import argparse, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name: (arguments, rough wall time on this project's 2-core CPU with another job on the other core)
BENCHES = {
    'mtt_speed':      (['--quick'], '2 min'),                                        # time and memory of one MTT iteration
    'profile_unroll': (['--shape', 'digits'], '1 min'),                              # plain loop vs full unroll, interleaved
    'eval_ensemble':  (['--shape', 'digits', '--ipc', '1', '10', '--K', '3', '10'], '1 min'),  # side-by-side evaluation
    'baselines':      (['--datasets', 'digits', '--threads', '1'], '5 min'),        # full data, random and herding coresets
    'evidence':       (['--datasets', 'digits', '--threads', '1'], '1-2 h'),        # the README's table, digits rows
    'sensitivity':    (['--threads', '1'], '40 min'),                                # MIM4DD's lambda, gamma, tau, layers
    'mtt_gap':        (['--threads', '1'], '10 min'),                                # our MTT against the reference's choices
    'mtt_curve':      (['--dataset', 'digits', '--threads', '1'], '10 min'),          # accuracy against iterations (MNIST: --dataset mnist)
    'precision':      (['--dataset', 'digits', '--threads', '1'], '15 min'),          # float32 vs bf16 MTT sets, paired
    'expert_ensemble': (['--shape', 'digits'], '1 min'),                            # experts side by side vs one at a time
}

def command(name): return [sys.executable, str(ROOT / 'bench' / f'{name}.py'), *BENCHES[name][0]]

def run(names, keep_going=False) -> int:
    "Run `names` one at a time; print each one's wall time; return the number that failed"
    done = []
    for name in names:
        print(f'== {name}: {" ".join(command(name)[1:])}  (about {BENCHES[name][1]})', flush=True)
        t0 = time.perf_counter()
        rc = subprocess.run(command(name), cwd=ROOT).returncode
        done.append((name, time.perf_counter() - t0, rc))
        print(f'== {name}: {"ok" if rc == 0 else f"FAILED (exit {rc})"} in {done[-1][1] / 60:.1f} min', flush=True)
        if rc and not keep_going: break
    print('\nbenchmark        minutes  result')
    for name, secs, rc in done: print(f'{name:<16} {secs / 60:7.1f}  {"ok" if rc == 0 else f"exit {rc}"}')
    return sum(rc != 0 for _, _, rc in done)

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--only', nargs='+', choices=list(BENCHES), help='run these (default: all, in the order above)')
    ap.add_argument('--list', action='store_true', help='print the commands and exit')
    ap.add_argument('--keep-going', action='store_true', help='run the rest after a failure')
    a = ap.parse_args()
    names = a.only or list(BENCHES)
    if a.list:
        for n in names: print(' '.join(command(n)[1:]), f'# about {BENCHES[n][1]}')
        return 0
    return 1 if run(names, a.keep_going) else 0

if __name__ == '__main__': sys.exit(main())
