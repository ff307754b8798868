"""Every registry of SkeletonAgent, in one place.

Each is a child of mmengine's registry of the same kind, so mmengine's Runner builds our
objects from config dicts (``dict(type='RecognizerGCN', ...)``) and falls back to mmengine's
own (optimizers, hooks, schedulers) where a name is not ours.
"""
import contextlib
import difflib
import re

import mmengine.registry as _mm
from mmengine.registry import Registry

from .errors import SkeletonAgentError

# Every registry mmengine's Runner builds from gets a child here. The runner's default scope is
# 'skeletonagent', so mmengine looks each name up in the 'skeletonagent' child of the registry
# first; a registry without one logs "Failed to search registry with scope ..." and falls
# back to mmengine's. A child searches its parent too, so mmengine's own classes (SGD,
# LoggerHook, DefaultSampler, ...) are found through it.

#: Recognizers, backbones, heads, losses (one registry, as mmengine does).
MODELS = Registry('model', parent=_mm.MODELS, locations=['skeletonagent.models'])
#: Datasets (PoseDataset).
DATASETS = Registry('dataset', parent=_mm.DATASETS,
                    locations=['skeletonagent.datasets', 'skeletonagent.datasets.demo',
                               'skeletonagent.engine.prebuilt'])
#: Pipeline transforms (mmcv ``BaseTransform`` subclasses).
TRANSFORMS = Registry('transform', parent=_mm.TRANSFORMS,
                      locations=['skeletonagent.datasets.pipelines'])
#: Evaluation metrics.
METRICS = Registry('metric', parent=_mm.METRICS, locations=['skeletonagent.evaluation'])
#: Runner hooks (agent hook, run-info hook, ...).
HOOKS = Registry('hook', parent=_mm.HOOKS,
                 locations=['skeletonagent.engine.hooks', 'skeletonagent.engine.logs',
                            'skeletonagent.engine.finetune', 'skeletonagent.engine.checkpoint',
                            'skeletonagent.engine.dist'])
#: Optimizer wrappers (the CPU bfloat16 autocast wrapper of ``--amp``).
OPTIM_WRAPPERS = Registry('optim_wrapper', parent=_mm.OPTIM_WRAPPERS,
                          locations=['skeletonagent.engine.optim'])
#: Visualizers (the one that writes TensorBoard tags by phase).
VISUALIZERS = Registry('visualizer', parent=_mm.VISUALIZERS,
                       locations=['skeletonagent.engine.logs'])
#: Data samplers and collate / worker-init functions (datasets/builder.py registers
#: ClassSpecificSampler, pose_collate and pose_worker_init_fn on mmengine's own, which these
#: search).
DATA_SAMPLERS = Registry('data sampler', parent=_mm.DATA_SAMPLERS,
                         locations=['skeletonagent.datasets'])
FUNCTIONS = Registry('function', parent=_mm.FUNCTIONS, locations=['skeletonagent.datasets'])
#: Model wrappers (SkeletonDDP).
MODEL_WRAPPERS = Registry('model_wrapper', parent=_mm.MODEL_WRAPPERS,
                          locations=['skeletonagent.engine.dist'])
#: Log processors (the one that tags records train/ and val/).
LOG_PROCESSORS = Registry('log_processor', parent=_mm.LOG_PROCESSORS,
                          locations=['skeletonagent.engine.logs'])
# The rest only hold mmengine's classes; the children exist for the scope lookup.
RUNNERS = Registry('runner', parent=_mm.RUNNERS)
RUNNER_CONSTRUCTORS = Registry('runner constructor', parent=_mm.RUNNER_CONSTRUCTORS)
LOOPS = Registry('loop', parent=_mm.LOOPS)
OPTIMIZERS = Registry('optimizer', parent=_mm.OPTIMIZERS)
OPTIM_WRAPPER_CONSTRUCTORS = Registry('optimizer wrapper constructor',
                                      parent=_mm.OPTIM_WRAPPER_CONSTRUCTORS)
