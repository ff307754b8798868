# Your own actions (README, "Your own actions"): the pickle and label map that
#   python tools/data/extract_poses.py VIDEOS --out data/custom/custom_2d.pkl
# writes (MediaPipe's 2D poses on the COCO-17 layout, up to 2 persons), the joint stream of a
# narrow SkeletonAgent backbone that trains on a CPU, the offline MiniLM text encoder (frozen,
# cached). At the start of training the agent asks the configured LLM about your class names
# (the label map) and turns the replies into descriptions and joint masks; the default Offline
# backend needs no key (switch: --cfg-options agent.llm.type=OpenAIChat agent.llm.model=gpt-4o).
# The number of classes is read from the label map (2 until it exists).
modality = 'j'
graph = 'coco'
work_dir = f'./work_dirs/custom/{modality}'
ann_file = 'data/custom/custom_2d.pkl'
label_map = 'data/custom/label_map.txt'
try:   # a config cannot import: the label map is counted with the builtin open()
    num_classes = len([_name for _name in open(label_map, encoding='utf-8').read().splitlines() if _name.strip()])
except OSError:
    num_classes = 2
clip_len = 48

model = dict(
    type='RecognizerGCN',
    backbone=dict(
        type='GCN_Module_LLM',
        llm_modality=modality, num_classes=num_classes, in_channels=3,
        base_channels=16, num_stages=6, inflate_stages=[3, 5], down_stages=[3, 5],
        text_dim=384, text_key='MiniLM',
        tcn_ms_cfg=[(3, 1), (3, 2), (3, 3), (3, 4), ('max', 3), '1x1'],
        graph_cfg=dict(layout=graph, mode='spatial')),
    cls_head=dict(
        type='SimpleHead', joint_cfg=graph, num_classes=num_classes, in_channels=64,
        work_dir=work_dir, interval_epoch=5, weight_1=0.2, weight_2=0.5),
    text_encoder=dict(type='MiniLM', trainable=False))

agent = dict(label_map=label_map, llm=dict(type='Offline'))

dataset_type = 'PoseDataset'
train_pipeline = [
    dict(type='PreNormalize2D'),
    dict(type='GenSkeFeat', dataset=graph, feats=[modality]),
    dict(type='UniformSampleFrames', clip_len=clip_len),
    dict(type='PoseDecode'),
    dict(type='FormatGCNInput', num_person=2),
    dict(type='Collect', keys=['keypoint', 'label'], meta_keys=[]),
    dict(type='ToTensor', keys=['keypoint'])
]
val_pipeline = [
    dict(type='PreNormalize2D'),
    dict(type='GenSkeFeat', dataset=graph, feats=[modality]),
    dict(type='UniformSampleFrames', clip_len=clip_len, num_clips=1),
    dict(type='PoseDecode'),
    dict(type='FormatGCNInput', num_person=2),
    dict(type='Collect', keys=['keypoint', 'label'], meta_keys=[]),
    dict(type='ToTensor', keys=['keypoint'])
]
test_pipeline = [
    dict(type='PreNormalize2D'),
    dict(type='GenSkeFeat', dataset=graph, feats=[modality]),
    dict(type='UniformSampleFrames', clip_len=clip_len, num_clips=10),
    dict(type='PoseDecode'),
    dict(type='FormatGCNInput', num_person=2),
    dict(type='Collect', keys=['keypoint', 'label'], meta_keys=[]),
    dict(type='ToTensor', keys=['keypoint'])
]
data = dict(
    videos_per_gpu=8,
    workers_per_gpu=1,
    test_dataloader=dict(videos_per_gpu=8),
    train=dict(type=dataset_type, ann_file=ann_file, pipeline=train_pipeline, split='train'),
    val=dict(type=dataset_type, ann_file=ann_file, pipeline=val_pipeline, split='val'),
    test=dict(type=dataset_type, ann_file=ann_file, pipeline=test_pipeline, split='val'))

optimizer = dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=0.0005, nesterov=True)
optimizer_config = dict(grad_clip=None)
lr_config = dict(policy='CosineAnnealing', min_lr=0, by_epoch=False)
total_epochs = 30
checkpoint_config = dict(interval=1, max_keep_ckpts=3)
evaluation = dict(interval=1, metrics=['top_k_accuracy', 'mean_class_accuracy'])
log_config = dict(interval=10, hooks=[dict(type='TextLoggerHook')])
