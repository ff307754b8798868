"""Every registry of SkeletonAgent, in one place.

Each is a child of mmengine's registry of the same kind, so mmengine's Runner builds our
objects from config dicts (``dict(type='RecognizerGCN', ...)``) and falls back to mmengine's
own (optimizers, hooks, schedulers) where a name is not ours.
"""
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

#: Recognizers, backbones, heads, losses (one registry, as mmengine does).
MODELS = Registry('model', parent=MMENGINE_MODELS, locations=['skeletonagent.models'])
#: Datasets (PoseDataset).
DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, locations=['skeletonagent.datasets'])
#: Pipeline transforms (mmcv ``BaseTransform`` subclasses).
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS,
                      locations=['skeletonagent.datasets.pipelines'])
#: Evaluation metrics.
METRICS = Registry('metric', parent=MMENGINE_METRICS, locations=['skeletonagent.evaluation'])
#: Runner hooks (agent hook, text-encoder hook, ...).
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, locations=['skeletonagent.engine', 'skeletonagent.agent'])
#: Text encoders (MiniLM, CLIP).
TEXT_ENCODERS = Registry('text encoder', locations=['skeletonagent.models.text'])
#: LLM backends (Offline, OpenAIChat, TranscriptReplay).
LLM_BACKENDS = Registry('llm backend', locations=['skeletonagent.agent'])

# Aliases that PYSKL / official configs and code speak of.
BACKBONES = HEADS = LOSSES = RECOGNIZERS = MODELS
PIPELINES = TRANSFORMS
