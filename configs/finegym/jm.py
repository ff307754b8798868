# FineGYM (Gym99, HRNet 2D poses), joint motion stream: the official SkeletonAgent hyper-parameters.
# Written by configs/_generate.py from its table: edit the table there and rerun it.
# Data: PYSKL's gym_hrnet.pkl at data/gym/gym_hrnet.pkl
# (another path: --cfg-options data.train.ann_file=P data.val.ann_file=P data.test.ann_file=P).
modality = 'jm'
graph = 'coco_new'
work_dir = f'./work_dirs/finegym/{modality}'

model = dict(
    type='RecognizerGCN',
    backbone=dict(
        type='GCN_Module_LLM',
        llm_model='gpt4o', llm_modality=modality, num_classes=99,
        tcn_ms_cfg=[(3, 1), (3, 2), (3, 3), (3, 4), ('max', 3), '1x1'],
        graph_cfg=dict(layout=graph, mode='random', num_filter=8, init_off=.04, init_std=.02)),
    cls_head=dict(
        type='SimpleHead', joint_cfg=graph, num_classes=99, in_channels=384, work_dir=work_dir,
        interval_epoch=5, weight_1=0.1, weight_2=0.1),
    # The paper's text encoder (CLIP ViT-B/32), fine-tuned with the model as the official
    # code does. Frozen and cached (faster): trainable=False, or from the command line
    # --cfg-options model.text_encoder.trainable=False.
    text_encoder=dict(type='CLIP', trainable=True))

# The agent, as the official code runs it. Training starts from the official GPT-4o
# dialogues and critical-joint masks (no LLM call at start), imported once from a clone of
# github.com/firework8/SkeletonAgent with
#   python tools/agent/import_official.py --repo PATH_TO_THE_CLONE   (-> data/agent/finegym/)
# Every 5 epochs (interval_epoch) a follow-up round asks gpt-4o, with the official
# prompts, how each class differs from those it is confused with (key from $OPENAI_API_KEY).
# Switches (--cfg-options), each a deliberate difference from the paper run:
#   new dialogues and masks instead of the official ones: agent.transcripts=None agent.masks=None
#   our prompt wording: agent.prompts=None
#   our agent loop (rounds in the background, all ranks counted, see README): agent.official=False
# Another LLM for the follow-up rounds (and for new dialogues):
#   DeepSeek: agent.llm.model=deepseek-chat agent.llm.base_url=https://api.deepseek.com agent.llm.api_key_env=DEEPSEEK_API_KEY
#   local OpenAI-compatible server: agent.llm.base_url=http://127.0.0.1:8000/v1 agent.llm.api_key_env=None agent.llm.model=<served-model-name>
#   offline heuristic stand-in (no LLM, no network): agent.llm.type=Offline
agent = dict(label_map='finegym', official_dir='data/agent/finegym',
             transcripts='official', masks='official', prompts='official', official=True,
             # the official requests: the API's own temperature and length
             llm=dict(type='OpenAIChat', model='gpt-4o', api_key_env='OPENAI_API_KEY',
                      temperature=None, max_tokens=None))

dataset_type = 'PoseDataset'
ann_file = 'data/gym/gym_hrnet.pkl'
train_pipeline = [
    dict(type='UniformSampleFrames', clip_len=100),
    dict(type='PoseDecode'),
    dict(type='Flip', flip_ratio=0.5, dataset='coco'),
    dict(type='Kinetics_Transform'),
    dict(type='GenSkeFeat', dataset=graph, feats=[modality]),
    dict(type='FormatGCNInput', num_person=2),
    dict(type='Collect', keys=['keypoint', 'label'], meta_keys=[]),
    dict(type='ToTensor', keys=['keypoint'])
]
val_pipeline = [
    dict(type='UniformSampleFrames', clip_len=100, num_clips=1),
    dict(type='PoseDecode'),
    dict(type='Kinetics_Transform'),
    dict(type='GenSkeFeat', dataset=graph, feats=[modality]),
    dict(type='FormatGCNInput', num_person=2),
    dict(type='Collect', keys=['keypoint', 'label'], meta_keys=[]),
    dict(type='ToTensor', keys=['keypoint'])
]
test_pipeline = [
    dict(type='UniformSampleFrames', clip_len=100, num_clips=10),
    dict(type='PoseDecode'),
    dict(type='Kinetics_Transform'),
    dict(type='GenSkeFeat', dataset=graph, feats=[modality]),
    dict(type='FormatGCNInput', num_person=2),
    dict(type='Collect', keys=['keypoint', 'label'], meta_keys=[]),
    dict(type='ToTensor', keys=['keypoint'])
]
data = dict(
    videos_per_gpu=16,
    workers_per_gpu=4,
    test_dataloader=dict(videos_per_gpu=1),
    train=dict(type=dataset_type, ann_file=ann_file, pipeline=train_pipeline, split='train'),
    val=dict(type=dataset_type, ann_file=ann_file, pipeline=val_pipeline, split='val'),
    test=dict(type=dataset_type, ann_file=ann_file, pipeline=test_pipeline, split='val'))

# official: 4 GPUs x 16 at lr 0.1 -> 0.025 per GPU of 16 samples. The lr follows the total batch (videos_per_gpu x GPUs) linearly:
# 16 x 8 GPUs trains at 0.2 (auto_scale_lr; enable=False keeps lr as written).
optimizer = dict(type='SGD', lr=0.025, momentum=0.9, weight_decay=0.0005, nesterov=True)
auto_scale_lr = dict(enable=True, base_batch_size=16)
optimizer_config = dict(grad_clip=None)
lr_config = dict(policy='CosineAnnealing', min_lr=0, by_epoch=False)
total_epochs = 150
checkpoint_config = dict(interval=1)
evaluation = dict(interval=1, metrics=['top_k_accuracy', 'mean_class_accuracy'], topk=(1, 5))
log_config = dict(interval=100, hooks=[dict(type='TextLoggerHook')])
