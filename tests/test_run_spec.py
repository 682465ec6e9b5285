"""A run is a value (chapter 21): `mim4dd_distill` writes the resolved `RunSpec` whole as config.json, `--config` reruns it
bit for bit, `--set` reaches every field and `--help` lists them all."""
import io, json, subprocess, sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
import pytest, torch
from mim4dd.cli import run_script, distill_cli
from mim4dd.spec import RunSpec, SECTIONS, spec_fields

BIN = Path(sys.executable).parent
SMALL = ['--iterations', '3', '--syn_steps', '2', '--max_start_epoch', '1', '--n_experts', '1', '--eval_runs', '1',
         '--eval_epochs', '2', '--device', 'cpu', '--no-progress']

@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

def distill(*args):
    "(exit code, stdout, stderr lines) of mim4dd_distill run in this process"
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err): code = run_script(distill_cli, [str(a) for a in args], prog='mim4dd_distill')
    return code, out.getvalue(), err.getvalue().splitlines()

def images(folder): return torch.load(Path(folder)/'distilled.pt', weights_only=True)['x']

def test_config_reruns_the_run_bit_for_bit(tmp_path):
    a, b = tmp_path/'a', tmp_path/'b'
    code, _, err = distill('--out', a, *SMALL, '--lam_ratio', '0.2', '--set', 'mim.head_warmup=1', 'mtt.lr_img=50')
    assert code == 0, err
    written = json.loads((a/'config.json').read_text())
    spec = RunSpec.from_dict(written)
    assert (spec.mim.head_warmup, spec.mtt.lr_img, spec.mtt.syn_steps, spec.mim.lam_ratio) == (1, 50., 2, 0.2)
    assert spec.mim.lam > 0  # the calibrated lambda is what the file holds
    assert spec.experts.store == str((a/'experts').resolve()) and spec.experts.n_experts == 1
    nulls = [k for k, *_ in spec_fields() if spec.get(k) is None]
    assert nulls == ['data.path', 'data.size', 'data.root'], nulls  # only "not an image folder" and "the default location"
    assert json.loads((a/'summary.json').read_text())['config'] == written
    code, _, err = distill('--out', b, '--config', a/'config.json', '--no-progress')
    assert code == 0, err
    assert torch.equal(images(a), images(b))  # bit-identical
    assert json.loads((b/'config.json').read_text()) == written
    assert not (b/'experts').exists()  # the first run's experts served

def test_set_and_config_errors_are_one_line(tmp_path):
    for args, msg in [(['--set', 'mtt.lr_imgs=3'], "mtt has no field 'lr_imgs'"),
                      (['--set', 'loop.ipc=2.5'], 'loop.ipc must be an int, got'),
                      (['--set', 'lr_img=3'], 'section.field=value'),
                      (['--set', 'mim.tau=-1'], 'tau must be > 0'),
                      (['--set', 'mtt.capture=compile'], "capture='compile' runs the exact mode's steps: set mode='exact'"),
                      (['--set', 'mtt.capture=compile', 'mtt.mode=exact', 'mtt.precision=bf16'], "capture='compile' runs the student in float32"),
                      (['--config', tmp_path/'missing.json'], 'no such file')]:
        code, out, err = distill('--out', tmp_path/'o', *args)
        assert code == 2 and len(err) == 1 and msg in err[0], (args, err)
    (tmp_path/'bad.json').write_text('{"loop": {"ipcs": 3}}')
    code, _, err = distill('--out', tmp_path/'o', '--config', tmp_path/'bad.json')
    assert code == 2 and "loop has no field 'ipcs'" in err[0] and len(err) == 1
    assert not (tmp_path/'o').exists()

def test_flags_override_config_only_when_given(tmp_path):
    (tmp_path/'c.json').write_text(json.dumps({'loop': {'ipc': 10, 'base': 'dm'}, 'mim': {'tau': 0.5}}))
    from mim4dd.cli import spec_from_flags
    s = spec_from_flags(dict(ipc=None, tau=None, base=None, lam=None), tmp_path/'c.json')  # no flag given: the file's values
    assert (s.loop.ipc, s.loop.base, s.mim.tau) == (10, 'dm', 0.5)
    s = spec_from_flags(dict(ipc=1, base='mtt', tau=None), tmp_path/'c.json')  # given, even at the spec's defaults: they win
    assert (s.loop.ipc, s.loop.base, s.mim.tau) == (1, 'mtt', 0.5)
    s = spec_from_flags(dict(ipc=2, tau=0.1), tmp_path/'c.json', ['mim.tau=0.3'])
    assert (s.loop.ipc, s.mim.tau) == (2, 0.3)

