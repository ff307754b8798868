"""PoseDataset: PYSKL-format skeleton annotation pickles, checked on load.

Reading and checking the file is :mod:`.annotations`' job (the preparation checker and the
demo data read files with it too); this module selects the split, applies the dataset's
options, serializes the samples and hands them to the pipeline. The file format (PYSKL's)::

    dict(split=dict(<split name>=[frame_dir, ...], ...),
         annotations=[dict(frame_dir=str, label=int, total_frames=int,
                           keypoint=np.ndarray (M, T, V, C),          # C in (2, 3)
                           keypoint_score=np.ndarray (M, T, V),       # optional
                           img_shape=(h, w), original_shape=(h, w)),  # optional
                      ...])

A bare list of annotations (no split) is accepted too. An optional top-level ``classes``
list names the classes (the synthetic demo file has one).
"""
from __future__ import annotations

import gc
import io
import os
import os.path as osp
import pickle
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from ..registry import DATASETS
from ..utils.malloc import release_freed_heap
from .annotations import expected_joints, is_int, load_annotation_file, validate_annotation
from .errors import DataError
from .label_map import load_label_map
from .memcache import MemcachedReader
from .pipelines import Compose

__all__ = ['PoseDataset']

#: Box thresholds Kinetics pickles carry ``valid`` frame counts for.
BOX_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


class _SerializedInfos(Sequence):
    """A read-only list view of a serialized dataset's annotations: each item is unpickled
    on access (a fresh dict; nothing is kept)."""

    def __init__(self, dataset: PoseDataset) -> None:
        self._dataset = dataset

    def __len__(self) -> int:
        return len(self._dataset.data_address)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return [self[i] for i in range(len(self))[idx]]
        return self._dataset._stored_info(idx)


