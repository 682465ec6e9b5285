"""Every user error of the console scripts is one line on stderr naming the option or file, a non-zero exit (2 for a
command line that cannot work, 1 otherwise) and no output left behind; Ctrl-C and a diverging run keep a good checkpoint.

A representative set runs through the installed console scripts (each costs a few seconds of start-up); the rest calls
`run_script`, the function those scripts call, in this process."""
import io, os, re, signal, subprocess, sys, time
from contextlib import redirect_stderr
from pathlib import Path
import pytest, torch
from mim4dd.data import load_dataset
from mim4dd.experts import ExpertStore, train_experts
from mim4dd.cli import run_script, experts_cli, _parser
from mim4dd.cli import distill_cli, eval_cli, distill_run
from mim4dd.distill import DistillConfig, Distiller, DistilledSet, read_checkpoint

BIN = Path(sys.executable).parent
ENV = dict(os.environ, OMP_NUM_THREADS='1', TQDM_DISABLE='1')
DM = ['--base', 'dm', '--iterations', '2', '--eval_runs', '1', '--eval_epochs', '1', '--no-progress']
FUNCS = {'mim4dd_distill': distill_cli, 'mim4dd_eval': eval_cli, 'mim4dd_experts': experts_cli}

@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

def files(d): return sorted(str(p.relative_to(d)) for p in Path(d).rglob('*'))

def script(cwd, cmd, *args):
    "Run an installed console script in `cwd`: (exit code, stderr lines)"
    r = subprocess.run([str(BIN/cmd), *map(str, args)], cwd=cwd, capture_output=True, text=True, env=ENV, timeout=300)
    return r.returncode, r.stderr.splitlines()

def inproc(cmd, *args):
    "The same through `run_script` in this process: (exit code, stderr lines)"
    err = io.StringIO()
    with redirect_stderr(err): code = run_script(FUNCS[cmd], [str(a) for a in args], prog=cmd)
    return code, err.getvalue().splitlines()

def refused(result, code, *words, cmd='mim4dd_distill'):
    "Assert exit `code` and exactly one stderr line, from `cmd`, holding every one of `words`"
    got, lines = result
    assert (got, len(lines)) == (code, 1), (got, lines)
    assert lines[0].startswith(f'{cmd}: error: ') and all(str(w) in lines[0] for w in words), lines[0]
    return lines[0]

@pytest.fixture(scope='module')
def made(tmp_path_factory):
    "A real expert file, checkpoint and distilled set (digits, tiny), made in this process"
    d = tmp_path_factory.mktemp('made')
    train, test = load_dataset('digits')
    torch.set_num_threads(1)
    train_experts(train, test, d/'experts', n_experts=1, n_epochs=1, net_kw=dict(width=8), batch_size=64)
    cfg = DistillConfig(dataset='digits', base='dm', iterations=1, batch_real=16)
    Distiller(cfg, train).run(d/'run', progress=False)
    return d

# --- through the installed console scripts ---------------------------------------------------------------------------

def test_scripts_refuse_in_one_line(tmp_path, made):
    refused(script(tmp_path, 'mim4dd_distill', '--out', 'o', '--dataset', 'imagenet'), 2, "--dataset 'imagenet'", 'digits, mnist')
    refused(script(tmp_path, 'mim4dd_distill', '--out', 'o', '--dataset', 'mnist', '--data_root', tmp_path/'none', *DM), 1,
            'no mnist files found', f'{tmp_path}/none (which does not exist)', '--download')
    refused(script(tmp_path, 'mim4dd_distill', '--out', 'o', '--lam', '0.5', '--lam_ratio', '0.2'), 2, '--lam 0.5 and --lam_ratio 0.2')
    (tmp_path/'o2').mkdir(); (tmp_path/'o2'/'checkpoint.pt').write_bytes(os.urandom(5000))
    refused(script(tmp_path, 'mim4dd_distill', '--out', 'o2', *DM), 1, 'o2/checkpoint.pt', 'truncated', 'delete it')
    refused(script(tmp_path, 'mim4dd_eval', made/'run'/'checkpoint.pt'), 1, 'is not a distilled set',
            'it is a distillation checkpoint', cmd='mim4dd_eval')
    assert files(tmp_path) == ['o2', 'o2/checkpoint.pt']  # nothing was written

def test_debug_shows_the_traceback(tmp_path):
    code, lines = script(tmp_path, 'mim4dd_distill', '--out', 'o', '--dataset', 'mnist', '--data_root', tmp_path, '--debug')
    assert code == 1 and lines[0].startswith('Traceback') and 'FileNotFoundError' in lines[-1]

# --- the same code in this process ------------------------------------------------------------------------------------

@pytest.mark.parametrize('opt', ['lam', 'tau', 'gamma', 'lr_img', 'lr_img_dm', 'lam_ratio'])
@pytest.mark.parametrize('value', ['nan', 'inf', '-inf', '-1'])
def test_numbers_must_be_finite_and_in_range(tmp_path, opt, value):
    line = refused(inproc('mim4dd_distill', '--out', tmp_path/'o', f'--{opt}={value}'), 2, f'--{opt} must be a finite number')
    assert line.endswith(f'got {float(value)}') and files(tmp_path) == []

