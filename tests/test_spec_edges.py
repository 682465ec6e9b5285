"""Edges of a run's settings that a tester hit: a corrupt MNIST download is named, every MTT preset row resolves to a spec
that config.json reads back with the same types (so `--config` reruns byte for byte), and settings the run could only
refuse late (MIM layers the network lacks, an expert store that is a file) are refused before anything trains."""
import gzip, io, json, pickle
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import asdict, fields
from types import SimpleNamespace
import pytest, torch
from mim4dd.cli import run_script, distill_cli
from mim4dd.data import load_dataset, make_fake
from mim4dd.mtt import MTT_TABLE
from mim4dd.spec import RunSpec, SECTIONS, _is_optional

pytestmark = pytest.mark.usefixtures('one_thread')

SHAPES = dict(cifar10=(3, 32, 10), cifar100=(3, 32, 100), tiny=(3, 64, 200), mnist=(1, 28, 10), digits=(1, 8, 10))

def info(dataset):
    "The fields of a DatasetInfo that `resolve` reads, for a dataset of the preset table"
    c, side, k = SHAPES[dataset]
    return SimpleNamespace(channels=c, im_size=(side, side), n_classes=k)

def distill(*args):
    "(exit code, stderr lines) of mim4dd_distill run in this process"
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err): code = run_script(distill_cli, [str(a) for a in args], prog='mim4dd_distill')
    return code, err.getvalue().splitlines()

@pytest.mark.parametrize('how', ['truncated', 'flipped'])
def test_a_corrupt_mnist_file_is_named(tmp_path, how):
    make_fake('mnist', tmp_path/'data')
    f = next((tmp_path/'data').rglob('train-images-idx3-ubyte.gz'))
    gz = f.read_bytes()
    f.write_bytes(gz[:len(gz) // 2] if how == 'truncated' else gz[:-8] + bytes(b ^ 0xFF for b in gz[-8:-4]) + gz[-4:])
    with pytest.raises(ValueError, match=f'{f} is truncated or corrupt') as e: load_dataset('mnist', tmp_path/'data', cache_dir=tmp_path/'c')
    assert '\n' not in str(e.value)

def test_a_missing_idx_file_is_not_called_corrupt(tmp_path):
    from mim4dd.readers import read_idx
    with pytest.raises(FileNotFoundError): read_idx(tmp_path/'absent-idx3-ubyte.gz')

@pytest.mark.parametrize('dataset,ipc', list(MTT_TABLE), ids=lambda v: str(v))
def test_every_preset_resolves_to_typed_fields(tmp_path, dataset, ipc):
    r = RunSpec().override(f'data.name={dataset}', f'loop.ipc={ipc}').resolve(info(dataset), tmp_path)
    for s, cls in SECTIONS.items():
        for f in fields(cls):
            v, tp = r.get(f'{s}.{f.name}'), _is_optional(f.type)[1]
            assert v is None or type(v) is tp, (f'{s}.{f.name}', v, tp)  # float fields hold floats: lr_img=100 is 100.0
    again = RunSpec.load(r.save(tmp_path/'config.json'))
    assert again == r
    # what distilled.pt and checkpoint.pt pickle: the same bytes from the run and from its config.json
    assert pickle.dumps(asdict(again.distill_config())) == pickle.dumps(asdict(r.distill_config()))
    again.save(tmp_path/'again.json')
    assert (tmp_path/'again.json').read_bytes() == (tmp_path/'config.json').read_bytes()

@pytest.mark.parametrize('layers,ok', [('0,1,2', True), ('2', True), ('3', False), ('-1', False), ('1,1', False)])
def test_mim_layers_are_held_to_the_network(layers, ok):
    s = RunSpec().override('data.name=cifar10', f'mim.layers={layers}')
    if ok: assert s.resolve(info('cifar10')).mim.layers == tuple(map(int, layers.split(',')))
    else:
        with pytest.raises(ValueError, match=r'^mim.layers must be distinct block indices in 0\.\.2 \(the ConvNet on 32x32 images has 3 blocks\)'):
            s.resolve(info('cifar10'))

def test_the_command_refuses_bad_layers_and_a_file_as_store_before_training(tmp_path):
    (tmp_path/'f').write_text('')
    code, err = distill('--out', tmp_path/'run', '--device', 'cpu', '--no-progress', '--set', f"experts.store={tmp_path/'f'}")
    assert code == 2 and err == [f"mim4dd_distill: error: experts.store {tmp_path/'f'}: {tmp_path/'f'} is a file, not a folder; choose another path"]
    code, err = distill('--out', tmp_path/'run2', '--device', 'cpu', '--no-progress', '--set', 'mim.layers=7')
    assert code == 1 and err == ['mim4dd_distill: error: mim.layers must be distinct block indices in 0..1 '
                                 '(the ConvNet on 8x8 images has 2 blocks), got 7'], err
    assert not (tmp_path/'run2'/'experts').exists()  # refused before any expert trained
