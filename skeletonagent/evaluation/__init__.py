from .accuracy import SkeletonAccuracy
from .functional import confusion_matrix, mean_class_accuracy, top_k_accuracy

__all__ = ['SkeletonAccuracy', 'top_k_accuracy', 'mean_class_accuracy', 'confusion_matrix']
