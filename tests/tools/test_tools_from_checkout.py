"""Every script under tools/ runs from a checkout with no installed package: it puts its own
checkout first on sys.path, so `python tools/...` uses the code beside it, not another
installed copy. Every script also skips the cycle collection at exit (utils/fast_exit.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# One process for all scripts (torch is imported once; mmengine's registries cannot be built
# twice in a process, so the package is imported once too): the installed package is hidden,
# and before each script sys.path is put back, so each must add its checkout itself.
RUNNER = r'''
import contextlib, importlib.util, io, os, runpy, sys
sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]
sys.path[:] = [p for p in sys.path if p and not os.path.isdir(p + '/skeletonagent')]
importlib.invalidate_caches()
assert importlib.util.find_spec('skeletonagent') is None, 'the installed package is still visible'
base_path = list(sys.path)
for script in sys.argv[1:]:
    sys.path[:] = base_path
    sys.argv = [script, '--help']
    fast_exit = sys.modules.get('skeletonagent.utils.fast_exit')
    if fast_exit is not None:               # registered by the script before: again for this one
        fast_exit._registered = False
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(script, run_name='__main__')
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    module = sys.modules.get('skeletonagent')
    added = [p for p in sys.path if p not in base_path]
    fast_exit = sys.modules.get('skeletonagent.utils.fast_exit')
    print(script, code, 'usage:' in out.getvalue(), added[:1] or None, getattr(module, '__file__', None),
          getattr(fast_exit, '_registered', False), sep='\t')
'''


def _scripts() -> list[Path]:
    return sorted(p for p in (REPO / 'tools').rglob('*.py')
                  if "__name__ == '__main__'" in p.read_text())


def test_every_tool_runs_from_the_checkout_without_an_installed_package(tmp_path):
    scripts = _scripts()
    assert len(scripts) >= 10
    # without the malloc restart of tools/train.py and tools/test.py, which would start this
    # whole runner again
    env = dict(os.environ, SKELETONAGENT_MALLOC='default')
    proc = subprocess.run([sys.executable, '-c', RUNNER, *map(str, scripts)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split('\t') for line in proc.stdout.splitlines() if line.startswith(str(REPO))]
    assert [Path(r[0]) for r in rows] == scripts, proc.stdout + proc.stderr
    for script, code, usage, added, package, skips_exit_collection in rows:
        assert (code, usage) == ('0', 'True'), f'{script}: exit {code}, usage printed: {usage}\n{proc.stderr}'
        assert skips_exit_collection == 'True', f'{script} does not call skip_exit_collection()'
        assert added == repr([str(REPO)]), f'{script} did not put its checkout first on sys.path: {added}'
        assert package in ('None', str(REPO / 'skeletonagent' / '__init__.py')), (script, package)


def test_tool_main_is_every_tools_end(monkeypatch):
    """``tool_main(main)``: the exit status is main's return value (None: no exit), a user
    error is one line."""
    import pytest

    from skeletonagent.engine.errors import ConfigError
    from skeletonagent.engine.tool import tool_main
    from skeletonagent.utils import fast_exit
    monkeypatch.setattr(fast_exit, '_registered', True)     # no gc.freeze in this test process

    def bad(argv):
        raise ConfigError(f'unknown config key {argv[0]}')
    for main, argv, code in ((lambda argv: 2, [], 2), (lambda argv: 0, [], 0),
                             (bad, ['total_epoch'], 'error: unknown config key total_epoch')):
        with pytest.raises(SystemExit) as info:
            tool_main(main, argv)
        assert info.value.code == code
    assert tool_main(lambda argv: None, []) is None       # no SystemExit: runpy callers go on