def test_help_lists_every_field_with_its_default():
    r = subprocess.run([str(BIN/'mim4dd_distill'), '--help'], capture_output=True, text=True)
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    for key, _, default, doc in spec_fields():
        hit = [l for l in lines if l.strip().startswith(f'{key}={json.dumps(default)}')]
        assert len(hit) == 1 and doc[:30] in hit[0], key
    assert len(spec_fields()) == sum(len(c.__dataclass_fields__) for c in SECTIONS.values()) > 40

def script(func, prog, *args):
    "(exit code, stdout, stderr lines) of a console script run in this process"
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err): code = run_script(func, [str(a) for a in args], prog=prog)
    return code, out.getvalue(), err.getvalue().splitlines()

def test_experts_and_eval_read_the_run_spec(tmp_path):
    "mim4dd_experts --config trains the experts a spec's run reads; mim4dd_eval judges a set as its run's spec says"
    from mim4dd.cli import experts_cli, eval_cli
    from mim4dd.experts import ExpertStore
    spec = RunSpec().override('loop.device=cpu', 'loop.seed=4', 'mtt.syn_steps=2', 'mtt.max_start_epoch=2', 'mtt.expert_epochs=1',
                              'experts.n_experts=2', 'experts.batch_size=128', 'experts.seed=7', 'eval.runs=1', 'eval.epochs=2',
                              f"experts.store={tmp_path/'store'}")
    spec.save(tmp_path/'spec.json')
    code, out, err = script(experts_cli, 'mim4dd_experts', '--config', tmp_path/'spec.json', '--no-progress')
    assert code == 0, err
    store = ExpertStore(tmp_path/'store')
    assert store.ids() == [0, 1] and json.loads(out)['written'] == [0, 1]
    tr = store.manifest(0)['training']
    assert (tr['n_epochs'], tr['batch_size'], tr['seed']) == (2, 128, 7)  # max_start_epoch - 1 + expert_epochs epochs, the spec's SGD
    written = RunSpec.load(tmp_path/'store'/'spec.json')
    assert written.experts.train_epochs == 2 and written.mtt.syn_steps == 2  # resolved, whole
    # flags and --set edit the spec: a third expert, into the same store
    code, out, err = script(experts_cli, 'mim4dd_experts', '--config', tmp_path/'spec.json', '--set', 'experts.n_experts=3', '--quiet')
    assert code == 0 and store.ids() == [0, 1, 2], err
    # the distillation of that spec uses these experts and trains none
    code, _, err = distill('--out', tmp_path/'run', '--config', tmp_path/'spec.json', '--set', 'loop.iterations=2', '--no-progress')
    assert code == 0, err
    assert len(ExpertStore(tmp_path/'store')) == 3 and not (tmp_path/'run'/'experts').exists()
    # mim4dd_eval: the run's eval section and seed by default, the flags over them
    code, out, err = script(eval_cli, 'mim4dd_eval', tmp_path/'run'/'distilled.pt', '--no-progress')
    assert code == 0, err
    res = json.loads(next((tmp_path/'run').glob('eval_ConvNet_*.json')).read_text())
    assert (res['n_runs'], res['spec']['eval']['epochs'], res['spec']['loop']['seed']) == (1, 2, 4)
    assert 'epochs=2' in res['protocol']
    code, out, err = script(eval_cli, 'mim4dd_eval', tmp_path/'run'/'distilled.pt', '--n_runs', '2', '--set', 'eval.epochs=1', '--quiet')
    assert code == 0, err
    res = json.loads((tmp_path/'run'/'eval_ConvNet_mtt_epochs1_runs2_seed4.json').read_text())
    assert res['n_runs'] == 2 and res['spec']['eval']['runs'] == 2
    code, out, err = script(eval_cli, 'mim4dd_eval', tmp_path/'run'/'distilled.pt', '--set', 'eval.runs=0')
    assert code == 2 and len(err) == 1 and 'eval.runs must be >= 1' in err[0], err