def test_unreadable_options(tmp_path):
    refused(inproc('mim4dd_distill', '--out', tmp_path/'o', '--tau', 'abc'), 2, "argument --tau: invalid float value: 'abc'")
    refused(inproc('mim4dd_experts', '--out', tmp_path/'o', '--n_epochs', '1.5'), 2, "argument --n_epochs: invalid int value",
            cmd='mim4dd_experts')
    assert files(tmp_path) == []

@pytest.mark.parametrize('ipc', ['0', '-1'])
def test_ipc_must_be_positive(tmp_path, ipc):
    refused(inproc('mim4dd_distill', '--out', tmp_path/'o', '--ipc', ipc), 2, f'--ipc must be an integer >= 1, got {ipc}')
    assert files(tmp_path) == []

def test_ipc_above_the_class_size(tmp_path):
    refused(inproc('mim4dd_distill', '--out', tmp_path/'o', '--ipc', '500', *DM), 2, 'ipc=500 is more than the', 'smallest class of digits')
    assert files(tmp_path) == []

def test_output_under_a_file(tmp_path):
    (tmp_path/'f').write_text('')
    refused(inproc('mim4dd_distill', '--out', tmp_path/'f'/'run', *DM), 1, f'--out {tmp_path}/f/run: {tmp_path}/f is a file')
    refused(inproc('mim4dd_experts', '--out', tmp_path/'f'), 1, f'{tmp_path}/f is a file', cmd='mim4dd_experts')
    assert files(tmp_path) == ['f']

def test_truncated_checkpoint_and_experts(tmp_path, made):
    (tmp_path/'o').mkdir(); (tmp_path/'o'/'checkpoint.pt').write_bytes((made/'run'/'checkpoint.pt').read_bytes()[:3000])
    refused(inproc('mim4dd_distill', '--out', tmp_path/'o', *DM), 1, f'checkpoint {tmp_path}/o/checkpoint.pt: it is truncated')
    (tmp_path/'s').mkdir(); (tmp_path/'s'/'expert_00000.pt').write_bytes((made/'experts'/'expert_00000.pt').read_bytes()[:-100])
    refused(inproc('mim4dd_distill', '--out', tmp_path/'o2', '--experts', tmp_path/'s', '--iterations', '2'), 1,
            f'expert file {tmp_path}/s/expert_00000.pt: it is truncated')
    refused(inproc('mim4dd_experts', '--out', tmp_path/'s', '--n_experts', '1', '--n_epochs', '1'), 1,
            f'{tmp_path}/s/expert_00000.pt: it is truncated', cmd='mim4dd_experts')
    assert files(tmp_path) == ['o', 'o/checkpoint.pt', 's', 's/expert_00000.pt']

def test_eval_refuses_other_files(tmp_path, made):
    refused(inproc('mim4dd_eval', made/'experts'/'expert_00000.pt'), 1, 'not a distilled set', 'expert trajectory', cmd='mim4dd_eval')
    refused(inproc('mim4dd_eval', tmp_path/'none.pt'), 1, f'distilled set {tmp_path}/none.pt does not exist', cmd='mim4dd_eval')
    refused(inproc('mim4dd_eval', made/'run'/'distilled.pt', '--n_runs', '0'), 2, '--n_runs must be', cmd='mim4dd_eval')
    refused(inproc('mim4dd_eval', made/'run'/'distilled.pt', '--protocol', 'x'), 2, "--protocol 'x' is not one of: mtt, dc", cmd='mim4dd_eval')

def test_no_message_names_a_missing_option(tmp_path):
    "Every --option a message names is one the command has"
    opts = {a.dest for a in _parser(distill_cli, 'x')._actions}
    line = refused(inproc('mim4dd_distill', '--out', tmp_path/'o', '--dataset', 'mnist', '--data_root', tmp_path, *DM), 1, 'mnist')
    assert all(o in opts for o in re.findall(r'--(\w+)', line)), line

# --- interrupts and divergence ----------------------------------------------------------------------------------------

