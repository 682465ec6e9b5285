"The console scripts run end to end in a temp dir, and a killed run resumes to the uninterrupted result."
import json, os, signal, subprocess, sys, time
from pathlib import Path
import torch

BIN = Path(sys.executable).parent
DM = ['--dataset', 'digits', '--base', 'dm', '--ipc', '1', '--eval_runs', '1', '--eval_epochs', '5', '--checkpoint_every', '1']

def _run(*args, **kw):
    r = subprocess.run([str(BIN / args[0]), *map(str, args[1:])], capture_output=True, text=True, **kw)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return r

def _x(folder): return torch.load(Path(folder) / 'distilled.pt', weights_only=True)['x']

def test_distill_and_eval_scripts(tmp_path):
    out = tmp_path / 'mtt'
    r = _run('mim4dd_distill', '--out', out, '--dataset', 'digits', '--iterations', '2', '--syn_steps', '2',
             '--max_start_epoch', '1', '--n_experts', '1', '--lam', '0.1', '--eval_runs', '1', '--eval_epochs', '5')
    assert 'mtt + MIM digits ipc=1' in r.stdout
    summary = json.loads((out / 'summary.json').read_text())
    ev = summary['eval']
    assert summary['config']['mim']['lam'] == 0.1 and ev['n_runs'] == len(ev['accs']) == 1 and ev['n_epochs'] == 5
    assert ev['acc_final_mean'] > 15  # 10 classes, chance is 10 %: the distilled images teach (measured 27.5 %)
    assert sorted(p.name for p in out.iterdir()) == ['checkpoint.pt', 'config.json', 'distilled.pt', 'experts', 'log.jsonl', 'summary.json']
    assert len((out / 'log.jsonl').read_text().splitlines()) == 2
    r = _run('mim4dd_eval', out / 'distilled.pt', '--n_runs', '1', '--n_epochs', '3')
    ev, = [json.loads(p.read_text()) for p in out.glob('eval_*.json')]  # one file, for this protocol
    assert ev['n_epochs'] == 3 and ev['n_runs'] == 1 and ev['acc_final_mean'] > 15  # measured 27.2 %
    assert r.stdout.startswith(f"{ev['acc_final_mean']:.1f} ± ")  # it prints what it wrote

def test_killed_run_resumes_to_the_same_result(tmp_path):
    a, b = tmp_path / 'a', tmp_path / 'b'
    _run('mim4dd_distill', '--out', a, '--iterations', '6', *DM)
    p = subprocess.Popen([str(BIN / 'mim4dd_distill'), '--out', str(b), '--iterations', '6', *DM],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (b / 'checkpoint.pt').exists() and p.poll() is None and time.time() < deadline: time.sleep(0.05)
    p.send_signal(signal.SIGKILL); p.wait()
    _run('mim4dd_distill', '--out', b, '--iterations', '6', *DM)
    assert torch.equal(_x(a), _x(b))
    assert (a / 'log.jsonl').read_text() == (b / 'log.jsonl').read_text()

def test_experts_script_exits_0_on_success(tmp_path):
    "`mim4dd_experts ... && echo ok` prints ok: the installed script, not `python -m`"
    r = subprocess.run(f"'{BIN}/mim4dd_experts' --out '{tmp_path}/s' --n_experts 1 --n_epochs 1 --width 8 --no-progress && echo ok",
                       shell=True, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert r.returncode == 0 and r.stdout.splitlines()[-1] == 'ok' and r.stderr == '', r.stdout + r.stderr
    assert json.loads(r.stdout.splitlines()[0])['written'] == [0]

def test_demo_quick(tmp_path):
    r = _run('mim4dd_demo', '--out', tmp_path / 'demo', '--quick')
    res = json.loads((tmp_path / 'demo' / 'results.json').read_text())
    assert list(res) == ['random real', 'mtt', 'mtt+mim4dd'] and (tmp_path / 'demo' / 'demo.png').stat().st_size > 1000
    assert 'results in' in r.stdout