@pytest.mark.parametrize('assignment, msg', [
    ('mtt.syn_steps=0', 'mtt.syn_steps must be >= 1, got 0'), ('mtt.max_start_epoch=0', 'mtt.max_start_epoch must be >= 1'),
    ('loop.seed=-1', 'loop.seed must be >= 0'), (f'loop.seed={2**31}', 'loop.seed must be < 2**31'),
    ('loop.checkpoint_every=-1', 'loop.checkpoint_every must be >= 0'), ('loop.ipc=0', 'loop.ipc must be >= 1'),
    ('loop.iterations=0', 'loop.iterations must be >= 1'), ('mim.lam=-0.5', 'mim.lam must be >= 0'),
    ('mim.lam=inf', 'mim.lam must be a finite number, got inf'), ('mim.lam_ratio=-1', 'mim.lam_ratio must be >= 0'),
    ('mim.gamma=0', 'mim.gamma must be > 0'), ('mim.tau=0', 'mim.tau must be > 0'), ('mim.tau=nan', 'mim.tau must be a finite number'),
    ('mtt.lr_img=0', 'mtt.lr_img must be > 0'), ('mtt.lr_img=inf', 'mtt.lr_img must be a finite number'),
    ('mtt.lr_lr=-1', 'mtt.lr_lr must be >= 0'), ('dm.lr_img=0', 'dm.lr_img must be > 0'), ('experts.lr=inf', 'experts.lr must be a finite'),
    ('experts.n_experts=-1', 'experts.n_experts must be >= 0'), ('eval.runs=0', 'eval.runs must be >= 1'),
    ('eval.epochs=-1', 'eval.epochs must be >= 0')])
def test_check_names_the_field_out_of_bounds(assignment, msg):
    "RunSpec.check refuses, by key, what the flag for that field refuses (through override and through from_dict alike)"
    import re
    with pytest.raises(ValueError, match=re.escape(msg)): RunSpec().override(assignment).check()
    section, _, rest = assignment.partition('.'); name, _, value = rest.partition('=')
    with pytest.raises(ValueError, match=re.escape(msg)): RunSpec.from_dict({section: {name: value}}).check()

def test_check_allows_the_flags_edges():
    "The flags' own bounds pass: seed 2**31 - 1, checkpoint_every 0, lr_lr 0; the defaults pass"
    s = RunSpec().override(f'loop.seed={2**31 - 1}', 'loop.checkpoint_every=0', 'mtt.lr_lr=0', 'mtt.syn_steps=1').check()
    assert (s.loop.seed, s.loop.checkpoint_every, s.mtt.lr_lr) == (2**31 - 1, 0, 0.)
    assert RunSpec().check() == RunSpec()

def test_check_edits_refuses_lam_set_twice():
    "An edit that leaves both mim.lam and mim.lam_ratio nonzero is refused; a calibrated run's file (both set) reruns as it is"
    with pytest.raises(ValueError, match=r'mim\.lam=0\.5 and mim\.lam_ratio=0\.2 both set the weight'):
        RunSpec().override('mim.lam_ratio=0.2', 'mim.lam=0.5').check_edits(RunSpec())
    calibrated = RunSpec().override('mim.lam_ratio=0.2', 'mim.lam=0.05')
    assert calibrated.check_edits(calibrated) is calibrated
    assert calibrated.override('loop.iterations=7').check_edits(calibrated).mim.lam == 0.05
    with pytest.raises(ValueError, match='set mim.lam=0 to calibrate'): calibrated.override('mim.lam_ratio=0.3').check_edits(calibrated)

def test_mtt_config_bounds_match_the_flags():
    "MTTConfig: the learning rates finite, lr_lr may be 0 (as --lr_lr allows: a fixed step size); messages say the bound"
    from mim4dd.mtt import MTTConfig
    assert MTTConfig(lr_lr=0.).lr_lr == 0. and MTTConfig(syn_steps=0).syn_steps == 0  # 0 steps: the loss check of chapter 13
    for kw, msg in [(dict(lr_img=float('inf')), 'lr_img must be a finite number, got inf'), (dict(lr_lr=-1.), 'lr_lr must be >= 0'),
                    (dict(syn_lr_init=0.), 'syn_lr_init must be > 0'), (dict(syn_steps=-1), 'syn_steps must be an int >= 0, got -1'),
                    (dict(max_start_epoch=0), 'max_start_epoch must be an int >= 1')]:
        with pytest.raises(ValueError, match=msg): MTTConfig(**kw)
