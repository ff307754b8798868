"""The official SkeletonAgent artefacts: GPT-4o dialogues, critical-joint masks and prompts.

The paper's runs start from what the official repository (github.com/firework8/SkeletonAgent)
publishes: one GPT-4o dialogue per class (``tools/text/gpt4o/<dataset>/``), the
critical-joint matrices built from them (``skeletonagent/models/gcns/cls_matrix/``) and the
prompts that asked them (``tools/text/gpt4o/gpt4o_<dataset>.py`` for the five initial
rounds, ``skeletonagent/models/heads/agent.py`` for the follow-up). None of that text is part
of this package: a user clones the official repository (as they download a dataset) and
:func:`import_official` copies the artefacts out of that clone, checked against our label
maps and layouts, into a data folder the configs read (``data/agent/<dataset>/``)::

    <out>/<dataset>/
        transcripts/NNN_<class>.txt    the dialogues, byte for byte as published
        masks/{j,b,k}.npy              the critical-joint matrices (float32, Class x V x V)
        prompts.json                   the prompt templates, as our named-field templates
        manifest.json                  source, commit, counts and digests

Prompt scripts are read with :mod:`ast`, never executed (they build an API client at import).
"""
from __future__ import annotations

import ast
import hashlib
import json
import logging
import os
import re
import shutil
import string
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Union

import numpy as np

from skeletonagent.datasets.label_map import load_label_map
from skeletonagent.skeleton import get_layout

from ..errors import SkeletonAgentError
from .prompts import FOLLOW_UP, INITIAL_ROUNDS, PromptSet
from .selector import build_masks, critical_joints_from_transcript
from .state import masks_digest
from .transcripts import find_transcript, read_transcript
from .vocab import normalise

__all__ = ['OfficialDataset', 'OFFICIAL_DATASETS', 'OfficialImportError', 'DatasetImport',
           'import_official', 'read_official_prompts', 'official_dataset', 'MASK_STREAMS',
           'DEFAULT_OUT', 'TRANSCRIPTS_SUBDIR', 'MASKS_SUBDIR', 'PROMPTS_FILE', 'MANIFEST_FILE',
           'OFFICIAL_REPO_URL']

logger = logging.getLogger(__name__)

PathLike = Union[str, 'os.PathLike[str]']

OFFICIAL_REPO_URL = 'https://github.com/firework8/SkeletonAgent'
#: Where the configs look for imported artefacts (relative to the working directory).
DEFAULT_OUT = Path('data') / 'agent'
TRANSCRIPTS_SUBDIR = 'transcripts'
MASKS_SUBDIR = 'masks'
PROMPTS_FILE = 'prompts.json'
MANIFEST_FILE = 'manifest.json'
#: The streams the official matrices exist for (motion streams use their base stream's).
MASK_STREAMS = ('j', 'b', 'k')

# Where things sit in a clone of the official repository.
_TRANSCRIPT_DIRS = ('tools/text/gpt4o/{name}', 'skeletonagent/models/heads/text/gpt4o/{name}')
_MASK_FILE = 'skeletonagent/models/gcns/cls_matrix/{name}_{stream}_critical_joints.npy'
_PROMPT_SCRIPT = 'tools/text/gpt4o/gpt4o_{name}.py'
_FOLLOW_UP_SCRIPT = 'skeletonagent/models/heads/agent.py'
_INITIAL_VARIABLE = 'dialogs_template'
_FOLLOW_UP_VARIABLE = 'context_dialog_template'
#: The follow-up's positional fields, in the order the official code formats them:
#: ``template.format(action_name, similar_action, action_name)``.
_FOLLOW_UP_FIELDS = ('action', 'similar', 'action')


@dataclass(frozen=True)
class OfficialDataset:
    """One dataset of the official release: our label-map name (also the folder name under
    the import root), the official name, the skeleton layout and the number of classes."""

    key: str
    name: str
    layout: str
    num_classes: int


