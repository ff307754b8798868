from .accuracy import SkeletonAccuracy
from .functional import (
    confusion_class_accuracy,
    confusion_matrix,
    confusion_mean_class_accuracy,
    confusion_top1_accuracy,
    mean_class_accuracy,
    top_k_accuracy,
)

__all__ = ['SkeletonAccuracy', 'top_k_accuracy', 'mean_class_accuracy', 'confusion_matrix',
           'confusion_class_accuracy', 'confusion_mean_class_accuracy', 'confusion_top1_accuracy']
