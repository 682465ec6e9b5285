"""Own data and reusable experts: an image folder reaches the data layer from all three console scripts, a store of longer
experts serves a run that reads fewer epochs, MTT has a preset for every dataset and IPC, and a distilled set can be
loaded and exported for use elsewhere."""
import io, json, os, shutil, subprocess, sys
from contextlib import redirect_stderr
from pathlib import Path
import pytest, torch
import mim4dd
from mim4dd.data import DATASETS, make_fake, load_dataset
from mim4dd.experts import ExpertStore, train_experts
from mim4dd.cli import run_script, experts_cli
from mim4dd.cli import distill_cli, eval_cli
from mim4dd.mtt import MTTConfig, MTT_TABLE, mtt_preset, mtt_preset_source

BIN = Path(sys.executable).parent
FUNCS = {'mim4dd_distill': distill_cli, 'mim4dd_eval': eval_cli, 'mim4dd_experts': experts_cli}
TINY = ['--iterations', '2', '--syn_steps', '2', '--max_start_epoch', '1', '--eval_runs', '1', '--eval_epochs', '2', '--quiet']

@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    "One thread; the data cache in the test's folder"
    n = torch.get_num_threads(); torch.set_num_threads(1)
    monkeypatch.setenv('MIM4DD_DATA', str(tmp_path/'data'))
    yield
    torch.set_num_threads(n)

def pics(root) -> Path:
    "3 classes x 12 training (4 test) PNGs of 16 x 16 under root/pics/{train,test}/<class>/"
    make_fake('imagefolder', root, n_per_class=12, n_test_per_class=4, path='pics', size=16)
    return Path(root)/'pics'

def script(cwd, cmd, *args):
    "An installed console script: (exit code, stdout, stderr lines)"
    env = dict(os.environ, OMP_NUM_THREADS='1', TQDM_DISABLE='1')
    r = subprocess.run([str(BIN/cmd), *map(str, args)], cwd=cwd, capture_output=True, text=True, env=env, timeout=300)
    return r.returncode, r.stdout, r.stderr.splitlines()

def inproc(cmd, *args):
    "The same through `run_script` in this process: (exit code, stderr lines)"
    err = io.StringIO()
    with redirect_stderr(err): code = run_script(FUNCS[cmd], [str(a) for a in args], prog=cmd)
    return code, err.getvalue().splitlines()

def test_image_folder_through_the_three_scripts(tmp_path):
    folder = pics(tmp_path)
    code, out, err = script(tmp_path, 'mim4dd_experts', '--out', 's', '--dataset', 'imagefolder', '--path', folder,
                            '--n_experts', '2', '--n_epochs', '3', '--quiet')
    assert (code, out, err) == (0, '', []), err
    code, out, err = script(tmp_path, 'mim4dd_distill', '--out', 'run', '--dataset', 'imagefolder', '--path', folder,
                            '--experts', 's', '--ipc', '2', *TINY)
    assert code == 0 and err == [], err
    assert out.startswith('mtt imagefolder ipc=2: ') and len(out.splitlines()) == 1, out
    s = json.loads((tmp_path/'run'/'summary.json').read_text())
    assert s['mtt_preset'].startswith('derived') and s['config']['experts']['store'] == str((tmp_path/'s').resolve())
    assert ExpertStore(tmp_path/'s').ids() == [0, 1] and not (tmp_path/'run'/'experts').exists()  # the store served
    # the set remembers its folder; --path points at a moved one
    code, out, err = script(tmp_path, 'mim4dd_eval', 'run/distilled.pt', '--n_runs', '1', '--n_epochs', '2', '--quiet')
    assert code == 0 and err == [] and '%' in out, err
    shutil.move(folder, tmp_path/'moved')
    assert inproc('mim4dd_eval', tmp_path/'run'/'distilled.pt', '--n_runs', '1', '--n_epochs', '1', '--quiet')[0] == 1
    code, lines = inproc('mim4dd_eval', tmp_path/'run'/'distilled.pt', '--path', tmp_path/'moved', '--n_runs', '1',
                         '--n_epochs', '1', '--quiet')
    assert (code, lines) == (0, [])

@pytest.mark.parametrize('cmd', ['mim4dd_distill', 'mim4dd_experts'])
def test_image_folder_needs_path(tmp_path, cmd):
    code, lines = inproc(cmd, '--out', tmp_path/'o', '--dataset', 'imagefolder')
    assert code == 2 and len(lines) == 1 and '--dataset imagefolder needs --path' in lines[0], lines
    code, lines = inproc(cmd, '--out', tmp_path/'o', '--dataset', 'imagefolder', '--path', tmp_path/'none')
    assert code == 1 and lines == [f'{cmd}: error: --path {tmp_path}/none does not exist'], lines
    code, lines = inproc(cmd, '--out', tmp_path/'o', '--path', tmp_path)
    assert code == 2 and '--path and --size are for --dataset imagefolder' in lines[0], lines
    assert list(tmp_path.iterdir()) == []