#: The five datasets the official repository publishes dialogues for, by our label-map name.
OFFICIAL_DATASETS: dict[str, OfficialDataset] = {d.key: d for d in (
    OfficialDataset('ntu60', 'nturgbd_60', 'nturgb+d', 60),
    OfficialDataset('ntu120', 'nturgbd_120', 'nturgb+d', 120),
    OfficialDataset('k400', 'k400', 'coco_new', 400),
    OfficialDataset('finegym', 'finegym', 'coco_new', 99),
    OfficialDataset('uav', 'uav_human', 'uav', 155),
)}


def official_dataset(key: str) -> OfficialDataset:
    """The official dataset for a label-map name ('ntu60') or an official name ('nturgbd_60').

    Raises:
        KeyError: listing the known names.
    """
    for dataset in OFFICIAL_DATASETS.values():
        if key in (dataset.key, dataset.name):
            return dataset
    raise KeyError(f'no official artefacts for {key!r}; known datasets: '
                   f'{", ".join(OFFICIAL_DATASETS)}')


class OfficialImportError(SkeletonAgentError, ValueError):
    """The clone lacks something or holds something our label maps / layouts reject; the
    message names the file and what is wrong with it."""


@dataclass
class DatasetImport:
    """What :func:`import_official` wrote for one dataset (also ``manifest.json``)."""

    dataset: str
    official_name: str
    out_dir: str
    classes: int
    rounds: dict[str, int]                 # min / max / total rounds per transcript
    masks: dict[str, str]                  # stream -> sha256 of the float32 matrix
    masks_match_transcripts: dict[str, bool]
    prompts: list[str]                     # template names imported
    transcripts_digest: str
    source: str
    commit: str | None
    imported_at: str
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One paragraph for the console."""
        masks = ', '.join(f'{s} {d[:12]}' + ('' if self.masks_match_transcripts.get(s, True)
                                             else ' (differs from the transcripts)')
                          for s, d in self.masks.items())
        rounds = (f"{self.rounds['min']}" if self.rounds['min'] == self.rounds['max']
                  else f"{self.rounds['min']}-{self.rounds['max']}")
        lines = [f'{self.dataset} ({self.official_name}): {self.classes} classes, {rounds} rounds '
                 f'each ({self.rounds["total"]} in all), transcripts {self.transcripts_digest[:12]}',
                 f'  masks: {masks or "none"}',
                 f'  prompts: {", ".join(self.prompts) or "none"}',
                 f'  -> {self.out_dir}']
        lines += [f'  warning: {w}' for w in self.warnings]
        return '\n'.join(lines)


# ------------------------------------------------------------------------------------ prompts
def _literal_list(path: Path, variable: str) -> list[str]:
    """The list of strings assigned to ``variable`` at the top level of a Python file."""
    try:
        tree = ast.parse(path.read_text(encoding='utf-8'), filename=str(path))
    except (OSError, SyntaxError, UnicodeDecodeError) as exc:
        raise OfficialImportError(f'{path}: cannot read it as Python ({exc})') from exc
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if any(isinstance(t, ast.Name) and t.id == variable for t in targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError as exc:
                raise OfficialImportError(f'{path}: {variable} is not a literal list') from exc
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise OfficialImportError(f'{path}: {variable} is not a list of strings')
            return value
    raise OfficialImportError(f'{path}: no top-level {variable} = [...]')


def _named(template: str, names: Sequence[str], source: str) -> str:
    """An official positional template (``'{}'`` fields, ``str.format``) as our named one.

    Raises:
        OfficialImportError: when the template has another number of fields than ``names``
            or fields that are not positional.
    """
    parts, index = [], 0
    for literal, name, spec, conversion in string.Formatter().parse(template):
        parts.append(literal.replace('{', '{{').replace('}', '}}'))
        if name is None:
            continue
        if name not in ('', str(index)) or spec or conversion:
            raise OfficialImportError(f'{source}: field {{{name}}} is not a plain positional field')
        if index >= len(names):
            raise OfficialImportError(f'{source}: {index + 1} fields, expected {len(names)}')
        parts.append('{' + names[index] + '}')
        index += 1
    if index != len(names):
        raise OfficialImportError(f'{source}: {index} fields, expected {len(names)}')
    return ''.join(parts)


def read_official_prompts(repo: PathLike, dataset: str) -> dict[str, str]:
    """The official prompt templates of ``dataset`` as our named templates
    (``describe`` ... ``summary``, ``follow_up``; see :class:`~.prompts.PromptSet`).

    Raises:
        OfficialImportError: naming the file when a script is missing or not as expected.
    """
    repo = Path(repo)
    ds = official_dataset(dataset)
    script = repo / _PROMPT_SCRIPT.format(name=ds.name)
    if not script.is_file():
        raise OfficialImportError(f'official prompt script not found: {script}')
    initial = _literal_list(script, _INITIAL_VARIABLE)
    if len(initial) != len(INITIAL_ROUNDS):
        raise OfficialImportError(f'{script}: {_INITIAL_VARIABLE} holds {len(initial)} rounds, '
                                  f'expected {len(INITIAL_ROUNDS)}')
    templates = {}
    for kind, text in zip(INITIAL_ROUNDS, initial):
        count = sum(1 for _, name, _, _ in string.Formatter().parse(text) if name is not None)
        templates[kind] = _named(text, ('action',) * count, f'{script} ({kind})')
    follow_script = repo / _FOLLOW_UP_SCRIPT
    if not follow_script.is_file():
        raise OfficialImportError(f'official follow-up script not found: {follow_script}')
    follow = _literal_list(follow_script, _FOLLOW_UP_VARIABLE)
    if not follow:
        raise OfficialImportError(f'{follow_script}: {_FOLLOW_UP_VARIABLE} is empty')
    templates[FOLLOW_UP] = _named(follow[0], _FOLLOW_UP_FIELDS, f'{follow_script} (follow-up)')
    PromptSet.from_cfg(templates)  # every name known, every value a string
    return templates


def _check_joint_numbering(template: str, layout, source: str) -> None:
    """The official critical-joints prompt numbers the joints ``1-nose, 2-...``: each
    number must name the joint our layout has at that index, or masks made from an LLM's
    numbers would land on other joints."""
    listed = {int(n): name for n, name in
              re.findall(r'(?<![\w-])(\d{1,2})-([a-z][a-z ]*?[a-z])(?=[,.\n]| and )', template)}
    names = layout.joint_names
    if len(listed) != len(names):
        raise OfficialImportError(f'{source}: the prompt numbers {len(listed)} joints, layout '
                                  f'{layout.name!r} has {len(names)}')
    wrong = [f'{n}-{listed[n]} (ours: {names[n - 1]!r})' for n in sorted(listed)
             if not 1 <= n <= len(names) or normalise(listed[n]) != normalise(names[n - 1])
             and listed[n] not in layout.synonyms]
    if wrong:
        raise OfficialImportError(f'{source}: the prompt names joints differently from layout '
                                  f'{layout.name!r}: {", ".join(wrong[:6])}')


# ------------------------------------------------------------------------------------- import
def _sha256_files(paths: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode('utf-8') + b'\x00' + path.read_bytes() + b'\x00')
    return digest.hexdigest()


def _git_commit(repo: Path) -> str | None:
    try:
        out = subprocess.run(['git', '-C', str(repo), 'rev-parse', 'HEAD'], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _transcript_dir(repo: Path, ds: OfficialDataset) -> Path:
    for pattern in _TRANSCRIPT_DIRS:
        candidate = repo / pattern.format(name=ds.name)
        if candidate.is_dir():
            return candidate
    tried = ', '.join(str(repo / p.format(name=ds.name)) for p in _TRANSCRIPT_DIRS)
    raise OfficialImportError(f'{ds.key}: no official transcript folder in {repo} (tried {tried}); '
                              f'is it a clone of {OFFICIAL_REPO_URL}?')


def _load_official_masks(path: Path, ds: OfficialDataset, num_joints: int) -> np.ndarray:
    try:
        masks = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise OfficialImportError(f'{path}: not a readable .npy file ({exc})') from exc
    expected = (ds.num_classes, num_joints, num_joints)
    if masks.shape != expected:
        raise OfficialImportError(f'{path}: shape {masks.shape}, expected {expected} '
                                  f'(classes, joints, joints)')
    if not np.isfinite(masks).all() or not np.isin(masks, (0, 1)).all():
        raise OfficialImportError(f'{path}: values other than 0 and 1')
    return masks.astype(np.float32)


def _import_dataset(repo: Path, ds: OfficialDataset, out_dir: Path, commit: str | None,
                    with_prompts: bool, with_masks: bool) -> DatasetImport:
    """Check and write one dataset into ``out_dir`` (which must not exist yet)."""
    layout = get_layout(ds.layout)
    class_names = load_label_map(ds.key, num_classes=ds.num_classes)
    source_dir = _transcript_dir(repo, ds)
    warnings: list[str] = []

    prompts = read_official_prompts(repo, ds.key) if with_prompts else None
    if prompts is not None:
        _check_joint_numbering(prompts['critical_joints'], layout,
                               str(repo / _PROMPT_SCRIPT.format(name=ds.name)))
    prompt_set = PromptSet.from_cfg(prompts)

    # every class present, every dialogue complete, every joint number in range
    files, transcripts = [], []
    missing = []
    for index, name in enumerate(class_names):
        path = find_transcript(source_dir, index, name)
        if path is None:
            missing.append(f'{index + 1:03d} {name!r}')
            continue
        files.append(path)
    if missing:
        raise OfficialImportError(
            f'{ds.key}: {len(missing)} of {ds.num_classes} classes have no transcript in '
            f'{source_dir}: {"; ".join(missing[:5])}' + (' ...' if len(missing) > 5 else ''))
    extra = sorted({p.name for p in source_dir.glob('*.txt')} - {p.name for p in files})
    if extra:
        warnings.append(f'{len(extra)} files in {source_dir} name no class of the label map '
                        f'and were left out: {", ".join(extra[:3])}')
    joints = []
    for index, (name, path) in enumerate(zip(class_names, files)):
        turns = read_transcript(path)
        unanswered = [i + 1 for i, turn in enumerate(turns[:len(INITIAL_ROUNDS)])
                      if not turn.answer.strip()]
        if len(turns) < len(INITIAL_ROUNDS) or unanswered:
            raise OfficialImportError(
                f'{path}: class {index + 1:03d} {name!r} has {len(turns)} rounds'
                + (f', round(s) {unanswered} unanswered' if unanswered else '')
                + f'; the official dialogues have {len(INITIAL_ROUNDS)} answered rounds')
        selection = critical_joints_from_transcript(turns, layout, prompt_set)
        if selection.dropped:
            raise OfficialImportError(
                f'{path}: class {index + 1:03d} {name!r} names joint number(s) '
                f'{selection.dropped} outside 1..{len(layout.joint_names)} of layout '
                f'{layout.name!r}')
        if not selection.joints:
            warnings.append(f'class {index + 1:03d} {name!r}: no critical joint named; its '
                            f'mask is empty')
        joints.append(selection.joints)
        transcripts.append(turns)

    (out_dir / TRANSCRIPTS_SUBDIR).mkdir(parents=True)
    for path in files:
        shutil.copyfile(path, out_dir / TRANSCRIPTS_SUBDIR / path.name)

    masks_digests: dict[str, str] = {}
    matches: dict[str, bool] = {}
    if with_masks:
        (out_dir / MASKS_SUBDIR).mkdir()
        for stream in MASK_STREAMS:
            path = repo / _MASK_FILE.format(name=ds.name, stream=stream)
            if not path.is_file():
                raise OfficialImportError(f'{ds.key}: official mask file not found: {path}')
            masks = _load_official_masks(path, ds, len(layout.joint_names))
            rebuilt = build_masks(joints, layout, stream)
            matches[stream] = bool(np.array_equal(rebuilt, masks))
            if not matches[stream]:
                rows = int((rebuilt != masks).any(axis=(1, 2)).sum())
                warnings.append(f'masks {stream}: {rows} classes differ from the masks our '
                                f'Selector builds from the transcripts (the official file is used)')
            np.save(out_dir / MASKS_SUBDIR / f'{stream}.npy', masks)
            masks_digests[stream] = masks_digest(masks)
    if prompts is not None:
        (out_dir / PROMPTS_FILE).write_text(json.dumps(prompts, indent=1, ensure_ascii=False) + '\n',
                                           encoding='utf-8')
    rounds = [len(t) for t in transcripts]
    record = DatasetImport(
        dataset=ds.key, official_name=ds.name, out_dir=str(out_dir), classes=len(files),
        rounds=dict(min=min(rounds), max=max(rounds), total=sum(rounds)), masks=masks_digests,
        masks_match_transcripts=matches, prompts=sorted(prompts) if prompts else [],
        transcripts_digest=_sha256_files(files), source=str(repo), commit=commit,
        imported_at=time.strftime('%Y-%m-%dT%H:%M:%S%z'), warnings=warnings)
    (out_dir / MANIFEST_FILE).write_text(json.dumps(asdict(record), indent=1, ensure_ascii=False)
                                         + '\n', encoding='utf-8')
    return record


def import_official(repo: PathLike, out: PathLike = DEFAULT_OUT,
                    datasets: Sequence[str] | None = None, with_prompts: bool = True,
                    with_masks: bool = True,
                    log: Callable[[str], None] = logger.info) -> list[DatasetImport]:
    """Copy the official dialogues, masks and prompts of ``datasets`` (default: all five)
    from a clone of the official repository into ``out/<dataset>/``.

    Each dataset is checked whole before anything of it is written: every class of our
    label map has a complete dialogue (quote characters and spacing in file names aside),
    every joint number is in range, the masks have the right shape and hold 0/1 only, and the
    prompt's joint numbering names the joints of our layout. A dataset is written into a
    temporary folder and renamed into place, so a failed import leaves the previous import
    (if any) as it was.

    Raises:
        OfficialImportError: naming the file and what is wrong (nothing of that dataset is
            written; datasets before it in the list are).
    """
    repo = Path(repo).expanduser()
    if not repo.is_dir():
        raise OfficialImportError(f'official repository not found: {repo} (clone '
                                  f'{OFFICIAL_REPO_URL} and pass its folder)')
    out = Path(out).expanduser()
    keys = [official_dataset(k).key for k in (datasets or list(OFFICIAL_DATASETS))]
    commit = _git_commit(repo)
    records = []
    for key in keys:
        ds = OFFICIAL_DATASETS[key]
        out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f'.{key}.', suffix='.tmp', dir=out))
        try:
            record = _import_dataset(repo, ds, staging / key, commit, with_prompts, with_masks)
            target = out / key
            record.out_dir = str(target)
            (staging / key / MANIFEST_FILE).write_text(
                json.dumps(asdict(record), indent=1, ensure_ascii=False) + '\n', encoding='utf-8')
            previous = staging / 'previous'
            if target.exists():
                os.replace(target, previous)
            try:
                os.replace(staging / key, target)
            except OSError:
                if previous.exists():
                    os.replace(previous, target)
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log(record.summary())
        records.append(record)
    return records