PARAM_SCHEDULERS = Registry('parameter scheduler', parent=_mm.PARAM_SCHEDULERS)
EVALUATOR = Registry('evaluator', parent=_mm.EVALUATOR)
VISBACKENDS = Registry('vis_backend', parent=_mm.VISBACKENDS)
WEIGHT_INITIALIZERS = Registry('weight initializer', parent=_mm.WEIGHT_INITIALIZERS)
TASK_UTILS = Registry('task util', parent=_mm.TASK_UTILS)
INFERENCERS = Registry('inferencer', parent=_mm.INFERENCERS)
STRATEGIES = Registry('strategy', parent=_mm.STRATEGIES)
#: Text encoders (MiniLM, CLIP).
TEXT_ENCODERS = Registry('text encoder', locations=['skeletonagent.models.text'])
#: LLM backends (Offline, OpenAIChat, TranscriptReplay).
LLM_BACKENDS = Registry('llm backend', locations=['skeletonagent.agent.llm'])
#: Pose estimators (MediaPipe Pose / Hands, rtmlib): a frame in, persons on our layouts out.
#: Their modules import their backend's package only when one is built.
POSE_ESTIMATORS = Registry('pose estimator', locations=['skeletonagent.pose.mediapipe_backend',
                                                        'skeletonagent.pose.rtmlib_backend'])
#: Run plugins (:mod:`skeletonagent.plugin`): what a run adds beyond the engine (the agent).
#: The engine lists them from here; the agent's hook is registered by its plugin's module.
RUN_PLUGINS = Registry('run plugin', locations=['skeletonagent.agent.plugin'])

# Aliases that PYSKL / official configs and code speak of.
BACKBONES = HEADS = LOSSES = RECOGNIZERS = MODELS
PIPELINES = TRANSFORMS


# --------------------------------------------------------------------------- unknown types
# mmengine's build_from_cfg: "<type> is not in the <scope>::<registry name> registry. ..."
_UNKNOWN_TYPE_RE = re.compile(r"[`'\"]?([^\s`'\"]+)[`'\"]? is not in the (\S+?)::(.+?) registry")


class UnknownTypeError(SkeletonAgentError, KeyError):
    """A config names a ``type`` no registry holds; the message lists the close names."""

    def __str__(self) -> str:  # KeyError would show the repr of the message
        return str(self.args[0]) if self.args else ''


def _registered_names(kind: str) -> set:
    """Every name registered under a registry called ``kind``, ours and mmengine's."""
    roots = [v for v in vars(_mm).values() if isinstance(v, Registry) and v.name == kind]
    roots += [v for v in globals().values() if isinstance(v, Registry) and v.name == kind]
    names: set = set()
    seen: set = set()
    while roots:
        reg = roots.pop()
        if id(reg) in seen:
            continue
        seen.add(id(reg))
        names.update(reg.module_dict)
        roots.extend(reg.children.values())
    return names


def unknown_type_message(error: BaseException) -> 'str | None':
    """For mmengine's "X is not in the ... registry" KeyError: a message naming the unknown
    type and the registered names close to it (difflib); None for any other error."""
    match = _UNKNOWN_TYPE_RE.search(str(error))
    if match is None:
        return None
    name, _scope, kind = match.groups()
    return describe_unknown_type(name, kind)


def describe_unknown_type(name: str, kind: str) -> str:
    """'unknown <kind> type <name> in the config; close registered names: ...' (difflib)."""
    names = _registered_names(kind)
    close = difflib.get_close_matches(name, sorted(names), n=5, cutoff=0.6)
    close += [n for n in sorted(names) if n.lower() == name.lower() and n not in close]
    if close:
        hint = f'close registered names: {", ".join(close)}'
    else:
        shown = sorted(names)
        hint = (f'no registered name is close; registered: {", ".join(shown[:40])}'
                + (f' ... ({len(shown)} in all)' if len(shown) > 40 else ''))
    return f'unknown {kind} type {name!r} in the config; {hint}'


@contextlib.contextmanager
def explain_unknown_types():
    """Turn mmengine's unknown-type KeyError into an :class:`UnknownTypeError` naming the
    close registered names (other errors pass through unchanged)."""
    try:
        yield
    except KeyError as error:
        message = unknown_type_message(error)
        if message is None:
            raise
        raise UnknownTypeError(message) from error
