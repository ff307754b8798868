"""The package's layers hold: no import cycle between its rooms, no import against the order
that docs/architecture.md declares (function-local imports included), the engine imports
nothing of the agent, and a run whose config has no agent never loads ``skeletonagent.agent``."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'skeletonagent'


def declared_layers() -> dict[str, int]:
    """room → layer number, from the table under '## Layers' in docs/architecture.md."""
    text = (ROOT / 'docs' / 'architecture.md').read_text(encoding='utf-8')
    section = text.split('\n## Layers', 1)[1].split('\n## ', 1)[0]
    layers: dict[str, int] = {}
    for number, rooms in re.findall(r'^\|\s*(\d+)\s*\|(.*)\|\s*$', section, re.M):
        for room in re.findall(r'`([^`]+)`', rooms):
            layers[room.rstrip('/').removesuffix('.py')] = int(number)
    return layers


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


def _is_module(name: str) -> bool:
    rel = Path(*name.split('.'))
    return (ROOT / rel).with_suffix('.py').is_file() or (ROOT / rel / '__init__.py').is_file()


def package_imports() -> list[tuple[str, str, int]]:
    """(importing module, imported package module, line) for every import statement of the
    package, at any depth (inside functions too)."""
    found = []
    for path in sorted(PACKAGE.rglob('*.py')):
        module = _module_name(path)
        package = module if path.name == '__init__.py' else module.rsplit('.', 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split('.')[:len(package.split('.')) - node.level + 1]
                    source = '.'.join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ''
                # `from pkg import module` imports the module, not only the package
                targets = [f'{source}.{a.name}' for a in node.names
                           if _is_module(f'{source}.{a.name}')] or [source]
            else:
                continue
            found += [(module, t, node.lineno) for t in targets
                      if t == 'skeletonagent' or t.startswith('skeletonagent.')]
    return found


def room_of(module: str) -> str:
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else '__init__'


def test_every_room_is_in_a_declared_layer():
    layers = declared_layers()
    rooms = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == '.py' and p.name != '__init__.py')
             or (p.is_dir() and (p / '__init__.py').is_file())}
    assert rooms - set(layers) == set(), 'rooms missing from docs/architecture.md'
    assert set(layers) - rooms == set(), 'docs/architecture.md names rooms that do not exist'


def test_no_import_goes_up_or_sideways():
    layers = declared_layers()
    wrong = []
    for module, target, line in package_imports():
        source_room, target_room = room_of(module), room_of(target)
        if source_room == '__init__' or source_room == target_room:
            continue
        if target_room == '__init__' or layers[target_room] >= layers[source_room]:
            wrong.append(f'{module}:{line} imports {target} '
                         f'(layer {layers[source_room]} -> {layers.get(target_room, "?")})')
    assert wrong == []


def test_no_import_cycle_between_rooms():
    edges = defaultdict(set)
    for module, target, _ in package_imports():
        if room_of(module) != room_of(target):
            edges[room_of(module)].add(room_of(target))

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in edges[start]:
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False
    cyclic = sorted(room for room in list(edges) if reaches(room, room, {room}))
    assert cyclic == []


def test_the_engine_imports_nothing_of_the_agent():
    found = [f'{m}:{line} imports {t}' for m, t, line in package_imports()
             if room_of(m) == 'engine' and room_of(t) == 'agent']
    assert found == []


def test_a_run_without_the_agent_does_not_load_it():
    """The ST-GCN++ baseline resolves and translates with ``skeletonagent.agent`` blocked:
    the engine reaches the agent only through the run-plugin registry."""
    script = f'''
import sys
sys.path.insert(0, {str(ROOT)!r})
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == 'skeletonagent.agent' or name.startswith('skeletonagent.agent.'):
            raise ModuleNotFoundError(f'blocked: {{name}}', name=name)
sys.meta_path.insert(0, Block())
from skeletonagent.engine import RunOptions, load_config, resolve_run
cfg = load_config({str(ROOT / 'configs' / 'stgcn++' / 'ntu60_xsub' / 'j.py')!r})
spec = resolve_run(cfg, RunOptions(validate=True))
assert spec.plugins == (), spec.plugins
assert not any(h['type'] == 'AgentHook' for h in spec.new_runner_kwargs()['custom_hooks'])
assert not [m for m in sys.modules if m.startswith('skeletonagent.agent')]
print('ok')
'''
    done = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith('ok')
