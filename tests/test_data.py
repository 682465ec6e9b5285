"What is true of `mim4dd.data` as a package: every registered format round-trips, and the cache behaves."
import warnings
import pytest
import torch
import mim4dd.data as D
from mim4dd.data import DATASETS, ImageSet, load_dataset, make_fake

# (name, options of the fake writer, options of load_dataset, exact pixels?)
CASES = [('mnist', {}, {}, True), ('mnist', dict(compress=False), {}, True), ('fashion_mnist', {}, {}, True),
         ('svhn', {}, {}, True), ('cifar10', {}, {}, True), ('cifar10', dict(source='jpg'), dict(source='jpg'), False),
         ('cifar100', {}, {}, True), ('tiny', {}, {}, False), ('tiny', dict(zip=True), {}, False),
         ('imagefolder', dict(path='f'), dict(path='f'), True),
         ('imagefolder', dict(path='f.zip', channels=1, size=(12, 10)), dict(path='f.zip', channels=1), True)]

def test_every_fakeable_dataset_is_tested():
    assert {c[0] for c in CASES} == {n for n, s in DATASETS.items() if s.fake is not None}

@pytest.mark.parametrize('name,fake_kw,load_kw,exact', CASES, ids=lambda v: str(v))
def test_format_round_trip(tmp_path, name, fake_kw, load_kw, exact):
    folder = name in ('tiny', 'imagefolder') or fake_kw.get('source') == 'jpg'   # read back class by class
    fake = make_fake(name, tmp_path/'data', n_classes=4 if name == 'tiny' else None, shuffle=not folder, **fake_kw)
    train, test = load_dataset(name, tmp_path/'data', cache_dir=tmp_path/'cache', **load_kw)
    for s, split in (('train', train), ('test', test)):
        x, y = fake[s]
        assert split.x.dtype == torch.float32 and split.y.dtype == torch.int64
        assert torch.equal(split.y, y)
        err = (split.pixels().float() - x.float()).abs()
        assert err.max() == 0 if exact else err.mean() < 3
    assert train.info.classes == fake['classes'] and train.info.n_classes == len(fake['classes'])
    assert train.info.im_size == tuple(fake['train'][0].shape[2:])

def test_cache_round_trip(tmp_path, monkeypatch):
    make_fake('cifar10', tmp_path)
    train, test = load_dataset('cifar10', tmp_path, cache_dir=tmp_path/'c')
    files = list((tmp_path/'c').iterdir())
    assert len(files) == 1 and files[0].suffix == '.pt'          # one file, no temporary left behind
    def boom(*a, **k): raise AssertionError('the files were read although the cache exists')
    monkeypatch.setattr(DATASETS['cifar10'], 'read', boom)
    train2, test2 = load_dataset('cifar10', tmp_path, cache_dir=tmp_path/'c')
    assert torch.equal(train2.x, train.x) and torch.equal(test2.y, test.y) and train2.info == train.info
    with pytest.raises(AssertionError, match='were read'): load_dataset('cifar10', tmp_path, cache_dir=tmp_path/'c', rebuild=True)

def test_cache_holds_uint8(tmp_path):
    make_fake('svhn', tmp_path)
    load_dataset('svhn', tmp_path, cache_dir=tmp_path/'c')
    raw = torch.load(next((tmp_path/'c').iterdir()), weights_only=True)
    assert raw['train'][0].dtype == torch.uint8 and raw['scale'] == 255

def test_failed_cache_write_warns_and_leaves_nothing(tmp_path, monkeypatch):
    make_fake('mnist', tmp_path)
    def full(*a, **k): raise OSError('disk full')
    monkeypatch.setattr(D.torch, 'save', full)
    with pytest.warns(UserWarning, match='could not write the cache'):
        train, _ = load_dataset('mnist', tmp_path, cache_dir=tmp_path/'c')
    assert len(train) == 30 and list((tmp_path/'c').iterdir()) == []

def test_interrupted_cache_write_leaves_no_partial_file(tmp_path, monkeypatch):
    make_fake('mnist', tmp_path)
    real_save = torch.save
    def half(obj, f): f.write(b'half a file'); raise KeyboardInterrupt
    monkeypatch.setattr(D.torch, 'save', half)
    with pytest.raises(KeyboardInterrupt): load_dataset('mnist', tmp_path, cache_dir=tmp_path/'c')
    assert list((tmp_path/'c').iterdir()) == []
    monkeypatch.setattr(D.torch, 'save', real_save)
    assert len(load_dataset('mnist', tmp_path, cache_dir=tmp_path/'c')[1]) == 20

def test_changed_files_are_read_again(tmp_path):
    make_fake('cifar100', tmp_path, seed=0)
    a, _ = load_dataset('cifar100', tmp_path, cache_dir=tmp_path/'c')
    fake = make_fake('cifar100', tmp_path, seed=1)
    b, _ = load_dataset('cifar100', tmp_path, cache_dir=tmp_path/'c')
    assert torch.equal(b.pixels(), fake['train'][0]) and not torch.equal(a.x, b.x)

def test_default_root_and_cache_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv('MIM4DD_DATA', str(tmp_path))
    assert D.default_root() == tmp_path
    make_fake('fashion_mnist', tmp_path)
    load_dataset('fashion_mnist')
    assert len(list((tmp_path/'cache').glob('fashion_mnist-idx-*.pt'))) == 1

def test_digits_is_embedded_and_fixed(tmp_path):
    (a, at), (b, bt) = load_dataset('digits', tmp_path/'nowhere'), load_dataset('digits')
    assert torch.equal(a.x, b.x) and torch.equal(at.y, bt.y) and (len(a), len(at)) == (1198, 599)
    assert not (tmp_path/'nowhere').exists()                     # digits needs no root and writes nothing

def test_errors(tmp_path):
    with pytest.raises(ValueError, match='known: digits, mnist'): load_dataset('MNIST')
    with pytest.raises(FileNotFoundError, match='does not exist'): load_dataset('svhn', tmp_path/'missing')
    with pytest.raises(FileNotFoundError, match='looked in'): load_dataset('tiny', tmp_path)
    with pytest.raises(TypeError, match='options'): load_dataset('digits', source='jpg')
    with pytest.raises(ValueError, match='nothing to fake'): make_fake('digits', tmp_path)
    with pytest.raises(ValueError, match='imagefolder cannot be downloaded'):
        load_dataset('imagefolder', tmp_path, path='nope', download=True)   # fails before any network access
    train, _ = load_dataset('digits')
    with pytest.raises(ValueError, match='smallest class'): train.sample_per_class(117)
    with pytest.raises(TypeError): train.sample_per_class(2.0)
    with pytest.raises(ValueError, match='one per channel'): load_dataset('digits', mean=(0.1, 0.2), std=(1., 1.))

def test_sample_per_class_is_balanced_and_reproducible():
    train, _ = load_dataset('digits')
    x1, y1 = train.sample_per_class(5, torch.Generator().manual_seed(3))
    x2, y2 = train.sample_per_class(5, torch.Generator().manual_seed(3))
    assert torch.equal(x1, x2) and torch.equal(y1, torch.arange(10).repeat_interleave(5))
    assert len({tuple(r.flatten().tolist()) for r in x1}) == 50  # no image drawn twice
    sub = train.subset(train.y == 3)
    assert isinstance(sub, ImageSet) and set(sub.y.tolist()) == {3} and sub.info is train.info
