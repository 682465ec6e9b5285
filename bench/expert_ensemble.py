"""Experts as an ensemble: K fresh experts trained side by side (`ExpertStore.train_group`) against one at a time
(`ExpertStore.train_one`), interleaved in one process.

    python bench/expert_ensemble.py                          # CIFAR-10 shapes (ConvNet width 128), K = 2 4 8, CPU
    python bench/expert_ensemble.py --device cuda --n_train 10000 --K 8      # issue 14's GPU goal: 3x images per second

The data are random tensors of the dataset's shape (the time does not depend on their content): `--n_train` training
and 100 test images, one epoch, batch 256, DSA on (the dataset's strategy), into temporary stores. Each record holds
the median seconds of both paths over `--repeats` interleaved repetitions, the throughput ratio (one-at-a-time time /
side-by-side time: above 1 means the group is faster) in training images per second, and the largest difference
between the two paths' final parameters relative to their scale. Appends to bench/results/expert_ensemble.jsonl.
"""
import argparse, os, shutil, sys, tempfile, time
from pathlib import Path
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import write_record, device_name
from mim4dd.cpu import keep_freed_memory
from mim4dd.data import ImageSet, DatasetInfo
from mim4dd.augment import dsa_strategy_for
from mim4dd.experts import ExpertStore, _spec, model_config

SHAPES = {'cifar10': dict(channels=3, im_size=32), 'mnist': dict(channels=1, im_size=28), 'digits': dict(channels=1, im_size=8)}

def data(shape:str, n_train:int):
    s, g = SHAPES[shape], torch.Generator().manual_seed(0)
    c, hw = s['channels'], (s['im_size'], s['im_size'])
    info = DatasetInfo(shape, c, hw, 10, [str(i) for i in range(10)], (0.5,) * c, (0.25,) * c, source='synthetic')
    make = lambda n: ImageSet(torch.randn(n, c, *hw, generator=g), torch.arange(n) % 10, info)
    return make(n_train), make(100)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--shape', default='cifar10', choices=list(SHAPES)); ap.add_argument('--K', nargs='+', type=int, default=[2, 4, 8])
    ap.add_argument('--n_train', type=int, default=1024); ap.add_argument('--repeats', type=int, default=2)
    ap.add_argument('--device', default='cpu'); ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--keep_freed_memory', action='store_true', help='malloc keeps freed memory (mim4dd.cpu); recorded')
    ap.add_argument('--dry', action='store_true', help='print, do not write')
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    kept = keep_freed_memory() if a.keep_freed_memory else False
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if dev.type == 'cuda' else (lambda: None)
    train, test = data(a.shape, a.n_train)
    spec = _spec(train, test, model_config(train, 'ConvNet'), None, 1, 0.01, 0., 0., 256, dsa_strategy_for(a.shape), 0)
    for K in a.K:
        times, gaps = {'one': [], 'group': []}, []
        for r in range(a.repeats + 1):  # the first round warms up
            tmp = Path(tempfile.mkdtemp())
            try:
                one, group = ExpertStore(tmp/'one'), ExpertStore(tmp/'group')
                sync(); t = time.perf_counter()
                for i in range(K): one.train_one(i, train, test, spec, device=dev)
                sync(); t_one = time.perf_counter() - t
                sync(); t = time.perf_counter()
                group.train_group(list(range(K)), train, test, spec, device=dev)
                sync(); t_group = time.perf_counter() - t
                gaps.append(max(((one.load(i).params[-1] - group.load(i).params[-1]).abs().max() / one.load(i).params[-1].abs().max()).item()
                                for i in range(K)))
            finally: shutil.rmtree(tmp)
            if r: times['one'].append(t_one); times['group'].append(t_group)
        med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
        rec = dict(shape=a.shape, K=K, n_train=a.n_train, epochs=1, batch_size=256, repeats=a.repeats, threads=a.threads,
                   device=device_name(a.device), load=os.getloadavg()[0], one_seconds=med['one'], group_seconds=med['group'],
                   throughput_ratio=med['one'] / med['group'], images_per_second_one=K * a.n_train / med['one'],
                   images_per_second_group=K * a.n_train / med['group'], max_param_gap=max(gaps), freed_memory_kept=kept,
                   command='python bench/expert_ensemble.py ' + ' '.join(argv if argv is not None else sys.argv[1:]))
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in rec.items()}, flush=True)
        if not a.dry: write_record('expert_ensemble', **rec)

if __name__ == '__main__': main()
