"""Write the 48 benchmark configs ``configs/<dataset>/<stream>.py`` from one table.

The official SkeletonAgent ships one hand-written file per dataset and stream; their values
differ only in what the table below holds (classes, data, splits, epochs, the loss weights of
each stream pair, the questioner interval and the stream-specific augmentation). Every value
lives here once; the generated files are committed, plain and readable (no imports, no
inheritance), and ``tests/configs/test_configs.py`` checks that they equal this script's output.

Usage (from the repository root)::

    python configs/_generate.py            # (re)write all 48 files
    python configs/_generate.py --check    # exit 1 naming the files that differ

Sources: github.com/firework8/SkeletonAgent ``configs/*/*.py`` (hyper-parameters, pipelines,
splits, pickle names); ``ann_file`` is relative to the repository's ``data/`` folder (PYSKL's
folder names) instead of the official absolute ``/data/...``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parent

#: Streams, in the order of the paper's fusion (joint, bone, k-bone and their motions).
STREAMS = ('j', 'b', 'k', 'jm', 'bm', 'km')
STREAM_NAMES = dict(j='joint', b='bone', k='k-bone', jm='joint motion', bm='bone motion',
                    km='k-bone motion')

#: One row per benchmark. ``weights`` holds (weight_1, weight_2) of SimpleHead per stream
#: family (j/jm, b/bm, k/km); ``spatial_flip`` / ``part_drop`` name the streams whose
#: training pipeline adds Spatial_Flip(p=0.5) / Part_Drop(p=0.2) (NTU only).
DATASETS = {
    'ntu60_xsub': dict(
        title='NTU RGB+D 60, cross-subject (X-Sub)', kind='ntu', num_classes=60,
        label_map='ntu60', ann_file='data/nturgbd/ntu60_3danno.pkl',
        data_note="PYSKL's ntu60_3danno.pkl (or tools/data/ntu_preproc.py)",
        train_split='xsub_train', test_split='xsub_val', epochs=150, interval=5,
        weights=dict(j=(0.2, 0.5), b=(0.2, 0.2), k=(0.2, 0.2)),
        spatial_flip=('b', 'bm', 'k', 'km'), part_drop=()),
    'ntu60_xview': dict(
        title='NTU RGB+D 60, cross-view (X-View)', kind='ntu', num_classes=60,
        label_map='ntu60', ann_file='data/nturgbd/ntu60_3danno.pkl',
        data_note="PYSKL's ntu60_3danno.pkl (or tools/data/ntu_preproc.py)",
        train_split='xview_train', test_split='xview_val', epochs=150, interval=5,
        weights=dict(j=(0.2, 0.5), b=(0.2, 0.2), k=(0.2, 0.2)),
        spatial_flip=(), part_drop=('k', 'km')),
    'ntu120_xsub': dict(
        title='NTU RGB+D 120, cross-subject (X-Sub)', kind='ntu', num_classes=120,
        label_map='ntu120', ann_file='data/nturgbd/ntu120_3danno.pkl',
        data_note="PYSKL's ntu120_3danno.pkl (or tools/data/ntu_preproc.py)",
        train_split='xsub_train', test_split='xsub_val', epochs=150, interval=5,
        weights=dict(j=(0.3, 0.1), b=(0.3, 0.3), k=(0.2, 0.3)),
        spatial_flip=('j', 'jm', 'b', 'bm'), part_drop=('k', 'km')),
    'ntu120_xset': dict(
        title='NTU RGB+D 120, cross-setup (X-Set)', kind='ntu', num_classes=120,
        label_map='ntu120', ann_file='data/nturgbd/ntu120_3danno.pkl',
        data_note="PYSKL's ntu120_3danno.pkl (or tools/data/ntu_preproc.py)",
        train_split='xset_train', test_split='xset_val', epochs=150, interval=5,
        weights=dict(j=(0.3, 0.1), b=(0.3, 0.3), k=(0.2, 0.3)),
        spatial_flip=('b', 'bm', 'k', 'km'), part_drop=()),
    'k400': dict(
        title='Kinetics-Skeleton 400 (HRNet 2D poses)', kind='k400', num_classes=400,
        label_map='k400', ann_file='data/k400/k400_hrnet.pkl',
        data_note="PYSKL's k400_hrnet.pkl with its compressed kpfiles, read through memcached",
        train_split='train', test_split='val', epochs=150, interval=50,
        weights=dict(j=(0.005, 0.01), b=(0.005, 0.01), k=(0.005, 0.01)),
        spatial_flip=(), part_drop=()),
    'finegym': dict(
        title='FineGYM (Gym99, HRNet 2D poses)', kind='gym', num_classes=99,
        label_map='finegym', ann_file='data/gym/gym_hrnet.pkl',
        data_note="PYSKL's gym_hrnet.pkl",
        train_split='train', test_split='val', epochs=150, interval=5,
        weights=dict(j=(0.1, 0.1), b=(0.1, 0.1), k=(0.05, 0.1)),
        spatial_flip=(), part_drop=()),
    'uav_csv1': dict(
        title='UAV-Human, cross-subject v1 (CSv1)', kind='uav', num_classes=155,
        label_map='uav', ann_file='data/uav/uav_human.pkl',
        data_note='uav_human.pkl from tools/data/uav_preproc.py',
        train_split='csv1_train', test_split='csv1_val', epochs=300, interval=5,
        weights=dict(j=(0.2, 0.2), b=(0.3, 0.2), k=(0.05, 0.2)),
        spatial_flip=(), part_drop=()),
    'uav_csv2': dict(
        title='UAV-Human, cross-subject v2 (CSv2)', kind='uav', num_classes=155,
        label_map='uav', ann_file='data/uav/uav_human.pkl',
        data_note='uav_human.pkl from tools/data/uav_preproc.py',
        train_split='csv2_train', test_split='csv2_val', epochs=150, interval=5,
        weights=dict(j=(0.2, 0.2), b=(0.3, 0.2), k=(0.05, 0.2)),
        spatial_flip=(), part_drop=()),
}

#: What depends only on the kind of data: skeleton graph, backbone, batch and schedule.
KINDS = dict(
    ntu=dict(graph='nturgb+d', backbone='GCN_Module_LLM', videos_per_gpu=16,
             workers_per_gpu=4, lr=0.025,
             lr_note='official: 4 GPUs x 16 at lr 0.1 -> 0.025 per GPU of 16 samples',
             metrics="['top_k_accuracy']"),
    k400=dict(graph='coco_new', backbone='GCN_Module_LLM_K400', videos_per_gpu=64,
              workers_per_gpu=16, lr=0.1,
              lr_note='official: 64 samples per GPU at lr 0.1',
              metrics="['top_k_accuracy', 'mean_class_accuracy'], topk=(1, 5)"),
    gym=dict(graph='coco_new', backbone='GCN_Module_LLM', videos_per_gpu=16,
             workers_per_gpu=4, lr=0.025,
             lr_note='official: 4 GPUs x 16 at lr 0.1 -> 0.025 per GPU of 16 samples',
             metrics="['top_k_accuracy', 'mean_class_accuracy'], topk=(1, 5)"),
    uav=dict(graph='uav', backbone='GCN_Module_LLM', videos_per_gpu=16,
             workers_per_gpu=4, lr=0.025,
             lr_note='official: 4 GPUs x 16 at lr 0.1 -> 0.025 per GPU of 16 samples',
             metrics="['top_k_accuracy', 'mean_class_accuracy'], topk=(1, 5)"),
)

CLIP_LEN = 100
VAL_CLIPS = 1
TEST_CLIPS = 10
MC_CFG = "('localhost', 22077)"  # the official memcached address (Kinetics)

_FORMAT = [
    "    dict(type='FormatGCNInput'{num_person}),",
    "    dict(type='Collect', keys=['keypoint', 'label'], meta_keys=[]),",
    "    dict(type='ToTensor', keys=['keypoint'])",
]


def _pipeline(kind: str, stream: str, row: dict, phase: str) -> list[str]:
    """The lines of one pipeline (``phase``: 'train', 'val' or 'test')."""
    clips = {'train': '', 'val': f', num_clips={VAL_CLIPS}', 'test': f', num_clips={TEST_CLIPS}'}[phase]
    train = phase == 'train'
    lines = []
    if kind == 'ntu':
        lines.append("    dict(type='PreNormalize3D', align_spine=False),")
        if train:
            lines.append("    dict(type='RandomRot', theta=0.2),")
            if stream in row['spatial_flip']:
                lines.append("    dict(type='Spatial_Flip', dataset=graph, p=0.5),")
            if stream in row['part_drop']:
                lines.append("    dict(type='Part_Drop', dataset=graph, p=0.2),")
        lines.append("    dict(type='GenSkeFeat', dataset=graph, feats=[modality]),")
        lines.append(f"    dict(type='UniformSampleDecode', clip_len={CLIP_LEN}{clips}),")
        num_person = ''
    else:
        if kind == 'k400':
            lines.append("    dict(type='DecompressPose', squeeze=True),")
        lines.append(f"    dict(type='UniformSampleFrames', clip_len={CLIP_LEN}{clips}),")
        lines.append("    dict(type='PoseDecode'),")
        if kind in ('k400', 'gym'):
            if train:
                # the 17 COCO joints' left/right pairs, before the 3 derived joints are added
                lines.append("    dict(type='Flip', flip_ratio=0.5, dataset='coco'),")
            lines.append("    dict(type='Kinetics_Transform'),")
        lines.append("    dict(type='GenSkeFeat', dataset=graph, feats=[modality]),")
        num_person = ', num_person=2'
    lines += [line.format(num_person=num_person) for line in _FORMAT]
    return lines


def _data(kind: str, row: dict) -> list[str]:
    k = KINDS[kind]
    out = [f"    videos_per_gpu={k['videos_per_gpu']},",
           f"    workers_per_gpu={k['workers_per_gpu']},",
           '    test_dataloader=dict(videos_per_gpu=1),']
    extra_train = extra = ''
    if kind == 'k400':
        extra_train = ',\n        box_thr=box_thr, valid_ratio=valid_ratio, memcached=memcached, mc_cfg=mc_cfg'
        extra = ',\n        box_thr=box_thr, memcached=memcached, mc_cfg=mc_cfg'
    for name, split in (('train', row['train_split']), ('val', row['test_split']),
                        ('test', row['test_split'])):
        more = extra_train if name == 'train' else extra
        out.append(f"    {name}=dict(type=dataset_type, ann_file=ann_file, pipeline={name}_pipeline, "
                   f"split='{split}'{more}),")
    out[-1] = out[-1][:-1] + ')'
    return out


def render(dataset: str, stream: str) -> str:
    """The text of ``configs/<dataset>/<stream>.py``."""
    row = dict(DATASETS[dataset], official_dir=f"data/agent/{DATASETS[dataset]['label_map']}")
    kind = row['kind']
    k = KINDS[kind]
    w1, w2 = row['weights'][stream[0]]
    nc = row['num_classes']
    L = [
        f"# {row['title']}, {STREAM_NAMES[stream]} stream: the official SkeletonAgent hyper-parameters.",
        '# Written by configs/_generate.py from its table: edit the table there and rerun it.',
        f"# Data: {row['data_note']} at {row['ann_file']}",
        '# (another path: --cfg-options data.train.ann_file=P data.val.ann_file=P data.test.ann_file=P).',
        f"modality = '{stream}'",
        f"graph = '{k['graph']}'",
        f"work_dir = f'./work_dirs/{dataset}/{{modality}}'",
        '',
        'model = dict(',
        "    type='RecognizerGCN',",
        '    backbone=dict(',
        f"        type='{k['backbone']}',",
        f"        llm_model='gpt4o', llm_modality=modality, num_classes={nc},",
        "        tcn_ms_cfg=[(3, 1), (3, 2), (3, 3), (3, 4), ('max', 3), '1x1'],",
        "        graph_cfg=dict(layout=graph, mode='random', num_filter=8, init_off=.04, init_std=.02)),",
        '    cls_head=dict(',
        f"        type='SimpleHead', joint_cfg=graph, num_classes={nc}, in_channels=384, work_dir=work_dir,",
        f"        interval_epoch={row['interval']}, weight_1={w1}, weight_2={w2}),",
        "    # The paper's text encoder (CLIP ViT-B/32), fine-tuned with the model as the official",
        '    # code does. Frozen and cached (faster): trainable=False, or from the command line',
        '    # --cfg-options model.text_encoder.trainable=False.',
        "    text_encoder=dict(type='CLIP', trainable=True))",
        '',
        '# The agent, as the official code runs it. Training starts from the official GPT-4o',
        '# dialogues and critical-joint masks (no LLM call at start), imported once from a clone of',
        '# github.com/firework8/SkeletonAgent with',
        f"#   python tools/agent/import_official.py --repo PATH_TO_THE_CLONE   (-> {row['official_dir']}/)",
        f"# Every {row['interval']} epochs (interval_epoch) a follow-up round asks gpt-4o, with the official",
        "# prompts, how each class differs from those it is confused with (key from $OPENAI_API_KEY).",
        '# Switches (--cfg-options), each a deliberate difference from the paper run:',
        '#   new dialogues and masks instead of the official ones: agent.transcripts=None agent.masks=None',
        "#   our prompt wording: agent.prompts=None",
        '#   our agent loop (rounds in the background, all ranks counted, see README): agent.official=False',
        '# Another LLM for the follow-up rounds (and for new dialogues):',
        '#   DeepSeek: agent.llm.model=deepseek-chat agent.llm.base_url=https://api.deepseek.com'
        ' agent.llm.api_key_env=DEEPSEEK_API_KEY',
        '#   local OpenAI-compatible server: agent.llm.base_url=http://127.0.0.1:8000/v1'
        ' agent.llm.api_key_env=None agent.llm.model=<served-model-name>',
        '#   offline heuristic stand-in (no LLM, no network): agent.llm.type=Offline',
        f"agent = dict(label_map='{row['label_map']}', official_dir='{row['official_dir']}',",
        "             transcripts='official', masks='official', prompts='official', official=True,",
        "             # the official requests: the API's own temperature and length",
        "             llm=dict(type='OpenAIChat', model='gpt-4o', api_key_env='OPENAI_API_KEY',",
        '                      temperature=None, max_tokens=None))',
        '',
    ]
    if kind == 'k400':
        L += ['memcached = True', f'mc_cfg = {MC_CFG}']
    L += ["dataset_type = 'PoseDataset'", f"ann_file = '{row['ann_file']}'"]
    if kind == 'k400':
        L += ['box_thr = 0.5', 'valid_ratio = 0.0']
    for phase in ('train', 'val', 'test'):
        L.append(f'{phase}_pipeline = [')
        L += _pipeline(kind, stream, row, phase)
        L.append(']')
    L.append('data = dict(')
    L += _data(kind, row)
    L += [
        '',
        f"# {k['lr_note']}. The lr follows the total batch (videos_per_gpu x GPUs) linearly:",
        f"# {k['videos_per_gpu']} x 8 GPUs trains at {k['lr'] * 8:g} "
        '(auto_scale_lr; enable=False keeps lr as written).',
        f"optimizer = dict(type='SGD', lr={k['lr']}, momentum=0.9, weight_decay=0.0005, nesterov=True)",
        f"auto_scale_lr = dict(enable=True, base_batch_size={k['videos_per_gpu']})",
        'optimizer_config = dict(grad_clip=None)',
        "lr_config = dict(policy='CosineAnnealing', min_lr=0, by_epoch=False)",
        f"total_epochs = {row['epochs']}",
        'checkpoint_config = dict(interval=1)',
        f"evaluation = dict(interval=1, metrics={k['metrics']})",
        "log_config = dict(interval=100, hooks=[dict(type='TextLoggerHook')])",
    ]
    return '\n'.join(L) + '\n'


def config_paths() -> list[tuple[str, str, Path]]:
    """(dataset, stream, path) of every generated config, in table order."""
    return [(ds, s, CONFIG_DIR / ds / f'{s}.py') for ds in DATASETS for s in STREAMS]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--check', action='store_true',
                        help='write nothing; exit 1 if a committed file differs')
    args = parser.parse_args(argv)
    stale = []
    for dataset, stream, path in config_paths():
        text = render(dataset, stream)
        current = path.read_text(encoding='utf-8') if path.is_file() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding='utf-8')
    rel = [str(p.relative_to(CONFIG_DIR.parent)) for p in stale]
    if args.check:
        if rel:
            print('out of date (run python configs/_generate.py):\n  ' + '\n  '.join(rel))
            return 1
        print(f'all {len(config_paths())} configs up to date')
        return 0
    print(f'wrote {len(rel)} of {len(config_paths())} configs' + (':\n  ' + '\n  '.join(rel) if rel else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