def test_sigint_saves_and_resumes(tmp_path):
    args = ['--out', 'o', '--base', 'dm', '--checkpoint_every', '1', '--eval_runs', '1', '--eval_epochs', '1', '--no-progress']
    p = subprocess.Popen([str(BIN/'mim4dd_distill'), *args, '--iterations', '100000'], cwd=tmp_path, env=ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (tmp_path/'o'/'checkpoint.pt').exists() and p.poll() is None and time.time() < deadline: time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    n = read_checkpoint(tmp_path/'o'/'checkpoint.pt')['iteration']
    assert p.returncode == 130 and err.splitlines() == [f'interrupted at iteration {n}; rerun the same command to resume'], err
    assert n >= 1 and not (tmp_path/'o'/'distilled.pt').exists()
    # resumed (one more iteration; `iterations` may change on resume), it gives the images of an uninterrupted run
    subprocess.run([str(BIN/'mim4dd_distill'), *args, '--iterations', str(n + 1)], cwd=tmp_path, env=ENV, check=True, capture_output=True)
    train, _ = load_dataset('digits')
    whole = Distiller(DistillConfig(dataset='digits', base='dm', iterations=n + 1, checkpoint_every=1), train).run(None, progress=False)
    assert torch.equal(DistilledSet.load(tmp_path/'o'/'distilled.pt').x, whole.x)

def test_diverging_run_keeps_the_last_good_checkpoint(tmp_path):
    "Exploding pixels (finite loss under instance norm) stop the run; the checkpoint on disk is the last good state"
    train, _ = load_dataset('digits')
    cfg = DistillConfig(dataset='digits', base='dm', iterations=6, checkpoint_every=1, batch_real=16)
    d = Distiller(cfg, train); d.run(tmp_path/'o', progress=False, stop_after=2)
    good = read_checkpoint(tmp_path/'o'/'checkpoint.pt')
    d = Distiller(cfg, train)
    d.x_syn.register_hook(lambda g: g * 1e12)  # what lr_img_dm=1e12 would do, from iteration 3 on
    with pytest.raises(FloatingPointError, match='iteration 3: the synthetic pixels diverged .*lower lr_img_dm; '
                                                 f'{tmp_path}/o/checkpoint.pt holds iteration 2, the last good state'):
        d.run(tmp_path/'o', progress=False)
    kept = read_checkpoint(tmp_path/'o'/'checkpoint.pt')
    assert kept['iteration'] == 2 and torch.equal(kept['x_syn'], good['x_syn']) and kept['x_syn'].abs().max() < 10

def test_diverging_script_exits_1_in_one_line(tmp_path):
    code, lines = script(tmp_path, 'mim4dd_distill', '--out', 'o', '--lr_img_dm', '1e12', '--checkpoint_every', '1', *DM)
    assert code == 1 and len(lines) == 1 and 'iteration 1: the synthetic pixels diverged' in lines[0], lines
    assert 'lower lr_img_dm; no checkpoint was written' in lines[0]
    assert not (tmp_path/'o').exists()

def test_experts_from_another_model(tmp_path, made):
    "A store trained with another network (width 8, not the run's 128) is refused before anything is written"
    code, lines = inproc('mim4dd_distill', '--out', tmp_path/'o', '--experts', made/'experts', '--iterations', '1', '--no-progress')
    assert code == 1 and len(lines) == 1 and 'width' in lines[0], (code, lines)
    assert files(tmp_path) == []

def test_diverging_experts_leave_nothing(tmp_path):
    "An expert whose loss turns nan stops the script in one line naming it, the epoch and lr; no expert file or partial is left"
    line = refused(inproc('mim4dd_experts', '--out', tmp_path/'s', '--n_experts', '1', '--n_epochs', '1', '--lr', '1e9',
                          '--device', 'cpu', '--no-progress'), 1, 'expert 0 diverged in epoch 1', 'lr=1e+09', cmd='mim4dd_experts')
    assert 'experts.lr' in line and '--lr' in line
    assert not list((tmp_path/'s').glob('expert_*'))

def test_diverging_expert_drops_its_partial_checkpoint(tmp_path, monkeypatch):
    "Epoch 1 is saved as a partial checkpoint; a non-finite epoch 2 removes it (a rerun would only diverge again)"
    import mim4dd.experts as ex
    orig, calls, seen = ex.train_epoch, [], []
    def blow_up_second(net, *args, **kw):
        out = orig(net, *args, **kw); calls.append(1)
        if len(calls) == 2:
            with torch.no_grad(): next(net.parameters()).fill_(float('nan'))  # what too large a step does
        return out
    monkeypatch.setattr(ex, 'train_epoch', blow_up_second)
    train, test = load_dataset('digits')
    store = ExpertStore(tmp_path/'s')
    with pytest.raises(ValueError, match=r'expert 0 diverged in epoch 2 .* lr=0\.01'):
        train_experts(train, test, store, n_experts=1, n_epochs=3, net_kw=dict(width=8), batch_size=64, ensemble=False,
                      callback=lambda i, e, r: seen.append(store.partial_path(i).exists()))
    assert seen == [True] and files(tmp_path/'s') == []

def test_spec_numbers_are_held_to_the_flags_bounds(tmp_path):
    "--set and --config cannot pass what the matching flag refuses; a seed the generators cannot take is refused before any work"
    refused(inproc('mim4dd_distill', '--out', tmp_path/'o', '--seed', str(10**20)), 2, 'loop.seed must be < 2**31', f'got {10**20}')
    refused(inproc('mim4dd_distill', '--out', tmp_path/'o', '--set', 'experts.lr=inf'), 2, 'experts.lr must be a finite number, got inf')
    refused(inproc('mim4dd_distill', '--out', tmp_path/'o', '--set', 'mtt.syn_steps=0'), 2, 'mtt.syn_steps must be >= 1, got 0')
    refused(inproc('mim4dd_distill', '--out', tmp_path/'o', '--set', 'loop.checkpoint_every=-1'), 2, 'loop.checkpoint_every must be >= 0')
    assert files(tmp_path) == []
