"""bench/gpu_epoch.py runs end to end at test size: a tiny CPU epoch per mode, each mode's row printed.

Checks the script's behaviour only (exit status, one row per mode with finite, positive
throughput and a data-wait share in [0, 1]); timings belong to the benchmark, not to tests.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / 'bench' / 'gpu_epoch.py'
MODES = ('fp32', 'bf16')
#: columns of a result row (bench/gpu_epoch.py's HEADER)
COLUMNS = ('mode', 'steps', 'samples', 'epoch_s', 'samples_per_s', 'steady_per_s', 'step_ms', 'first_s',
           'wait_s', 'wait_share', 'peak_gb', 'loss', 'others')


def _rows(stdout: str) -> dict[str, dict[str, str]]:
    """The result table's rows by mode (the lines after the header)."""
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ['mode', 'steps'])
    rows = {}
    for line in lines[header + 1:]:
        fields = line.split()
        if fields and fields[0] in MODES:
            assert len(fields) == len(COLUMNS), line
            rows[fields[0]] = dict(zip(COLUMNS, fields))
    return rows


@pytest.mark.slow
def test_gpu_epoch_tiny_cpu(tmp_path: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1', SKELETONAGENT_PROGRESS='0')
    env['PYTHONPATH'] = str(ROOT) + os.pathsep + env.get('PYTHONPATH', '')
    cmd = [sys.executable, str(SCRIPT), '--device', 'cpu', '--samples', '32', '--batch', '4', '--workers', '0',
           '--modes', ','.join(MODES), '--max-steps', '2', '--tiny', '--data-dir', str(tmp_path)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert 'torch ' in out.splitlines()[0] and 'CUDA ' in out.splitlines()[1], out
    assert list(tmp_path.glob('ntu60_synthetic_32x2x100x25_*.pkl')), 'the synthetic split was not written'

    rows = _rows(out)
    assert sorted(rows) == sorted(MODES), out
    for mode, row in rows.items():
        assert int(row['steps']) == 2 and int(row['samples']) == 8, row
        for key in ('epoch_s', 'samples_per_s', 'steady_per_s', 'step_ms', 'first_s', 'peak_gb'):
            value = float(row[key])
            assert math.isfinite(value) and value > 0, (mode, key, row)
        wait, share = float(row['wait_s']), float(row['wait_share'])
        assert math.isfinite(wait) and wait >= 0, row
        assert 0.0 <= share <= 1.0, row
        first, last = (float(x) for x in row['loss'].split('->'))
        assert math.isfinite(first) and math.isfinite(last), row
