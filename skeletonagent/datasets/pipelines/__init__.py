"""Data pipeline transforms (registered in ``skeletonagent.registry.TRANSFORMS``).

Official names and arguments of PYSKL / SkeletonAgent; topology from
:mod:`skeletonagent.skeleton`; no transform writes into its input arrays.
"""
from .compose import Compose, PipelineError
from .features import FEATURES, GenSkeFeat, JointToBone, JointToKB, MergeSkeFeat, ToMotion
from .formatting import Collect, FormatGCNInput, Rename, ToTensor, to_tensor
from .loading import DecompressPose, PoseDecode
from .pose_related import Flip, Kinetics_Transform, Part_Drop, PreNormalize2D, PreNormalize3D, RandomRot, Spatial_Flip
from .sampling import UniformSample, UniformSampleDecode, UniformSampleFrames

__all__ = [
    'Compose', 'PipelineError', 'FEATURES', 'GenSkeFeat', 'JointToBone', 'JointToKB',
    'MergeSkeFeat', 'ToMotion', 'Collect', 'FormatGCNInput', 'Rename', 'ToTensor', 'to_tensor',
    'DecompressPose', 'PoseDecode', 'Flip', 'Kinetics_Transform', 'Part_Drop', 'PreNormalize2D',
    'PreNormalize3D', 'RandomRot', 'Spatial_Flip', 'UniformSample', 'UniformSampleDecode',
    'UniformSampleFrames',
]
