"""mim4dd_eval refuses test images of other classes than the set's, and says where a `--set` list swallowed the set's path."""
import io
from contextlib import redirect_stderr
from pathlib import Path
import pytest, torch
from mim4dd.data import make_fake
from mim4dd.cli import run_script, distill_cli, eval_cli


def inproc(func, prog, *args):
    "(exit code, stderr lines) of a console script run in this process"
    err = io.StringIO()
    with redirect_stderr(err): code = run_script(func, [str(a) for a in args], prog=prog)
    return code, err.getvalue().splitlines()


@pytest.fixture
def run(tmp_path, monkeypatch):
    "A DM set distilled from a 3-class image folder (a, b, c) in one iteration"
    monkeypatch.setenv('MIM4DD_DATA', str(tmp_path/'data'))
    n = torch.get_num_threads(); torch.set_num_threads(1)
    make_fake('imagefolder', tmp_path, n_per_class=12, n_test_per_class=4, path='pics', size=16)
    code, err = inproc(distill_cli, 'mim4dd_distill', '--out', tmp_path/'run', '--dataset', 'imagefolder', '--path', tmp_path/'pics',
                       '--base', 'dm', '--iterations', '1', '--eval_runs', '1', '--eval_epochs', '1', '--device', 'cpu', '--quiet')
    assert code == 0, err
    yield tmp_path
    torch.set_num_threads(n)


def test_eval_refuses_other_classes(run):
    classes = sorted(p.name for p in (run/'pics'/'train').iterdir())
    for split in ('train', 'test'):  # the same images, the first class renamed: it now sorts last, shifting every label
        (run/'pics'/split/classes[0]).rename(run/'pics'/split/'zz')
    before = sorted(p.name for p in (run/'run').iterdir())
    code, err = inproc(eval_cli, 'mim4dd_eval', run/'run'/'distilled.pt', '--path', run/'pics', '--n_runs', '1', '--n_epochs', '1', '--no-progress')
    now = classes[1:] + ['zz']
    assert (code, err) == (2, [f'mim4dd_eval: error: the test images have classes {now} but the set was distilled for {classes}'])
    assert sorted(p.name for p in (run/'run').iterdir()) == before  # nothing written


def test_eval_names_its_result_by_runs_and_seed(run):
    for n_runs in (1, 2):
        code, err = inproc(eval_cli, 'mim4dd_eval', run/'run'/'distilled.pt', '--n_runs', n_runs, '--n_epochs', '1', '--quiet')
        assert code == 0, err
    names = sorted(p.name for p in (run/'run').glob('eval_*.json'))
    assert names == ['eval_ConvNet_mtt_epochs1_runs1_seed0.json', 'eval_ConvNet_mtt_epochs1_runs2_seed0.json']  # one did not overwrite the other


def test_a_set_list_that_took_the_path_is_named(tmp_path):
    code, err = inproc(eval_cli, 'mim4dd_eval', '--set', 'eval.runs=1', tmp_path/'distilled.pt')
    assert (code, err) == (2, ['mim4dd_eval: error: the following arguments are required: distilled '
                               '(--set takes every word after it: put it last) (see mim4dd_eval --help)'])


def test_eval_on_another_folder_keeps_both_results(run):
    code, err = inproc(eval_cli, 'mim4dd_eval', run/'run'/'distilled.pt', '--n_runs', '1', '--n_epochs', '1', '--quiet')
    assert code == 0, err
    import shutil; shutil.copytree(run/'pics', run/'copy')
    code, err = inproc(eval_cli, 'mim4dd_eval', run/'run'/'distilled.pt', '--path', run/'copy', '--n_runs', '1', '--n_epochs', '1', '--quiet')
    assert code == 0, err
    assert sorted(p.name for p in (run/'run').glob('eval_*.json')) == ['eval_ConvNet_mtt_epochs1_runs1_seed0.json',
                                                                        'eval_ConvNet_mtt_epochs1_runs1_seed0_on_copy.json']
