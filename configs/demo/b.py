# Bone stream of the embedded demo (see j.py); fuse with j through the two best_pred.pkl files.
# The embedded demo: a generated dataset of 12 real action names on the NTU layout, a narrower,
# shallower SkeletonAgent backbone, shorter clips, the offline MiniLM text encoder (frozen,
# cached) and the offline agent backend. Trains, validates and tests on a laptop CPU in
# minutes with no network and no API key. The data is generated on first use.
modality = 'b'
graph = 'nturgb+d'
work_dir = f'./work_dirs/demo/{modality}'
num_classes = 12
clip_len = 32

model = dict(
    type='RecognizerGCN',
    backbone=dict(
        type='GCN_Module_LLM',
        llm_modality=modality, num_classes=num_classes,
        base_channels=16, num_stages=6, inflate_stages=[3, 5], down_stages=[3, 5],
        text_dim=384, text_key='MiniLM',
        tcn_ms_cfg=[(3, 1), (3, 2), (3, 3), (3, 4), ('max', 3), '1x1'],
        graph_cfg=dict(layout=graph, mode='spatial')),
    cls_head=dict(
        type='SimpleHead', joint_cfg=graph, num_classes=num_classes, in_channels=64,
        work_dir=work_dir, interval_epoch=5, weight_1=0.2, weight_2=0.2),
    text_encoder=dict(type='MiniLM', trainable=False))

# Class descriptions and joint masks from the offline backend (a heuristic stand-in for an LLM).
agent = dict(label_map='demo', llm=dict(type='Offline'))

dataset_type = 'DemoPoseDataset'
ann_file = 'data/demo/demo_3danno.pkl'
train_pipeline = [
    dict(type='PreNormalize3D', align_spine=False),
    dict(type='RandomRot', theta=0.2),
    dict(type='GenSkeFeat', feats=[modality]),
    dict(type='UniformSampleDecode', clip_len=clip_len),
    dict(type='FormatGCNInput'),
    dict(type='Collect', keys=['keypoint', 'label'], meta_keys=[]),
    dict(type='ToTensor', keys=['keypoint'])
]
val_pipeline = [
    dict(type='PreNormalize3D', align_spine=False),
    dict(type='GenSkeFeat', feats=[modality]),
    dict(type='UniformSampleDecode', clip_len=clip_len, num_clips=1),
    dict(type='FormatGCNInput'),
    dict(type='Collect', keys=['keypoint', 'label'], meta_keys=[]),
    dict(type='ToTensor', keys=['keypoint'])
]
test_pipeline = [
    dict(type='PreNormalize3D', align_spine=False),
    dict(type='GenSkeFeat', feats=[modality]),
    dict(type='UniformSampleDecode', clip_len=clip_len, num_clips=5),
    dict(type='FormatGCNInput'),
    dict(type='Collect', keys=['keypoint', 'label'], meta_keys=[]),
    dict(type='ToTensor', keys=['keypoint'])
]
data = dict(
    videos_per_gpu=32,
    workers_per_gpu=1,
    test_dataloader=dict(videos_per_gpu=8),
    train=dict(type=dataset_type, ann_file=ann_file, pipeline=train_pipeline, split='train'),
    val=dict(type=dataset_type, ann_file=ann_file, pipeline=val_pipeline, split='val'),
    test=dict(type=dataset_type, ann_file=ann_file, pipeline=test_pipeline, split='test'))

optimizer = dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=0.0005, nesterov=True)
optimizer_config = dict(grad_clip=None)
lr_config = dict(policy='CosineAnnealing', min_lr=0, by_epoch=False)
total_epochs = 30
checkpoint_config = dict(interval=1, max_keep_ckpts=3)
evaluation = dict(interval=1, metrics=['top_k_accuracy', 'mean_class_accuracy'])
log_config = dict(interval=10, hooks=[dict(type='TextLoggerHook')])
