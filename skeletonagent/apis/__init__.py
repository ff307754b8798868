"""High-level entry points for scripts and notebooks: build a recognizer, recognise a sequence."""
from .inference import (
    InputSpec,
    inference_recognizer,
    init_recognizer,
    input_spec,
    load_annotation_sample,
    load_keypoint_input,
)

__all__ = ['InputSpec', 'inference_recognizer', 'init_recognizer',
           'input_spec', 'load_annotation_sample', 'load_keypoint_input']
