"""bench/scale.py runs end to end at smoke-test size (--quick) and writes its table into a README.

Checks the script's behaviour only (exit status, every row of both tables with finite, positive
figures, the README copy changed between the markers and nowhere else); timings belong to the
benchmark, not to tests.
"""
from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / 'bench' / 'scale.py'
TRAIN_ROWS = ('base', 'T 60', 'batch 4', 'batch 8', '20 classes', '40 classes')
ROUND_ROWS = ('10', '20', '40')


def _scale():
    spec = importlib.util.spec_from_file_location('bench_scale', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tables(text: str) -> list[list[list[str]]]:
    """The markdown tables of ``text``: rows of cells, the header row first, the rule dropped."""
    tables, current = [], None
    for line in text.splitlines():
        if line.startswith('|'):
            cells = [c.strip() for c in line.strip('|').split('|')]
            if current is None:
                current = []
                tables.append(current)
            if not all(set(c) <= set('-:') for c in cells):
                current.append(cells)
        else:
            current = None
    return tables


def _check_figures(row: list[str], header: list[str]) -> None:
    for name, cell in zip(header[1:], row[1:]):
        value = float(cell)
        assert math.isfinite(value), (name, row)
        if name == 'others':
            assert value >= 0, (name, row)
        else:
            assert value > 0, (name, row)


@pytest.mark.slow
def test_scale_quick_writes_readme(tmp_path: Path) -> None:
    readme = tmp_path / 'README.md'
    original = (ROOT / 'bench' / 'README.md').read_text(encoding='utf-8')
    readme.write_text(original, encoding='utf-8')
    scale = _scale()
    env = dict(os.environ, OMP_NUM_THREADS='1', HF_HUB_OFFLINE='1', SKELETONAGENT_PROGRESS='0')
    env['PYTHONPATH'] = str(ROOT) + os.pathsep + env.get('PYTHONPATH', '')
    proc = subprocess.run([sys.executable, str(SCRIPT), '--quick', '--threads', '1', '--write-readme',
                           '--readme', str(readme)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert 'torch ' in out.splitlines()[0], out

    tables = _tables(out)
    assert len(tables) == 2, out
    train, rounds = tables
    assert tuple(train[0]) == scale.TRAIN_HEADER and tuple(rounds[0]) == scale.ROUND_HEADER, out
    assert [r[0] for r in train[1:]] == list(TRAIN_ROWS), out
    assert [r[0] for r in rounds[1:]] == list(ROUND_ROWS), out
    for row in train[1:]:
        _check_figures(row, train[0])
    assert train[1][train[0].index('x base')] == '1.00', train[1]
    for row in rounds[1:]:
        _check_figures(row, rounds[0])
        assert int(row[rounds[0].index('requests')]) >= int(row[0]), row   # one chat per class at least

    # the README copy: the table between the markers, the rest as it was
    written = readme.read_text(encoding='utf-8')
    head, rest = original.split(scale.BEGIN)
    tail = rest.split(scale.END)[1]
    assert written.startswith(head + scale.BEGIN + '\n') and written.endswith(scale.END + tail), written
    between = written[len(head) + len(scale.BEGIN):len(written) - len(tail) - len(scale.END)]
    assert _tables(between) == tables, between
    assert 'cores, torch ' in between, between                  # the machine line
    assert 'others' in between and 'Load:' in between, between
    assert str(tmp_path) not in between, between                # the command without the copy's path


def test_write_readme_adds_the_section(tmp_path: Path) -> None:
    scale = _scale()
    readme = tmp_path / 'README.md'
    readme.write_text('# Benchmarks\n\nSomething else.\n', encoding='utf-8')
    scale.write_readme(readme, '| a |\n|---|\n| 1 |')
    text = readme.read_text(encoding='utf-8')
    assert text.startswith('# Benchmarks\n\nSomething else.\n\n## Scale\n'), text
    assert scale.COMMAND in text and text.endswith(f'{scale.BEGIN}\n| a |\n|---|\n| 1 |\n{scale.END}\n'), text
    before = text
    scale.write_readme(readme, 'second')                        # replaced, not added again
    text = readme.read_text(encoding='utf-8')
    assert text.count('## Scale') == 1 and text == before.replace('| a |\n|---|\n| 1 |', 'second'), text
    missing = tmp_path / 'new' / 'README.md'
    missing.parent.mkdir()
    scale.write_readme(missing, 'x')
    assert f'{scale.BEGIN}\nx\n{scale.END}' in missing.read_text(encoding='utf-8')


@pytest.mark.parametrize('value,shown', [(0.9996, '1.00'), (0.994, '0.994'), (1.5, '1.50'), (0.00234, '0.00234'),
                                         (150.4, '150'), (None, '-')])
def test_figures_keep_three_significant_digits(value, shown) -> None:
    """A ratio just under 1 reads 1.00, not 1 (the table's other ratios have two decimals)."""
    assert _scale().fmt(value) == shown
