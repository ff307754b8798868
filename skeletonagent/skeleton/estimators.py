"""What pose estimators output, mapped onto our layouts: topology, so it lives here.

MediaPipe's BlazePose gives 33 landmarks and MediaPipe Hands 21, each in a fixed order named
by MediaPipe (``mediapipe.solutions.pose.PoseLandmark``, ``...hands.HandLandmark``). The
names below are MediaPipe's, in its order; the maps say which of our joints each landmark
becomes, by joint name, so :func:`landmark_order` turns them into index arrays for any
layout without an index written by hand.

Left and right: BlazePose's ``left_*`` landmarks are the person's own left (in an image of a
person facing the camera they lie on the image's right), the convention of our ``coco``
layout; the map keeps the sides as they are. RTMPose (rtmlib) outputs COCO-17 in our
``coco`` order already (:data:`COCO17_NAMES`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

import numpy as np

from .layouts import get_layout

__all__ = ['BLAZEPOSE_NAMES', 'HAND_NAMES', 'COCO17_NAMES', 'BLAZEPOSE_TO_COCO', 'HAND_TO_HANDMP',
           'ESTIMATOR_MAPS', 'landmark_order']

#: MediaPipe Pose's 33 landmarks, in MediaPipe's order.
BLAZEPOSE_NAMES: tuple[str, ...] = (
    'nose', 'left_eye_inner', 'left_eye', 'left_eye_outer', 'right_eye_inner', 'right_eye',
    'right_eye_outer', 'left_ear', 'right_ear', 'mouth_left', 'mouth_right', 'left_shoulder',
    'right_shoulder', 'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist', 'left_pinky',
    'right_pinky', 'left_index', 'right_index', 'left_thumb', 'right_thumb', 'left_hip',
    'right_hip', 'left_knee', 'right_knee', 'left_ankle', 'right_ankle', 'left_heel',
    'right_heel', 'left_foot_index', 'right_foot_index')

#: MediaPipe Hands' 21 landmarks, in MediaPipe's order.
HAND_NAMES: tuple[str, ...] = (
    'wrist', 'thumb_cmc', 'thumb_mcp', 'thumb_ip', 'thumb_tip', 'index_finger_mcp',
    'index_finger_pip', 'index_finger_dip', 'index_finger_tip', 'middle_finger_mcp',
    'middle_finger_pip', 'middle_finger_dip', 'middle_finger_tip', 'ring_finger_mcp',
    'ring_finger_pip', 'ring_finger_dip', 'ring_finger_tip', 'pinky_mcp', 'pinky_pip',
    'pinky_dip', 'pinky_tip')

#: COCO-17 as RTMPose and other COCO-trained estimators output it.
COCO17_NAMES: tuple[str, ...] = (
    'nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear', 'left_shoulder', 'right_shoulder',
    'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist', 'left_hip', 'right_hip',
    'left_knee', 'right_knee', 'left_ankle', 'right_ankle')


def _same_names(names: Sequence[str]) -> Mapping[str, str]:
    return MappingProxyType({name.replace('_', ' '): name for name in names})


#: Our ``coco`` joint name -> the BlazePose landmark it is read from. BlazePose's eyes are the
#: pupils ('left_eye'), not the inner or outer corners.
BLAZEPOSE_TO_COCO: Mapping[str, str] = _same_names(COCO17_NAMES)
#: Our ``handmp`` joint name -> the MediaPipe Hands landmark.
HAND_TO_HANDMP: Mapping[str, str] = _same_names(HAND_NAMES)

#: (source landmark names, our layout, our joint -> source landmark) per estimator output.
ESTIMATOR_MAPS: Mapping[str, tuple[tuple[str, ...], str, Mapping[str, str]]] = MappingProxyType({
    'blazepose': (BLAZEPOSE_NAMES, 'coco', BLAZEPOSE_TO_COCO),
    'mediapipe_hand': (HAND_NAMES, 'handmp', HAND_TO_HANDMP),
    'coco17': (COCO17_NAMES, 'coco', _same_names(COCO17_NAMES)),
})


def landmark_order(source: str) -> tuple[str, np.ndarray]:
    """``(layout name, order)`` for an estimator's output called ``source`` (a key of
    :data:`ESTIMATOR_MAPS`): ``landmarks[..., order, :]`` puts its landmarks in the layout's
    joint order.

    Raises:
        KeyError: an unknown source, or a map naming a joint or landmark that does not exist.
    """
    try:
        names, layout_name, mapping = ESTIMATOR_MAPS[source]
    except KeyError:
        raise KeyError(f'unknown estimator output {source!r}; known: '
                       f'{", ".join(sorted(ESTIMATOR_MAPS))}') from None
    layout = get_layout(layout_name)
    position = {name: i for i, name in enumerate(names)}
    order = np.full(layout.num_joints, -1, dtype=np.int64)
    for joint, landmark in mapping.items():
        if landmark not in position:
            raise KeyError(f'{source}: no landmark called {landmark!r}')
        order[layout.index(joint)] = position[landmark]
    missing = [layout.joint_names[i] for i in np.flatnonzero(order < 0)]
    if missing:
        raise KeyError(f'{source}: no landmark for {layout_name} joint(s) {", ".join(missing)}')
    return layout_name, order
