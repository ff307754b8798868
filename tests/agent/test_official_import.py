"""The official artefacts: tools/agent/import_official.py on a tree in the official layout,
and every paper config starting from what it imported (or stopping with the two ways on)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from official_tree import FOLLOW_UP, INITIAL, joints_of, summary_of, write_official_tree

from skeletonagent.agent import build_initial_agent
from skeletonagent.agent.official import OFFICIAL_DATASETS, OfficialImportError, import_official, read_official_prompts
from skeletonagent.agent.selector import base_stream, build_masks
from skeletonagent.agent.settings import agent_settings
from skeletonagent.agent.sources import AgentSourceMissing, resolve_sources
from skeletonagent.agent.state import masks_digest
from skeletonagent.datasets.label_map import load_label_map
from skeletonagent.engine import load_config
from skeletonagent.engine.config import RunOptions
from skeletonagent.engine.spec import resolve_run
from skeletonagent.skeleton import get_layout

ROOT = Path(__file__).resolve().parents[2]
DATASETS = ['ntu60_xsub', 'ntu60_xview', 'ntu120_xsub', 'ntu120_xset', 'k400', 'finegym',
            'uav_csv1', 'uav_csv2']
STREAMS = ['j', 'b', 'k', 'jm', 'bm', 'km']
ALL = [(d, s) for d in DATASETS for s in STREAMS]


def _tool():
    spec = importlib.util.spec_from_file_location('import_official_tool',
                                                  ROOT / 'tools/agent/import_official.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def clone(tmp_path_factory):
    return write_official_tree(tmp_path_factory.mktemp('SkeletonAgent'))


@pytest.fixture(scope='module')
def imported(clone, tmp_path_factory):
    out = tmp_path_factory.mktemp('data') / 'agent'
    assert _tool().main(['--repo', str(clone), '--out', str(out)]) == 0
    return out


# ------------------------------------------------------------------------------ the importer
def test_import_writes_every_dataset_with_a_manifest(imported, clone, capsys):
    for key, ds in OFFICIAL_DATASETS.items():
        folder = imported / key
        names = load_label_map(key)
        files = sorted((folder / 'transcripts').glob('*.txt'))
        assert len(files) == ds.num_classes
        # byte for byte as in the clone
        source = clone / 'tools/text/gpt4o' / ds.name
        for path in files[:3] + files[-2:]:
            assert path.read_bytes() == (source / path.name).read_bytes()
        manifest = json.loads((folder / 'manifest.json').read_text(encoding='utf-8'))
        assert manifest['classes'] == ds.num_classes == len(names)
        assert manifest['rounds'] == dict(min=5, max=5, total=5 * ds.num_classes)
        layout = get_layout(ds.layout)
        joints = [joints_of(i, len(layout.joint_names)) for i in range(ds.num_classes)]
        for stream in ('j', 'b', 'k'):
            masks = np.load(folder / 'masks' / f'{stream}.npy')
            assert masks.dtype == np.float32
            np.testing.assert_array_equal(masks, build_masks(joints, layout, stream))
            assert manifest['masks'][stream] == masks_digest(masks)
            assert manifest['masks_match_transcripts'][stream] is True
        assert manifest['warnings'] == []


def test_imported_prompts_are_named_templates_that_ask_as_the_scripts_did(imported):
    templates = json.loads((imported / 'uav' / 'prompts.json').read_text(encoding='utf-8'))
    assert templates['describe'] == INITIAL[0].replace('{}', '{action}')
    assert templates['follow_up'] == "'{action}' is taken for {similar}. In one sentence, what sets '{action}' apart?"
    from skeletonagent.agent.prompts import PromptSet
    prompts = PromptSet.from_cfg(templates)
    question = prompts.follow_up_question('drink', ['eat', 'wave'])
    assert question == FOLLOW_UP.format('drink', "'eat', 'wave'", 'drink')
    assert prompts.initial_questions('drink', 'uav')[2].startswith(
        'The body has 17 joints numbered: 1-nose, 2-right shoulder')


def test_stored_questions_without_stars_are_still_recognised(imported):
    from skeletonagent.agent.prompts import PromptSet
    from skeletonagent.agent.transcripts import read_transcript
    prompts = PromptSet.from_cfg(json.loads((imported / 'ntu60' / 'prompts.json').read_text()))
    turns = read_transcript(next((imported / 'ntu60' / 'transcripts').glob('001_*.txt')))
    assert [prompts.identify(t.question).kind for t in turns] == \
        ['describe', 'body_parts', 'critical_joints', 'joint_motion', 'summary']


def test_prompt_scripts_are_never_executed(clone):
    # the scripts raise SystemExit at their first line: reading them with ast is the only way
    templates = read_official_prompts(clone, 'k400')
    assert set(templates) == {'describe', 'body_parts', 'critical_joints', 'joint_motion',
                              'summary', 'follow_up'}


def _bad_tree(tmp_path, key='uav'):
    return write_official_tree(tmp_path / 'repo', keys=[key])


def test_missing_class_is_named_and_nothing_is_written(tmp_path):
    repo = _bad_tree(tmp_path)
    victim = next((repo / 'tools/text/gpt4o/uav_human').glob('007_*.txt'))
    victim.unlink()
    out = tmp_path / 'out'
    with pytest.raises(OfficialImportError, match=r"uav: 1 of 155 classes have no transcript.*007 "):
        import_official(repo, out, datasets=['uav'])
    assert not (out / 'uav').exists() and not any(out.glob('.uav.*'))


def test_out_of_range_joint_number_is_named(tmp_path):
    repo = _bad_tree(tmp_path)
    path = next((repo / 'tools/text/gpt4o/uav_human').glob('003_*.txt'))
    path.write_text(path.read_text(encoding='utf-8').replace('Round 4 Answer:\n', 'Round 4 Answer:\n18-tail: wags.\n'),
                    encoding='utf-8')
    with pytest.raises(OfficialImportError, match=r"003_.*joint number\(s\) \[18\] outside 1..17"):
        import_official(repo, tmp_path / 'out', datasets=['uav'])


def test_prompt_numbering_must_name_our_layouts_joints(tmp_path):
    repo = _bad_tree(tmp_path)
    script = repo / 'tools/text/gpt4o/gpt4o_uav_human.py'
    # the numbering our uav layout had before it followed the official prompt
    script.write_text(script.read_text(encoding='utf-8').replace(
        '2-right shoulder', '2-left shoulder'), encoding='utf-8')
    with pytest.raises(OfficialImportError,
                       match=r"names joints differently.*2-left shoulder \(ours: 'right shoulder'\)"):
        import_official(repo, tmp_path / 'out', datasets=['uav'])


def test_bad_masks_are_refused(tmp_path):
    repo = _bad_tree(tmp_path)
    np.save(repo / 'skeletonagent/models/gcns/cls_matrix/uav_human_b_critical_joints.npy',
            np.zeros((155, 17, 16)))
    with pytest.raises(OfficialImportError, match=r'uav_human_b_critical_joints.npy: shape \(155, 17, 16\)'):
        import_official(repo, tmp_path / 'out', datasets=['uav'])


def test_a_failed_reimport_keeps_the_previous_import(tmp_path):
    repo = _bad_tree(tmp_path)
    out = tmp_path / 'out'
    import_official(repo, out, datasets=['uav'])
    before = (out / 'uav' / 'manifest.json').read_bytes()
    next((repo / 'tools/text/gpt4o/uav_human').glob('010_*.txt')).unlink()
    with pytest.raises(OfficialImportError):
        import_official(repo, out, datasets=['uav'])
    assert (out / 'uav' / 'manifest.json').read_bytes() == before
    assert len(list((out / 'uav' / 'transcripts').glob('*.txt'))) == 155


def test_tool_reports_errors_in_one_line(tmp_path, capsys):
    assert _tool().main(['--repo', str(tmp_path / 'nowhere')]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: official repository not found')


# ------------------------------------------------------------------- the 48 paper configs
_STARTS: dict = {}


def _paper_cfg(ds, stream, official_dir):
    cfg = load_config(ROOT / 'configs' / ds / f'{stream}.py',
                      {'agent.official_dir': str(official_dir)})
    return cfg


@pytest.mark.parametrize('ds,stream', ALL, ids=[f'{d}/{s}' for d, s in ALL])
def test_paper_config_starts_from_the_imported_texts_and_masks(ds, stream, imported, tmp_path,
                                                               monkeypatch):
    cfg = _paper_cfg(ds, stream, imported / load_config(
        ROOT / 'configs' / ds / f'{stream}.py').agent.label_map)
    settings = agent_settings(cfg)
    resolve_run(cfg, RunOptions()).with_plugins_resolved()  # nothing missing: no error
    key = settings['label_map']
    folder = imported / key
    # replay: no backend is built, no LLM is asked at start
    import skeletonagent.agent.initial as initial_module
    monkeypatch.setattr(initial_module, 'build_backend',
                        lambda *a, **k: pytest.fail('an LLM backend was built at start'))
    cache_key = (key, base_stream(stream))
    if cache_key not in _STARTS:
        _STARTS[cache_key] = build_initial_agent(dict(settings), settings['num_classes'],
                                                 settings['layout'], stream, tmp_path)
    start = _STARTS[cache_key]
    assert start.sources.transcripts == folder / 'transcripts'
    assert start.sources.text_source.startswith(f'imported official ({folder}')
    names = load_label_map(key)
    assert start.state.descriptions == [summary_of(n) for n in names]
    manifest = json.loads((folder / 'manifest.json').read_text(encoding='utf-8'))
    assert start.state.digests()['masks'] == manifest['masks'][base_stream(stream)]
    assert start.sources.prompts.describe == json.loads(
        (folder / 'prompts.json').read_text(encoding='utf-8'))['describe']


@pytest.mark.parametrize('ds,stream', ALL, ids=[f'{d}/{s}' for d, s in ALL])
def test_paper_config_without_the_import_stops_with_the_two_ways_on(ds, stream, tmp_path):
    cfg = _paper_cfg(ds, stream, tmp_path / 'agent' / 'x')
    with pytest.raises(AgentSourceMissing) as info:
        resolve_run(cfg, RunOptions()).with_plugins_resolved()
    text = str(info.value)
    assert text.startswith('agent: the config trains from the official GPT-4o dialogues')
    assert 'python tools/agent/import_official.py --repo PATH_TO_CLONE' in text
    assert '--cfg-options agent.transcripts=None agent.masks=None' in text
    assert f'tools/agent/describe.py --config {cfg.filename}' in text


def test_train_tool_stops_before_anything_else(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location('train_tool', ROOT / 'tools/train.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data = tmp_path / 'ntu60_3danno.pkl'   # the data is checked first, then the agent's texts
    data.write_bytes(__import__('pickle').dumps({}))
    with pytest.raises(SystemExit) as info:
        module.main([str(ROOT / 'configs/ntu60_xsub/j.py'), '--work-dir', str(tmp_path / 'w'),
                     '--cfg-options', f'agent.official_dir={tmp_path / "none"}',
                     f'data.train.ann_file={data}'])
    assert str(info.value).startswith('error: agent: the config trains from the official GPT-4o')
    assert not (tmp_path / 'w').exists()        # nothing built, nothing written


def test_generating_new_dialogues_is_one_switch_away(tmp_path):
    cfg = load_config(ROOT / 'configs/uav_csv1/j.py',
                      {'agent.transcripts': None, 'agent.masks': None, 'agent.prompts': None,
                       'agent.official_dir': str(tmp_path / 'none')})
    resolve_run(cfg, RunOptions()).with_plugins_resolved()  # nothing imported is needed any more
    sources = resolve_sources(agent_settings(cfg), 'j', llm='OpenAIChat(gpt-4o)')
    assert sources.transcripts is None and sources.masks is None
    assert sources.text_source == 'generated at start by OpenAIChat(gpt-4o)'
