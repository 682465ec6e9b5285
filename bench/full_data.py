"""The ceiling column: a ConvNet trained on the whole training set, to (near) convergence, resumable.

    python bench/full_data.py --dataset mnist --epochs 8 --threads 1       # ~4 min an epoch on one thread
    python bench/full_data.py --dataset cifar10 --epochs 60 --threads 2    # long: run it in the background

One network trained with SGD (lr 0.01, momentum 0.9, weight decay 5e-4, batch 256, DSA on every batch: the settings of
MTT's evaluation protocol without its lr step, so that any prefix of the run is a run) as an expert of the store
WORK/<dataset> (mim4dd.experts): after every epoch its state is checkpointed, so a run that is killed resumes where it
stopped when the same command is given again, bit for bit. A record per finished epoch goes to
bench/results/full_data.jsonl (epoch, test accuracy, seconds of training so far, load, commit); the test accuracy of
the last epoch is the reference.
"""
import argparse, os, sys
from pathlib import Path
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import device_name, write_record
from bench.evidence import ROOTS
from mim4dd.cpu import keep_freed_memory
from mim4dd.data import load_dataset
from mim4dd.experts import ExpertStore, train_experts

SGD = dict(lr=0.01, momentum=0.9, weight_decay=5e-4, batch_size=256)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--dataset', default='mnist'); ap.add_argument('--epochs', type=int, default=8)
    ap.add_argument('--seed', type=int, default=0); ap.add_argument('--threads', type=int)
    ap.add_argument('--work', default='runs/full', help='the run lives in WORK/<dataset> (resumable)')
    ap.add_argument('--data_root', help='folder holding the dataset files (default: ../shared/data for MNIST and CIFAR-10)')
    ap.add_argument('--device', default='cpu'); ap.add_argument('--note', default='')
    a = ap.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    if a.device == 'cpu': keep_freed_memory()
    train, test = load_dataset(a.dataset, root=a.data_root or ROOTS.get(a.dataset))
    store = ExpertStore(Path(a.work) / a.dataset)
    common = dict(dataset=a.dataset, n_train=len(train), n_test=len(test), epochs=a.epochs, seed=a.seed, sgd=SGD, dsa=True,
                  arch='ConvNet', device=device_name(a.device), note=a.note, store=str(store.root))

    def epoch_done(i, epoch, record):
        write_record('full_data', **common, epoch=epoch + 1, test_acc=100 * record['test_acc'][-1],
                     train_acc=100 * record['train_acc'][-1], train_loss=record['train_loss'][-1],
                     seconds=record['seconds'], load=os.getloadavg()[0])
        print(f"{a.dataset} epoch {epoch + 1}/{a.epochs}: test {100 * record['test_acc'][-1]:.2f} % "
              f"({record['seconds']:.0f} s of training)", flush=True)

    train_experts(train, test, store, n_experts=1, n_epochs=a.epochs, seed=a.seed, device=a.device, callback=epoch_done,
                  ensemble=False, **SGD)
    m = store.manifest(0)
    print(f"{a.dataset}: {100 * m['test_acc'][-1]:.2f} % after {len(m['test_acc'])} epochs")
    return m

if __name__ == '__main__': main()
