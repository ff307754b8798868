"""The initial agent state: build_initial_state, AgentState checkpoints, the build_masks tool."""
import importlib.util
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from skeletonagent.agent import (
    AgentState,
    Turn,
    build_initial_state,
    read_transcript,
    transcript_filename,
    write_transcript,
)

REPO = Path(__file__).resolve().parents[2]
CLASSES = ['drink water', 'kick right leg', 'nod head', 'sit/stand']


@pytest.fixture
def label_map(tmp_path):
    path = tmp_path / 'tiny_label_map.txt'
    path.write_text('\n'.join(CLASSES) + '\n', encoding='utf-8')
    return path


def test_offline_initial_state_writes_transcripts(tmp_path, label_map):
    work_dir = tmp_path / 'work'
    state = build_initial_state(dict(label_map=str(label_map)), len(CLASSES), 'nturgb+d', 'j',
                                work_dir)
    out = work_dir / 'agent' / 'transcripts'
    files = sorted(p.name for p in out.iterdir())
    assert files == ['001_drink_water.txt', '002_kick_right_leg.txt', '003_nod_head.txt',
                     '004_sit_stand.txt']
    assert [len(read_transcript(out / f)) for f in files] == [5, 5, 5, 5]
    assert state.masks.shape == (4, 25, 25) and state.masks.dtype == np.float32
    assert state.version == 0 and len(state.descriptions) == 4
    assert all("'" + name + "'" in d for name, d in zip(CLASSES, state.descriptions))
    # Kick right leg: the rows of the right hip, knee, ankle and foot (0-based 16..19).
    assert state.critical_joints[1] == [16, 17, 18, 19]
    assert [int(r) for r in np.flatnonzero(state.masks[1].any(1))] == [16, 17, 18, 19]
    assert state.critical_joints[2] == [2, 3]

    # Deterministic, and bones use the bone pairs.
    again = build_initial_state(dict(label_map=str(label_map)), 4, 'nturgb+d', 'j',
                                tmp_path / 'other')
    assert again.descriptions == state.descriptions
    np.testing.assert_array_equal(again.masks, state.masks)
    bones = build_initial_state(dict(label_map=str(label_map)), 4, 'nturgb+d', 'bm', work_dir)
    assert bones.masks.shape == (4, 25, 25) and not np.array_equal(bones.masks, state.masks)


def test_resume_reuses_and_completes_transcripts(tmp_path, label_map):
    work_dir = tmp_path / 'work'
    out = work_dir / 'agent' / 'transcripts'
    edited = [Turn('q1', 'a1'), Turn('q2', 'a2'), Turn('q3', '4'),
              Turn('q4', '3-neck: bends.\n4-head: nods.'), Turn('q5', 'Edited description.')]
    write_transcript(out / transcript_filename(0, CLASSES[0]), edited)
    state = build_initial_state(dict(label_map=str(label_map)), 4, 'nturgb+d', 'j', work_dir)
    assert state.descriptions[0] == 'Edited description.'
    assert state.critical_joints[0] == [2, 3]
    assert len(list(out.iterdir())) == 4  # the other three were generated
    assert read_transcript(out / transcript_filename(0, CLASSES[0])) == edited


def test_transcripts_dir_and_masks_override(tmp_path, label_map, caplog):
    folder = tmp_path / 'given'
    for i, name in enumerate(CLASSES):
        write_transcript(folder / transcript_filename(i, name),
                         [Turn('Q', f'Description of {name}.')] * 3
                         + [Turn('Q', f'{i + 1}-joint: moves.\n40-nothing: x.')]
                         + [Turn('Q', f'Final words about {name}.')])
    with caplog.at_level(logging.WARNING, logger='skeletonagent.agent.initial'):
        state = build_initial_state(dict(label_map=str(label_map), transcripts=str(folder)),
                                    4, 'nturgb+d', 'j', tmp_path / 'work')
    assert state.descriptions == [f'Final words about {n}.' for n in CLASSES]
    assert state.critical_joints == [[0], [1], [2], [3]]
    assert 'dropped joint numbers [40]' in caplog.text
    assert not (tmp_path / 'work' / 'agent').exists()

    masks = np.zeros((4, 25, 25), dtype=np.float64)
    masks[:, 5] = 1
    np.save(tmp_path / 'masks.npy', masks)
    override = build_initial_state(dict(label_map=str(label_map), transcripts=str(folder),
                                        masks=str(tmp_path / 'masks.npy')),
                                   4, 'nturgb+d', 'j', tmp_path / 'work')
    assert override.masks.dtype == np.float32
    np.testing.assert_array_equal(override.masks, masks)
    np.save(tmp_path / 'bad.npy', np.zeros((4, 17, 17)))
    with pytest.raises(ValueError, match=r'bad.npy: shape \(4, 17, 17\), expected \(4, 25, 25\)'):
        build_initial_state(dict(label_map=str(label_map), transcripts=str(folder),
                                 masks=str(tmp_path / 'bad.npy')), 4, 'nturgb+d', 'j', tmp_path)


