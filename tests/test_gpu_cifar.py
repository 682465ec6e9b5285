"""bench/gpu_cifar.py, the CIFAR-10 script for a short GPU lease, end to end at its smoke size: fake CIFAR-shaped JPEGs
in a zip, ZCA, one expert, MTT and MTT + MIM4DD at IPC 1 and 10, evaluation and the records (on the CPU, one thread)."""
import json, sys
from pathlib import Path
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import gpu_cifar

def test_smoke_writes_every_record(tmp_path, monkeypatch):
    monkeypatch.setenv('MIM4DD_DATA', str(tmp_path/'home'))  # no cache or data outside tmp_path
    n = torch.get_num_threads()
    try: secs = gpu_cifar.main(['--smoke', '--results_dir', str(tmp_path/'results'), '--mirror', str(tmp_path/'mirror')])
    finally: torch.set_num_threads(n)
    read = lambda name: [json.loads(l) for l in (tmp_path/'results'/f'{name}.jsonl').read_text().splitlines()]
    rows = read('gpu_cifar')
    assert {(r['ipc'], r['method']) for r in rows} == {(i, m) for i in (1, 10) for m in gpu_cifar.METHODS}
    assert all('skipped' not in r and 'failed' not in r for r in rows)
    assert all(0 <= r['acc'] <= 100 and r['data'].startswith('fake CIFAR-10') for r in rows)
    mim = [r for r in rows if r['method'] == 'mtt+mim']
    assert all(r['lam'] > 0 for r in mim) and all(r['lam'] == 0 for r in rows if r['method'] == 'mtt')
    paired = read('gpu_cifar_paired')
    assert [p['ipc'] for p in paired] == [1, 10]
    for p in paired:  # the paired difference is the two rows' difference, seed by seed
        acc = {r['method']: r['acc'] for r in rows if r['ipc'] == p['ipc']}
        assert abs(p['per_seed'][0] - (acc['mtt+mim'] - acc['mtt'])) < 1e-9
    assert read('gpu_cifar_timing')[0]['seconds']['total'] == secs['total']
    cap, = read('gpu_cifar_capture')  # on the CPU the captured path runs eagerly: nothing captured, the same pixels
    assert cap['graphs_captured'] == 0 and cap['step_kinds'] > 0 and cap['max_pixel_diff'] == 0 and cap['pixels_moved'] > 0
    assert set(cap['median_s']) == {'eager', 'cuda_graphs', 'compile'} and all(len(v) == 2 for v in cap['seconds_per_iteration'].values())
    # compiled: another float32 arithmetic, whose gradient differs from eager's by ~1 % after 30-50 steps (as eager's own
    # differs from float64's: bench/results/unroll_profile.jsonl); a wrong gradient would move the pixels elsewhere
    assert 0 <= cap['max_pixel_diff_compile'] <= 0.05 * cap['pixels_moved'] and cap['speedup_compile'] > 0
    assert sorted(f.name for f in (tmp_path/'mirror').iterdir()) == ['gpu_cifar.jsonl', 'gpu_cifar_capture.jsonl', 'gpu_cifar_paired.jsonl',
                                                                     'gpu_cifar_timing.jsonl']
