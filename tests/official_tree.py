"""A small tree in the layout of the official SkeletonAgent repository, for the importer tests.

Every text in it is ours (made-up prompts and answers); only the layout and the formats are
those of the official repository: per-dataset transcript folders ``tools/text/gpt4o/<name>/``
(one ``NNN_name.txt`` per class of our label map), the prompt scripts
``tools/text/gpt4o/gpt4o_<name>.py`` (a ``dialogs_template`` list of positional ``'{}'``
templates), the follow-up template in ``skeletonagent/models/heads/agent.py`` and the
critical-joint matrices ``skeletonagent/models/gcns/cls_matrix/<name>_<stream>_critical_joints.npy``.
The scripts start with ``raise SystemExit``: an importer that executed them would stop.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from skeletonagent.agent.official import OFFICIAL_DATASETS
from skeletonagent.agent.selector import build_masks
from skeletonagent.agent.transcripts import Turn, transcript_filename, write_transcript
from skeletonagent.datasets.label_map import load_label_map
from skeletonagent.skeleton import get_layout

INITIAL = [
    "Picture someone doing '{}'. How does the body move?",
    "Go through the head, arms and legs during '{}'.\nRules:\n1. one line each\n2. keep it *short*",
    "The body has {n} joints numbered: {joints}.\nWhich are key for '{}'?\n1. numbers only",
    "Say how each key joint moves.\n1. \"N-name: motion.\" lines",
    "One sentence that identifies '{}'.",
]
FOLLOW_UP = "'{}' is taken for {}. In one sentence, what sets '{}' apart?"


def joints_of(index: int, num_joints: int) -> list[int]:
    """Two or three 0-based critical joints per class, spread over the skeleton."""
    return sorted({index % num_joints, (3 * index + 1) % num_joints, (7 * index + 2) % num_joints})


def summary_of(name: str) -> str:
    return f'The motion that marks {name} is distinct.'


def _script(templates: list[str], variable: str) -> str:
    body = ',\n'.join(repr(t) for t in templates)
    return ("raise SystemExit('this file must be read, never run')\n"
            "from openai import OpenAI\nclient = OpenAI(api_key='$THE_API_KEY$')\n"
            f"{variable} = [\n{body}\n]\n")


def write_official_tree(root: Path, keys=None, classes_limit=None) -> Path:
    """Write the tree for the datasets ``keys`` (default: all five) under ``root``."""
    keys = list(keys or OFFICIAL_DATASETS)
    (root / 'skeletonagent/models/heads').mkdir(parents=True, exist_ok=True)
    (root / 'skeletonagent/models/heads/agent.py').write_text(
        _script([FOLLOW_UP], 'context_dialog_template'), encoding='utf-8')
    for key in keys:
        ds = OFFICIAL_DATASETS[key]
        layout = get_layout(ds.layout)
        names = load_label_map(key)
        joint_list = ', '.join(f'{i + 1}-{n}' for i, n in enumerate(layout.joint_names))
        templates = [t.replace('{n}', str(len(layout.joint_names))).replace('{joints}', joint_list)
                     for t in INITIAL]
        text_dir = root / 'tools/text/gpt4o' / ds.name
        text_dir.mkdir(parents=True, exist_ok=True)
        (root / 'tools/text/gpt4o' / f'gpt4o_{ds.name}.py').write_text(
            _script(templates, 'dialogs_template'), encoding='utf-8')
        all_joints = []
        for index, name in enumerate(names):
            joints = joints_of(index, len(layout.joint_names))
            all_joints.append(joints)
            motion = '\n'.join(f'{j + 1}-{layout.joint_names[j]}: moves.' for j in joints)
            answers = [f'A person does {name}.', 'Head: still.\nArm: moves.',
                       ', '.join(str(j + 1) for j in joints), motion, summary_of(name)]
            # the official writer stores the questions without '*'
            turns = [Turn(t.format(name).replace('*', ''), a) for t, a in zip(templates, answers)]
            write_transcript(text_dir / transcript_filename(index, name), turns)
        mask_dir = root / 'skeletonagent/models/gcns/cls_matrix'
        mask_dir.mkdir(parents=True, exist_ok=True)
        for stream in ('j', 'b', 'k'):
            np.save(mask_dir / f'{ds.name}_{stream}_critical_joints.npy',
                    build_masks(all_joints, layout, stream).astype(np.float64))
    return root