@DATASETS.register_module()
class PoseDataset(BaseDataset):
    """Skeleton action dataset read from a PYSKL annotation pickle.

    An mmengine :class:`~mmengine.dataset.BaseDataset`. The constructor takes PYSKL's
    ``PoseDataset`` / ``BaseDataset`` arguments. Every kept sample is checked on load (see
    :func:`validate_annotation`), including its number of joints against the layout the
    pipeline (or ``layout``) expects; a malformed file raises :class:`DataError` naming the
    file, the sample and the field.

    With ``serialize_data=True`` (the default) the checked annotations are pickled into one
    numpy byte buffer once loaded (mmengine's scheme), so DataLoader workers share the
    parent's pages instead of each touching, and so copying, tens of thousands of Python
    dicts (``bench/worker_memory.py`` measures it). ``dataset[i]`` unpickles sample ``i``
    (a fresh dict and fresh arrays), adds ``start_index``, ``modality`` and ``test_mode``
    and returns what the pipeline returns (``dict(keypoint=Tensor nc×M×T×V×C, label=int)``
    for the usual pipelines). With ``serialize_data=False`` the annotations stay a list of
    dicts and the pipeline gets a *shallow* copy (the stored arrays themselves: transforms
    build new arrays rather than write into them).

    Args:
        ann_file: the pickle; a relative path resolves against the current directory.
        pipeline: transform configs or callables, built with
            :class:`skeletonagent.datasets.pipelines.Compose`.
        split: the split to keep (``'xsub_train'``...); ``None`` keeps every annotation.
        valid_ratio: a positive value keeps a sample only if ``valid[box_thr] /
            total_frames >= valid_ratio`` (Kinetics pickles); ``None`` or ``0`` keeps every
            sample and every person box (PYSKL and the official code).
        box_thr: box-score threshold for a positive ``valid_ratio`` (0.5 ... 0.9): it also
            keeps only the boxes with ``box_score >= box_thr`` (``anno_inds``).
        class_prob: per-class resampling multipliers (list of ``num_classes`` or
            ``{class: mult}``), read by
            :class:`~skeletonagent.datasets.builder.ClassSpecificSampler`.
        memcached, mc_cfg: PYSKL's Kinetics layout: the annotations are a table of contents
            (no keypoints, which are not checked then) and each sample's keypoint pack is
            fetched from memcached at ``mc_cfg`` (default ``('localhost', 22077)``) under its
            ``frame_dir`` (see :mod:`skeletonagent.datasets.memcache`).
        data_prefix: joined in front of every ``frame_dir`` (PYSKL behaviour) when given.
        test_mode: passed to the pipeline.
        multi_class: labels may be lists of ints (then ``num_classes`` is required).
        num_classes: the number of classes; labels must be below it. Default: max label + 1
            (or the number of ``classes`` when they are known).
        start_index, modality: passed to the pipeline.
        classes: class names (a sequence, or a label-map name/path for
            :func:`~skeletonagent.datasets.label_map.load_label_map`). Default: the file's
            top-level ``classes`` list when it has one.
        lazy_init: defer loading to :meth:`full_init` (mmengine's convention).
        layout: the layout of the file's keypoints (a :mod:`skeletonagent.skeleton` name);
            default: the one the pipeline's first layout-dependent transform uses. Samples
            with another number of joints are refused at load time.
        serialize_data: keep the annotations as one serialized buffer (see above).
    """

    def __init__(self,
                 ann_file: str | os.PathLike,
                 pipeline: Sequence[dict | Callable] | None,
                 split: str | None = None,
                 valid_ratio: float | None = None,
                 box_thr: float | str | None = None,
                 class_prob: Sequence[float] | Mapping[int, float] | None = None,
                 memcached: bool = False,
                 mc_cfg: Any = None,
                 data_prefix: str | None = None,
                 test_mode: bool = False,
                 multi_class: bool = False,
                 num_classes: int | None = None,
                 start_index: int = 0,
                 modality: str = 'Pose',
                 classes: str | Sequence[str] | None = None,
                 lazy_init: bool = False,
                 layout: str | None = None,
                 serialize_data: bool = True,
                 **kwargs: Any) -> None:
        if kwargs:
            raise TypeError(f'PoseDataset got unexpected argument(s): {", ".join(sorted(kwargs))}')
        if multi_class and num_classes is None:
            raise ValueError('PoseDataset(multi_class=True) needs num_classes')
        if num_classes is not None and (not is_int(num_classes) or num_classes <= 0):
            raise ValueError(f'num_classes must be a positive int, got {num_classes!r}')
        if box_thr is not None and round(float(box_thr), 2) not in BOX_THRESHOLDS:
            raise ValueError(f'box_thr must be one of {BOX_THRESHOLDS}, got {box_thr!r}')
        if valid_ratio is not None and not 0.0 <= float(valid_ratio) <= 1.0:
            raise ValueError(f'valid_ratio must lie in [0, 1], got {valid_ratio!r}')
        # mmengine's data_prefix is a dict of path prefixes; PYSKL's (kept below) is a string.
        super().__init__(ann_file=osp.abspath(osp.expanduser(os.fspath(ann_file))),
                         data_prefix={}, serialize_data=serialize_data, pipeline=[],
                         test_mode=test_mode, lazy_init=True)
        self.split = split
        self.valid_ratio = valid_ratio
        self.box_thr = box_thr
        self.memcached = memcached
        self.mc_cfg = mc_cfg
        self._mc_reader = None
        if memcached:
            self._mc_reader = MemcachedReader(mc_cfg)  # connects on first use, per process
            self.mc_cfg = self._mc_reader.mc_cfg
        self.data_prefix = data_prefix
        self.multi_class = multi_class
        self.start_index = start_index
        self.modality = modality
        self._given_num_classes = num_classes
        self._given_classes = classes
        self._class_prob_arg = class_prob
        self.pipeline = Compose(list(pipeline or []))
        self.layout = layout
        self.joints = expected_joints(layout, self.pipeline)

        self.identifier = 'frame_dir'        # or 'filename', as the file's samples have it
        self.num_classes: int | None = num_classes
        self.classes: tuple[str, ...] | None = None
        self.class_prob: dict[int, float] | None = None
        self._labels: np.ndarray = np.zeros(0, dtype=np.int64)
        self._frame_dirs: list = []
        if not lazy_init:
            self.full_init()

    # ------------------------------------------------------------------ loading
    def full_init(self) -> None:
        """Load, check and (``serialize_data``) serialize the annotations, once."""
        if self._fully_initialized:
            return
        self.data_list = self.load_data_list()
        self._frame_dirs = [ann[self.identifier] for ann in self.data_list]
        self._labels = self._collect_labels(self.data_list)
        if self.num_classes is None:          # (multi_class needs num_classes)
            self.num_classes = int(self._labels.max()) + 1 if len(self._labels) else 0
        self.class_prob = self._resolve_class_prob(self._class_prob_arg)
        if self.serialize_data:
            self.data_bytes, self.data_address = self._serialize_data()
        self._fully_initialized = True
        print_log(f'PoseDataset: {len(self)} samples from {self.ann_file}'
                  + (f' (split {self.split!r})' if self.split else ''), logger='current')

    def load_data_list(self) -> list[dict]:
        """The file's annotations of ``split``, checked, valid-ratio filtered, prefixed."""
        annotations, file_classes = self._select_split(load_annotation_file(self.ann_file))
        classes = self._resolve_classes(file_classes)
        num_classes = self._given_num_classes
        if num_classes is None and classes is not None:
            num_classes = len(classes)
        if classes is not None and len(classes) != num_classes:
            raise DataError(f'{len(classes)} class names given but num_classes={num_classes}',
                            file=self.ann_file, field='classes')

        identifier = self._identifier(annotations)
        for index, ann in enumerate(annotations):
            validate_annotation(ann, file=self.ann_file, index=index, num_classes=num_classes,
                                multi_class=self.multi_class, identifier=identifier,
                                need_keypoint=not self.memcached, joints=self.joints)

        annotations = self._apply_valid_ratio(annotations, identifier)
        if self.memcached:  # PYSKL: the keypoints live in memcached under the frame_dir
            for ann in annotations:
                ann['key'] = ann[identifier]
        if self.data_prefix:
            for ann in annotations:
                ann[identifier] = osp.join(self.data_prefix, ann[identifier])
        self.identifier = identifier
        self.num_classes = num_classes
        self.classes = classes
        return annotations

    def _serialize_data(self) -> tuple[np.ndarray, np.ndarray]:
        """mmengine's layout (one uint8 buffer, cumulative end offsets), written into one
        growing buffer while each annotation is released once pickled, then the freed heap
        handed back to the OS (:func:`~skeletonagent.utils.malloc.release_freed_heap`)."""
        buffer = io.BytesIO()
        address = np.empty(len(self.data_list), dtype=np.int64)
        for i, ann in enumerate(self.data_list):
            pickle.dump(ann, buffer, protocol=pickle.HIGHEST_PROTOCOL)
            address[i] = buffer.tell()
            self.data_list[i] = None
        self.data_list = []
        gc.collect()
        release_freed_heap()
        return np.frombuffer(buffer.getbuffer(), dtype=np.uint8), address

    def _collect_labels(self, annotations: list[dict]) -> np.ndarray:
        if self.multi_class:
            out = np.empty(len(annotations), dtype=object)
            out[:] = [list(ann['label']) if isinstance(ann['label'], (list, tuple))
                      else [ann['label']] for ann in annotations]
            return out
        return np.fromiter((ann['label'] for ann in annotations), dtype=np.int64,
                           count=len(annotations))

    def _select_split(self, data: Any) -> tuple[list, Any]:
        file = self.ann_file
        if isinstance(data, (list, tuple)):
            if self.split is not None:
                raise DataError(f'split {self.split!r} requested but the file holds a bare list '
                                'of annotations with no splits', file=file, field='split')
            if not data:
                raise DataError('the file holds no annotations', file=file,
                                field='annotations')
            return list(data), None
        if not isinstance(data, dict):
            raise DataError(f'top level must be a dict (split, annotations) or a list of '
                            f'annotations, got {type(data).__name__}', file=file)
        if 'annotations' not in data:
            raise DataError('top-level dict has no annotations '
                            f'(keys: {", ".join(map(str, data))})', file=file, field='annotations')
        annotations = data['annotations']
        if not isinstance(annotations, (list, tuple)):
            raise DataError(f'must be a list, got {type(annotations).__name__}',
                            file=file, field='annotations')
        file_classes = data.get('classes')
        if self.split is None:
            if not annotations:
                raise DataError('the file holds no annotations', file=file,
                                field='annotations')
            return list(annotations), file_classes

        if 'split' not in data:
            raise DataError(f'split {self.split!r} requested but the file has no split dict '
                            f'(keys: {", ".join(map(str, data))})', file=file, field='split')
        splits = data['split']
        if not isinstance(splits, dict):
            raise DataError(f'must be a dict of name -> frame_dirs, got {type(splits).__name__}',
                            file=file, field='split')
        if self.split not in splits:
            raise DataError(f'unknown split {self.split!r}; available: '
                            f'{", ".join(map(repr, splits)) or "none"}', file=file, field='split')
        wanted = list(splits[self.split])
        if not wanted:
            raise DataError(f'split {self.split!r} is empty', file=file, field='split')

        identifier = self._identifier(annotations)
        wanted_set = set(wanted)
        kept = [ann for ann in annotations
                if isinstance(ann, Mapping) and ann.get(identifier) in wanted_set]
        if len(kept) < len(wanted_set):
            present = {ann[identifier] for ann in kept}
            missing = [name for name in wanted if name not in present]
            raise DataError(f'split {self.split!r} names {len(missing)} sample(s) absent from '
                            f'the annotations, e.g. {missing[:5]}', file=file,
                            frame_dir=missing[0], field='split')
        return kept, file_classes

    @staticmethod
    def _identifier(annotations: Sequence) -> str:
        first = annotations[0] if annotations else None
        if isinstance(first, Mapping) and 'frame_dir' not in first and 'filename' in first:
            return 'filename'
        return 'frame_dir'

    def _resolve_classes(self, file_classes: Any) -> tuple[str, ...] | None:
        classes = self._given_classes if self._given_classes is not None else file_classes
        if classes is None:
            return None
        if isinstance(classes, (str, os.PathLike)):
            return tuple(load_label_map(classes, num_classes=self._given_num_classes))
        if not all(isinstance(name, str) for name in classes):
            raise DataError('class names must be strings', file=self.ann_file, field='classes')
        return tuple(classes)

    def _apply_valid_ratio(self, annotations: list[dict], identifier: str) -> list[dict]:
        """PYSKL's (and the official code's) valid thresholding of Kinetics samples.

        Only a positive ``valid_ratio`` filters: it keeps the samples with
        ``valid[box_thr] / total_frames >= valid_ratio`` and, in them, the person boxes with
        ``box_score >= box_thr`` (``anno_inds``). ``valid_ratio`` None or 0 (every official
        Kinetics config) keeps every sample and every box, whatever ``box_thr`` says. The
        ``valid`` and ``box_score`` fields are dropped either way, as PYSKL does.
        """
        if not self.valid_ratio or float(self.valid_ratio) <= 0:
            for ann in annotations:
                ann.pop('valid', None)
                ann.pop('box_score', None)
            return annotations
        thr = 0.5 if self.box_thr is None else round(float(self.box_thr), 2)
        kept = []
        for ann in annotations:
            valid = ann.get('valid')
            if not isinstance(valid, Mapping):
                raise DataError('valid_ratio needs a dict of valid frame counts per box '
                                'threshold', file=self.ann_file,
                                frame_dir=ann[identifier], field='valid')
            count = valid.get(thr, valid.get(str(thr)))
            if count is None:
                raise DataError(f'no valid frame count for box_thr={thr} '
                                f'(has {", ".join(map(str, valid))})', file=self.ann_file,
                                frame_dir=ann[identifier], field='valid')
            if ann['total_frames'] and count / ann['total_frames'] >= self.valid_ratio:
                if 'box_score' not in ann:
                    raise DataError(f'valid_ratio={self.valid_ratio} needs the person boxes\' '
                                    f'scores', file=self.ann_file, frame_dir=ann[identifier],
                                    field='box_score')
                ann['anno_inds'] = np.asarray(ann.pop('box_score')) >= thr
                ann.pop('valid')
                kept.append(ann)
        print_log(f'PoseDataset: {len(kept)} of {len(annotations)} samples kept by '
                  f'valid_ratio={self.valid_ratio} at box_thr={thr}', logger='current')
        return kept

    def _resolve_class_prob(self, class_prob: Any) -> dict[int, float] | None:
        if class_prob is None:
            return None
        if isinstance(class_prob, Mapping):
            probs = {int(k): float(v) for k, v in class_prob.items()}
        else:
            if len(class_prob) != self.num_classes:
                raise ValueError(f'class_prob has {len(class_prob)} entries but there are '
                                 f'{self.num_classes} classes')
            probs = {i: float(v) for i, v in enumerate(class_prob)}
        if any(v < 0 for v in probs.values()):
            raise ValueError(f'class_prob multipliers must be >= 0, got {probs}')
        return probs

    # ------------------------------------------------------------------ access
    @property
    def labels(self) -> np.ndarray:
        """Every sample's label, int64 (N,); for multi-class data an object array of lists."""
        self.full_init()
        return self._labels.copy()

    @property
    def frame_dirs(self) -> list[str]:
        """Every sample's identifier (``frame_dir``), in dataset order."""
        self.full_init()
        return list(self._frame_dirs)

    @property
    def video_infos(self) -> Sequence[dict]:
        """The stored annotations (PYSKL's name): the list itself without serialization,
        else a read-only view that unpickles each item on access."""
        if not self._fully_initialized:
            return []
        return _SerializedInfos(self) if self.serialize_data else self.data_list

    @property
    def metainfo(self) -> dict:
        """mmengine's dataset meta: ``classes`` (names or None) and ``num_classes``."""
        self.full_init()
        return dict(classes=self.classes, num_classes=self.num_classes)

    def _stored_info(self, idx: int) -> dict:
        """Annotation ``idx`` as stored: unpickled afresh, or the stored dict itself."""
        idx = range(len(self))[idx]          # negative indices; IndexError past the end
        if not self.serialize_data:
            return self.data_list[idx]
        start = int(self.data_address[idx - 1]) if idx > 0 else 0
        return pickle.loads(memoryview(self.data_bytes[start:int(self.data_address[idx])]))

    def get_data_info(self, idx: int) -> dict:
        """The annotation ``dataset[idx]`` starts from, plus the run flags (a copy: new
        arrays when serialized, the stored arrays otherwise)."""
        self.full_init()
        results = dict(self._stored_info(idx))
        if self._mc_reader is not None and 'key' in results:
            results.update(self._mc_reader.fetch_pack(results.pop('key'),
                                                      sample=results.get(self.identifier)))
        results['start_index'] = self.start_index
        results['modality'] = self.modality
        results['test_mode'] = self.test_mode
        if self.multi_class and isinstance(results['label'], (list, tuple)):
            onehot = torch.zeros(self.num_classes)
            onehot[list(results['label'])] = 1.0
            results['label'] = onehot
        return results

    def get_subset(self, indices: Any) -> PoseDataset:
        raise NotImplementedError('PoseDataset keeps per-sample labels beside the data; '
                                  'select samples with split= instead of get_subset')

    get_subset_ = get_subset

    def __len__(self) -> int:
        self.full_init()
        return len(self.data_address) if self.serialize_data else len(self.data_list)

    def __getitem__(self, idx: int) -> Any:
        """The pipeline's output for sample ``idx`` (errors name transform and sample)."""
        return self.pipeline(self.get_data_info(idx))

    def __repr__(self) -> str:
        state = (f'{len(self)} samples, {self.num_classes} classes'
                 if self._fully_initialized else 'not loaded yet')
        return (f'{type(self).__name__}(ann_file={self.ann_file!r}, split={self.split!r}, '
                f'{state})')