def test_label_map_errors(tmp_path, label_map):
    with pytest.raises(ValueError, match='no label map for 7 classes'):
        build_initial_state({}, 7, 'nturgb+d', 'j', tmp_path)
    with pytest.raises(ValueError, match='holds 4 class names, expected num_classes=5'):
        build_initial_state(dict(label_map=str(label_map)), 5, 'nturgb+d', 'j', tmp_path)
    with pytest.raises(ValueError, match='unknown modality'):
        build_initial_state(dict(label_map=str(label_map)), 4, 'nturgb+d', 'x', tmp_path)


def test_demo_label_map(tmp_path):
    from skeletonagent.datasets.label_map import load_label_map
    names = load_label_map('demo')
    state = build_initial_state(dict(label_map='demo'), len(names), 'nturgb+d', 'k', tmp_path)
    assert state.masks.shape == (len(names), 25, 25)
    assert len(list((tmp_path / 'agent' / 'transcripts').iterdir())) == len(names)


def test_default_ntu60_label_map(tmp_path):
    state = build_initial_state({}, 60, 'nturgb+d', 'j', tmp_path)
    assert state.masks.shape == (60, 25, 25)
    assert all(state.critical_joints) and all(state.descriptions)


def test_state_dict_round_trip_weights_only(tmp_path):
    masks = np.random.default_rng(0).random((3, 5, 5)).astype(np.float32)
    state = AgentState(['a', 'b', 'c'], masks, version=2, critical_joints=[[0], [1, 2], []])
    path = tmp_path / 'ckpt.pth'
    torch.save({'agent': state.state_dict()}, path)
    loaded = torch.load(path, weights_only=True)['agent']
    assert isinstance(loaded['masks'], torch.Tensor)
    restored = AgentState.from_state_dict(loaded)
    assert restored.descriptions == ['a', 'b', 'c'] and restored.version == 2
    assert restored.critical_joints == [[0], [1, 2], []]
    np.testing.assert_array_equal(restored.masks, masks)
    assert restored.masks.dtype == np.float32
    bumped = restored.replace(descriptions=['x', 'y', 'z'])
    assert bumped.version == 3 and bumped.descriptions == ['x', 'y', 'z']
    assert restored.descriptions == ['a', 'b', 'c']


def test_state_validation():
    with pytest.raises(ValueError, match=r'2 descriptions but masks for 3 classes'):
        AgentState(['a', 'b'], np.zeros((3, 4, 4)))
    with pytest.raises(ValueError, match=r'must be \(C, V, V\)'):
        AgentState(['a'], np.zeros((1, 4, 5)))
    with pytest.raises(KeyError, match="lacks 'masks'"):
        AgentState.from_state_dict({'descriptions': []})
    from_lists = AgentState.from_state_dict({'descriptions': ['a'], 'masks': [[[1, 0], [0, 0]]]})
    assert from_lists.masks.dtype == np.float32 and from_lists.version == 0


def test_build_masks_tool(tmp_path, label_map, capsys):
    spec = importlib.util.spec_from_file_location('build_masks_tool',
                                                  REPO / 'tools' / 'agent' / 'build_masks.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    folder = tmp_path / 'given'
    for i, name in enumerate(CLASSES):
        write_transcript(folder / transcript_filename(i, name),
                         [Turn('Q', 'x')] * 3 + [Turn('Q', f'{i + 1}-joint: moves.\n99-x: y.')]
                         + [Turn('Q', 'Final.')])
    out = tmp_path / 'out' / 'masks.npy'
    assert tool.main(['--transcripts', str(folder), '--label-map', str(label_map),
                      '--layout', 'nturgb+d', '--modality', 'b', '--out', str(out)]) == 0
    masks = np.load(out)
    assert masks.shape == (4, 25, 25) and masks.dtype == np.float32
    # Joint 0 (base of the spine) is in the pairs at 0 (0, 1), 12 (12, 0) and 16 (16, 0).
    assert [int(r) for r in np.flatnonzero(masks[0].any(1))] == [0, 12, 16]
    printed = capsys.readouterr().out
    assert '001 drink water: joints 1  dropped: [99]' in printed
    assert '004 sit/stand: joints 4' in printed and '4 numbers dropped' in printed
