"""The report's page: ``index.html`` from one Jinja2 template, ``template.html`` beside this
module (package data, read with :mod:`importlib.resources`, so an installed wheel renders the
same page as a checkout).

Autoescaping escapes every value, the agent's prompts and the LLM's replies too; the template
is rendered with ``StrictUndefined``, so a value the page names but the code does not give is
an error, not an empty cell.
"""
from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

from .figures import draw_joints
from .inputs import ReportInputs

__all__ = ['TEMPLATE', 'page_template', 'write_html']

#: The page's template, a file of this package.
TEMPLATE = 'template.html'


def page_template() -> str:
    """The text of :data:`TEMPLATE`."""
    return files(__package__).joinpath(TEMPLATE).read_text(encoding='utf-8')


def _round_context(report: dict, names: Sequence[str], layout: str, out_dir: Path) -> dict:
    """What the page shows of one agent round (values only; the template formats them)."""
    stats = report.get('stats') or {}
    classes = []
    for entry in report.get('classes', []):
        index = int(entry.get('index', -1))
        joints = entry.get('joints') or []
        joint_names = entry.get('joint_names') or [str(j) for j in joints]
        listed = ', '.join(f'{j + 1}-{n}' for j, n in zip(joints, joint_names))
        image = draw_joints(layout, joints, out_dir / 'joints') if joints else None
        classes.append(dict(
            index=index, error=entry.get('error'), detail=entry.get('detail', ''),
            name=entry.get('name') or (names[index] if 0 <= index < len(names) else index),
            confused=', '.join(f"{c.get('name')} ({c.get('count')})"
                               if c.get('count') is not None else str(c.get('name'))
                               for c in entry.get('confused', [])),
            prompt=entry.get('prompt', ''), reply=entry.get('reply'), joints=listed,
            mask_changed=bool(entry.get('mask_changed')),
            image=image.relative_to(out_dir).as_posix() if image is not None else None,
            description=entry.get('description'),
            description_changed=bool(entry.get('description_changed'))))
    return dict(round=report.get('round', '?'), file=report.get('_file', ''),
                backend=report.get('backend', '?'), chats=stats.get('chats', 0),
                requests=stats.get('requests', 0), failed=len(report.get('failed') or []),
                failures=stats.get('failures') or {}, updated=len(report.get('updated') or []),
                version_before=report.get('version_before', '?'),
                version_after=report.get('version_after', '?'),
                seconds=report.get('seconds', 0), classes=classes)


def write_html(out_dir: Path, inputs: ReportInputs, summary: list[str],
               pairs: Sequence[tuple], per_class: list | None, images: dict,
               rounds: Sequence[dict], top_n: int, run_info: dict | None = None) -> Path:
    """Render the page (:func:`page_template`) into ``out_dir/index.html``."""
    import jinja2  # deferred: only a report renders a page
    names = inputs.class_names
    page = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True).from_string(page_template())
    text = page.render(
        title=inputs.work_dir.name, summary=summary, notes=inputs.notes,
        run_info=run_info or {}, num_pairs=len(pairs),
        images={k: images.get(k) for k in ('curves', 'agent_effect', 'confusion', 'accuracy')},
        effect_lines=[r['effect']['line'] for r in rounds
                      if isinstance(r.get('effect'), dict) and r['effect'].get('line')],
        pairs=[(f'{i}: {names[i]}', f'{j}: {names[j]}', c, r) for i, j, c, r in pairs[:top_n]],
        per_class=per_class,
        rounds=[_round_context(r, names, inputs.layout or 'nturgb+d', out_dir) for r in rounds])
    path = out_dir / 'index.html'
    path.write_text(text, encoding='utf-8')
    return path
