"""A crafted file that would run code when loaded (here: create a marker file) is refused, and the marker never appears:
torch files (distilled set, checkpoint, expert, ZCA) and CIFAR's pickled batches, through the API and `mim4dd_eval`."""
import os, pickle, subprocess, sys
from pathlib import Path
import numpy as np
import pytest, torch
from mim4dd.data import load_dataset, make_fake, read_pickle, load_pt
from mim4dd.distill import DistilledSet, read_checkpoint
from mim4dd.experts import ExpertStore

BIN = Path(sys.executable).parent

class Crafted:
    "What an attacker pickles: unpickling it the ordinary way calls open(marker, 'w')"
    def __init__(self, marker): self.marker = str(marker)
    def __reduce__(self): return (open, (self.marker, 'w'))

def crafted_set(path, marker):
    "A distilled.pt as mim4dd writes it, plus one object that runs code"
    torch.save(dict(x=torch.zeros(10, 1, 8, 8), y=torch.arange(10), syn_lr=0.01, dataset=dict(name='digits'), config={},
                    zca=Crafted(marker)), path)
    return path

def test_torch_files_are_refused(tmp_path):
    marker = tmp_path/'marker'
    p = crafted_set(tmp_path/'distilled.pt', marker)
    with pytest.raises(ValueError, match=r'refusing to load the distilled set .*(builtins|io)\.open'): DistilledSet.load(p)
    (tmp_path/'run').mkdir(); os.replace(p, tmp_path/'run'/'checkpoint.pt')
    with pytest.raises(ValueError, match='refusing to load the checkpoint'): read_checkpoint(tmp_path/'run'/'checkpoint.pt')
    store = ExpertStore(tmp_path/'store'); store.root.mkdir()
    crafted_set(store.path(0), marker); crafted_set(store.root/'zca.pt', marker)
    with pytest.raises(ValueError, match='refusing to load the expert file'): store.manifest(0)
    with pytest.raises(ValueError, match='refusing to load the ZCA file'): store.load_zca()
    assert not marker.exists()

class Shell:
    "The classic: unpickling it the ordinary way runs a shell command through os.system (posix.system on Linux)"
    def __init__(self, cmd): self.cmd = cmd
    def __reduce__(self): return (os.system, (self.cmd,))

def test_a_global_from_a_blocked_module_is_named(tmp_path):
    "torch words a global from a module it blocks (posix.system) otherwise than one it could allow (io.open): both are named"
    marker = tmp_path/'marker'
    torch.save(dict(x=torch.zeros(2), run=Shell(f'touch {marker}')), tmp_path/'shell.pt')
    with pytest.raises(ValueError, match=r'refusing to load the checkpoint .*shell\.pt: it asks for (posix|os|nt)\.system, '
                                         r'which mim4dd never writes: .* would run code') as e:
        load_pt(tmp_path/'shell.pt', 'checkpoint')
    assert '\n' not in str(e.value) and 'corrupt' not in str(e.value)
    assert not marker.exists()

def test_plain_pickle_is_refused_as_a_torch_file(tmp_path):
    (tmp_path/'x.pt').write_bytes(pickle.dumps({'x': Crafted(tmp_path/'marker')}))
    with pytest.raises(ValueError, match='truncated or was not written by torch.save'): load_pt(tmp_path/'x.pt')
    assert not (tmp_path/'marker').exists()

def test_cifar_batch_is_refused(tmp_path):
    marker, root = tmp_path/'marker', tmp_path/'data'
    make_fake('cifar10', root, n_per_class=2, n_test_per_class=1)
    batch = root/'cifar-10-batches-py'/'data_batch_1'
    good = read_pickle(batch)
    assert good['data'].dtype == np.uint8 and len(good['labels']) == len(good['data'])
    batch.write_bytes(pickle.dumps(dict(good, data=Crafted(marker)), protocol=2))
    with pytest.raises(ValueError, match=r'refusing to unpickle .*data_batch_1: it asks for (builtins|io)\.open'):
        load_dataset('cifar10', root, cache_dir=tmp_path/'cache')
    assert not marker.exists()

def test_original_cifar_pickles_still_read(tmp_path):
    "The official batches were pickled by Python 2's numpy (numpy.core.multiarray, byte strings): they still load"
    x = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072) % 251
    b = pickle.dumps({'data': x, 'labels': [3, 7], 'batch_label': 'training batch 1 of 5'}, protocol=2)
    (tmp_path/'b').write_bytes(b.replace(b'numpy._core.multiarray', b'numpy.core.multiarray'))
    d = read_pickle(tmp_path/'b')
    assert np.array_equal(d['data'], x) and d['labels'] == [3, 7]

def test_mim4dd_eval_refuses_crafted_files(tmp_path):
    "Through the installed console script: a crafted distilled.pt, and a real-looking one over crafted CIFAR batches"
    marker, root = tmp_path/'marker', tmp_path/'data'
    env = dict(os.environ, MIM4DD_DATA=str(tmp_path/'home'), OMP_NUM_THREADS='1')
    r = subprocess.run([str(BIN/'mim4dd_eval'), crafted_set(tmp_path/'distilled.pt', marker)], capture_output=True, text=True, env=env)
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1 and 'refusing to load the distilled set' in r.stderr, r.stderr
    make_fake('cifar10', root, n_per_class=2, n_test_per_class=1)
    (root/'cifar-10-batches-py'/'test_batch').write_bytes(pickle.dumps({'data': Crafted(marker), 'labels': [0]}, protocol=2))
    DistilledSet(torch.zeros(10, 3, 32, 32), torch.arange(10), 0.01, dict(name='cifar10'), {}).save(tmp_path/'c10.pt')
    r = subprocess.run([str(BIN/'mim4dd_eval'), tmp_path/'c10.pt', '--data_root', root], capture_output=True, text=True, env=env)
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1 and 'refusing to unpickle' in r.stderr, r.stderr
    assert not marker.exists() and not list(tmp_path.glob('eval_*.json'))
