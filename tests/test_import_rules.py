"""Function-local imports only where they defer a heavy or optional dependency, each with its
reason: every ``import`` inside a function or method of ``skeletonagent/`` carries a
``# deferred:`` comment on its line or on the line above (issue 23). Everything else (the
package's own modules, the standard library, torch, numpy, mmengine, mmcv) is imported at the
top of its module.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / 'skeletonagent'

#: Files being rewritten elsewhere: checked once they are merged (then this list is emptied).
#: A path ending in '/' stands for everything under that folder.
NOT_YET: list[str] = []

MARK = '# deferred:'


def _not_yet(rel: str) -> bool:
    return any(rel.startswith(n) if n.endswith('/') else rel == n for n in NOT_YET)


def _function_local_imports(tree: ast.AST) -> list[ast.stmt]:
    found: dict[int, ast.stmt] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for sub in ast.walk(node):
                if isinstance(sub, (ast.Import, ast.ImportFrom)):
                    found[id(sub)] = sub
    return sorted(found.values(), key=lambda n: n.lineno)


def _has_reason(lines: list[str], lineno: int) -> bool:
    return MARK in lines[lineno - 1] or (lineno >= 2 and lines[lineno - 2].strip().startswith(MARK))


def offenders(package: Path = PACKAGE) -> list[str]:
    """``file:line: statement`` for every function-local import without a ``# deferred:``."""
    out = []
    for path in sorted(package.rglob('*.py')):
        rel = path.relative_to(package.parent).as_posix()
        if _not_yet(rel):
            continue
        source = path.read_text(encoding='utf-8')
        lines = source.splitlines()
        for node in _function_local_imports(ast.parse(source, filename=str(path))):
            if not _has_reason(lines, node.lineno):
                out.append(f'{rel}:{node.lineno}: {lines[node.lineno - 1].strip()}')
    return out


def test_every_function_local_import_says_why_it_is_deferred():
    found = offenders()
    assert not found, ('imports inside functions without a "# deferred: <reason>" comment (move '
                       'them to the module top, or give the reason on their line or the line '
                       'above):\n  ' + '\n  '.join(found))


def test_not_yet_names_existing_files():
    root = PACKAGE.parent
    missing = [n for n in NOT_YET if not (root / n).exists()]
    assert not missing, f'NOT_YET names files that are gone (take them off the list): {missing}'


def test_the_check_finds_an_undeferred_import(tmp_path):
    package = tmp_path / 'skeletonagent'
    package.mkdir()
    (package / 'mod.py').write_text(
        'import os\n\n\n'
        'def f():\n    import json\n    return json\n\n\n'
        'def g():\n    # deferred: heavy\n    import matplotlib\n    return matplotlib\n\n\n'
        'class C:\n    def h(self):\n        import scipy  # deferred: heavy\n'
        '        from . import x\n        return scipy, x\n')
    assert offenders(package) == ['skeletonagent/mod.py:5: import json',
                                  'skeletonagent/mod.py:18: from . import x']