def test_broken_inputs_are_one_line(tmp_path, monkeypatch):
    "A bad zip, an image that is not one, a folder of one class and a failed download: exit 1 and one line naming the culprit"
    folder = pics(tmp_path)
    bad_img = sorted((folder/'train'/'class1').iterdir())[0]; bad_img.write_bytes(b'not a png')
    (tmp_path/'cut.zip').write_bytes(b'PK\x03\x04 cut short')
    make_fake('imagefolder', tmp_path, path='one', n_classes=1, size=16); one = tmp_path/'one'
    def offline(root): raise RuntimeError('Error downloading train-images-idx3-ubyte.gz')
    monkeypatch.setattr(DATASETS['mnist'], 'download', offline)
    for args, words in [(['--path', tmp_path/'cut.zip'], [f'cannot read {tmp_path}/cut.zip: it is truncated or not a zip']),
                        (['--path', folder], [f'cannot decode the image {bad_img}: not an image']),
                        (['--path', one], [f"{one} has one class, 'class0'"]),
                        (['--dataset', 'mnist', '--data_root', tmp_path/'none', '--download'],
                         ['downloading mnist into', 'Error downloading', 'Without a network: put the four IDX files'])]:
        args = ['--dataset', 'imagefolder', *args] if args[0] == '--path' else args
        code, lines = inproc('mim4dd_experts', '--out', tmp_path/'s', *args, '--n_experts', '1', '--n_epochs', '1', '--quiet')
        assert code == 1 and len(lines) == 1 and lines[0].startswith('mim4dd_experts: error: '), lines
        assert all(w in lines[0] for w in words) and 'unexpected' not in lines[0], lines[0]

def test_a_longer_store_serves_a_shorter_run(tmp_path):
    folder = pics(tmp_path)
    train, test = load_dataset('imagefolder', path=str(folder))
    store = ExpertStore(tmp_path/'long')
    train_experts(train, test, store, n_experts=2, n_epochs=6, batch_size=16)  # as `mim4dd_experts --n_epochs 6` would
    before = {p.name: p.stat().st_mtime_ns for p in store.root.iterdir()}
    data = ['--dataset', 'imagefolder', '--path', folder, '--experts', store.root]
    # reads epoch max_start_epoch - 1 + expert_epochs = 3 of 6: served as it is, nothing trained
    assert inproc('mim4dd_distill', '--out', tmp_path/'a', *data, '--ipc', '1', *TINY, '--max_start_epoch', '2') == (0, [])
    assert {p.name: p.stat().st_mtime_ns for p in store.root.iterdir()} == before
    # reads epoch 7 of 6: refused in one line before anything is written
    code, lines = inproc('mim4dd_distill', '--out', tmp_path/'b', *data, *TINY, '--max_start_epoch', '6')
    assert code == 1 and len(lines) == 1 and 'hold 6 epochs but the run reads epoch 7' in lines[0], lines
    assert not (tmp_path/'b').exists()
    # more experts asked for: trained with the store's own settings (6 epochs, batch 16), so the store stays uniform
    assert inproc('mim4dd_distill', '--out', tmp_path/'c', *data, *TINY, '--n_experts', '3')[0] == 0
    assert store.ids() == [0, 1, 2] and store.manifest(2)['training'] == store.manifest(0)['training']

@pytest.mark.parametrize('dataset', list(DATASETS))
def test_an_mtt_preset_for_every_dataset_and_ipc(dataset):
    for ipc in (1, 5, 10, 50):
        cfg, source = mtt_preset(dataset, ipc), mtt_preset_source(dataset, ipc)
        assert isinstance(cfg, MTTConfig) and cfg.min_expert_epochs >= 1
        kind = source.split(':')[0]
        if (dataset, ipc) in MTT_TABLE: assert kind == ('published' if dataset in ('cifar10', 'cifar100', 'tiny') else 'ours'), source
        else: assert kind == 'derived' and not cfg.zca, source

def test_mtt_on_digits_at_ipc_5(tmp_path):
    "IPC 5 has no row of its own: it runs with the derived preset"
    code, lines = inproc('mim4dd_distill', '--out', tmp_path/'o', '--ipc', '5', '--n_experts', '1', *TINY)
    assert (code, lines) == (0, [])
    s = json.loads((tmp_path/'o'/'summary.json').read_text())
    assert s['mtt_preset'] == 'derived: the digits IPC 10 row (ours) with ZCA off' and s['config']['loop']['ipc'] == 5

def test_load_distilled_and_export(tmp_path):
    folder = pics(tmp_path)
    assert inproc('mim4dd_distill', '--out', tmp_path/'run', '--dataset', 'imagefolder', '--path', folder, '--base', 'dm',
                  '--ipc', '2', *TINY) == (0, [])
    ds = mim4dd.load_distilled(tmp_path/'run'/'distilled.pt')
    assert ds.x.shape == (6, 3, 16, 16) and ds.y.tolist() == [0, 0, 1, 1, 2, 2] and ds.eval_lr > 0
    _, test = load_dataset('imagefolder', path=str(folder))
    assert torch.allclose(ds.prepare(test).x, test.x, atol=1e-5)  # same folder, same normalisation
    ds.save_image_folder(tmp_path/'png')
    assert sorted(str(p.relative_to(tmp_path/'png')) for p in (tmp_path/'png').rglob('*.png'))[:2] == ['0_class0/00000.png', '0_class0/00001.png']
    assert len(list((tmp_path/'png').rglob('*.png'))) == 6
    dd = ds.to_dd_ranking(tmp_path/'dd')
    assert torch.equal(torch.load(tmp_path/'dd'/'labels.pt', weights_only=True), ds.y)
    assert torch.equal(torch.load(tmp_path/'dd'/'images.pt', weights_only=True), ds.x)  # the set itself, not clipped to pictures
    assert dd['lr'] is None and not (tmp_path/'dd'/'lr.pt').exists()  # DM learns no lr: DD-Ranking then searches one
