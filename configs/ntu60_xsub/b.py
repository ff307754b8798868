# NTU RGB+D 60, cross-subject, bone stream — the official SkeletonAgent hyper-parameters.
# Data: PYSKL's ntu60_3danno.pkl under data/nturgbd/ (override: --cfg-options data.train.ann_file=...).
modality = 'b'
graph = 'nturgb+d'
work_dir = f'./work_dirs/ntu60_xsub/{modality}'

model = dict(
    type='RecognizerGCN',
    backbone=dict(
        type='GCN_Module_LLM',
        llm_model='gpt4o', llm_modality=modality, num_classes=60,
        tcn_ms_cfg=[(3, 1), (3, 2), (3, 3), (3, 4), ('max', 3), '1x1'],
        graph_cfg=dict(layout=graph, mode='random', num_filter=8, init_off=.04, init_std=.02)),
    cls_head=dict(
        type='SimpleHead', joint_cfg=graph, num_classes=60, in_channels=384, work_dir=work_dir,
        interval_epoch=5, weight_1=0.2, weight_2=0.2),
    # The paper's text encoder, trained with the model as the official code does.
    # Frozen and cached (faster, our default elsewhere): trainable=False.
    text_encoder=dict(type='CLIP', pretrained='openai/clip-vit-base-patch32', trainable=True))

# Class descriptions and joint masks. `llm=dict(type='Offline')` needs no network; the live
# agent loop with an OpenAI-compatible server is configured here too (see README).
agent = dict(label_map='ntu60', llm=dict(type='Offline'))

dataset_type = 'PoseDataset'
ann_file = 'data/nturgbd/ntu60_3danno.pkl'
train_pipeline = [
    dict(type='PreNormalize3D', align_spine=False),
    dict(type='RandomRot', theta=0.2),
    dict(type='Spatial_Flip', dataset='nturgb+d', p=0.5),
    dict(type='GenSkeFeat', feats=[modality]),
    dict(type='UniformSampleDecode', clip_len=100),
    dict(type='FormatGCNInput'),
    dict(type='Collect', keys=['keypoint', 'label'], meta_keys=[]),
    dict(type='ToTensor', keys=['keypoint'])
]
val_pipeline = [
    dict(type='PreNormalize3D', align_spine=False),
    dict(type='GenSkeFeat', feats=[modality]),
    dict(type='UniformSampleDecode', clip_len=100, num_clips=1),
    dict(type='FormatGCNInput'),
    dict(type='Collect', keys=['keypoint', 'label'], meta_keys=[]),
    dict(type='ToTensor', keys=['keypoint'])
]
test_pipeline = [
    dict(type='PreNormalize3D', align_spine=False),
    dict(type='GenSkeFeat', feats=[modality]),
    dict(type='UniformSampleDecode', clip_len=100, num_clips=10),
    dict(type='FormatGCNInput'),
    dict(type='Collect', keys=['keypoint', 'label'], meta_keys=[]),
    dict(type='ToTensor', keys=['keypoint'])
]
data = dict(
    videos_per_gpu=16,
    workers_per_gpu=4,
    test_dataloader=dict(videos_per_gpu=1),
    train=dict(type=dataset_type, ann_file=ann_file, pipeline=train_pipeline, split='xsub_train'),
    val=dict(type=dataset_type, ann_file=ann_file, pipeline=val_pipeline, split='xsub_val'),
    test=dict(type=dataset_type, ann_file=ann_file, pipeline=test_pipeline, split='xsub_val'))

# 4 GPUs × 16 at lr 0.1 in the paper -> 0.025 per 16 samples
optimizer = dict(type='SGD', lr=0.025, momentum=0.9, weight_decay=0.0005, nesterov=True)
optimizer_config = dict(grad_clip=None)
lr_config = dict(policy='CosineAnnealing', min_lr=0, by_epoch=False)
total_epochs = 150
checkpoint_config = dict(interval=1)
evaluation = dict(interval=1, metrics=['top_k_accuracy'])
log_config = dict(interval=100, hooks=[dict(type='TextLoggerHook')])
