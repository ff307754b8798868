"""Recognise actions in a video file or a camera: poses → sliding windows → labels.

:func:`recognize_video` (a file) runs the pose estimator over every frame, tracks the
persons, classifies windows of ``window`` frames every ``stride`` frames with the
recognizer's test pipeline (:func:`~skeletonagent.apis.inference.inference_recognizer`), and
writes an MP4 with the skeletons and the current label drawn over the frames, and a timeline
(JSON and CSV: start, end, label, score) in which consecutive windows with the same label are
one segment, so a long video with several actions reads as a list. :func:`run_camera` does
the same live, shows frames per second and runs until stopped.
"""
from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SkeletonAgentError
from ..pose import PoseTracks, require
from ..pose.video import VideoReadError, read_frames, video_info, write_video
from ..utils.fileio import atomic_write_text
from ..visualization.overlay import draw_poses, draw_text_box
from .inference import inference_recognizer, input_spec

__all__ = ['WindowResult', 'Segment', 'VideoRecognition', 'NoPersonFound', 'window_starts',
           'merge_windows', 'recognize_video', 'run_camera', 'write_timeline']


class NoPersonFound(SkeletonAgentError, ValueError):
    """The estimator found nobody in the whole video: nothing is written."""


@dataclass
class WindowResult:
    start: int                # first frame (inclusive)
    end: int                  # last frame + 1
    top: list[tuple[int, str, float]]     # (class, name, score), best first

    @property
    def label(self) -> str:
        return self.top[0][1]

    @property
    def score(self) -> float:
        return self.top[0][2]


@dataclass
class Segment:
    start: float              # seconds
    end: float
    start_frame: int
    end_frame: int            # exclusive
    label: str
    score: float              # mean top-1 score of its windows
    windows: int


@dataclass
class VideoRecognition:
    source: str
    fps: float
    frames: int
    windows: list[WindowResult] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    video: Path | None = None
    timeline_json: Path | None = None
    timeline_csv: Path | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def window_starts(num_frames: int, window: int, stride: int) -> list[int]:
    """Starts of the windows over ``num_frames``: every ``stride`` frames, the last one ending
    at the last frame; one window (the whole video) when it is shorter than ``window``."""
    if window < 1 or stride < 1:
        raise ValueError(f'window ({window}) and stride ({stride}) must be at least 1')
    if num_frames <= window:
        return [0]
    starts = list(range(0, num_frames - window + 1, stride))
    if starts[-1] + window < num_frames:
        starts.append(num_frames - window)
    return starts


def merge_windows(windows: Sequence[WindowResult], fps: float) -> list[Segment]:
    """Consecutive windows with the same top-1 label → one segment. Overlapping windows
    share their frames: a segment ends where the next one's first window starts."""
    segments: list[Segment] = []
    fps = fps if fps > 0 else 25.0
    for w in windows:
        if segments and segments[-1].label == w.label:
            seg = segments[-1]
            seg.score = (seg.score * seg.windows + w.score) / (seg.windows + 1)
            seg.windows += 1
            seg.end_frame = w.end
        else:
            if segments:
                segments[-1].end_frame = max(segments[-1].start_frame + 1, min(segments[-1].end_frame, w.start))
            segments.append(Segment(0, 0, w.start, w.end, w.label, w.score, 1))
    for seg in segments:
        seg.start, seg.end = round(seg.start_frame / fps, 3), round(seg.end_frame / fps, 3)
    return segments


def write_timeline(result: VideoRecognition, json_path: Path, csv_path: Path) -> None:
    """The segments (and every window) as JSON, the segments as CSV."""
    data = dict(source=result.source, fps=result.fps, frames=result.frames,
                segments=[asdict(s) for s in result.segments],
                windows=[dict(start=w.start, end=w.end,
                              top=[dict(index=i, label=n, score=round(s, 5)) for i, n, s in w.top])
                         for w in result.windows])
    atomic_write_text(json_path, json.dumps(data, indent=1) + '\n')
    rows = [['start', 'end', 'label', 'score', 'start_frame', 'end_frame']]
    rows += [[f'{s.start:.3f}', f'{s.end:.3f}', s.label, f'{s.score:.4f}', s.start_frame, s.end_frame]
             for s in result.segments]
    buf = io.StringIO()
    csv.writer(buf, lineterminator='\n').writerows(rows)
    atomic_write_text(csv_path, buf.getvalue())


def _classify(model: Any, tracks: Any, start: int, end: int, max_persons: int, img_shape: tuple[int, int],
              top_k: int) -> WindowResult | None:
    arrays = tracks.arrays(max_persons=max_persons, start=start, stop=end)
    if arrays['keypoint'].shape[0] == 0:
        return None
    ann = dict(keypoint=arrays['keypoint'], keypoint_score=arrays['keypoint_score'], img_shape=img_shape)
    return WindowResult(start, end, inference_recognizer(model, ann, top_k=top_k))


def _label_lines(w: WindowResult | None, lines: int) -> list[str]:
    if w is None:
        return ['...']
    return [f'{name} {score:.2f}' for _, name, score in w.top[:lines]]


def recognize_video(model: Any, video: str | os.PathLike, estimator: Any, *, out: str | os.PathLike | None,
                    window: int = 48, stride: int = 16, top_k: int = 3, max_persons: int = 2,
                    min_score: float = 0.3, timeline: str | os.PathLike | None = None,
                    progress: Callable[[str, int, int], None] | None = None) -> VideoRecognition:
    """Recognise the actions of a video file (see the module docstring).

    Args:
        model: from :func:`~skeletonagent.apis.init_recognizer`.
        estimator: from :func:`~skeletonagent.pose.build_estimator` (its layout must be the
            model's).
        out: the MP4 to write (None: no video). timeline: the JSON path (default: beside
            ``out``, ``<stem>.timeline.json``; the CSV takes the same stem).
        window, stride: frames per window and between window starts.
        progress: called with (phase, done, total) as frames are processed.

    Raises:
        NoPersonFound: nobody in the video (nothing written); ValueError: a layout mismatch.
    """
    spec = input_spec(model)
    if spec.input_layout != estimator.layout:
        raise ValueError(f'the model expects layout {spec.input_layout!r} but the pose backend '
                         f'{estimator.name!r} gives {estimator.layout!r}')
    info = video_info(video)
    total = info.frame_count
    timings = dict(pose=0.0, recognition=0.0, drawing=0.0)
    estimator.reset()
    tracks = PoseTracks()
    shape = None
    t0 = time.perf_counter()
    for i, rgb in enumerate(read_frames(video)):
        shape = rgb.shape[:2]
        tracks.add(estimator(rgb), frame=i)
        if progress:
            progress('poses', i + 1, total)
    timings['pose'] = time.perf_counter() - t0
    num_frames = tracks.num_frames
    if shape is None:
        raise VideoReadError(f'{os.fspath(video)}: no frame could be decoded')
    if not tracks.tracks:
        raise NoPersonFound(f'{os.fspath(video)}: no person found in its {num_frames} frames; '
                            'nothing written')
    t0 = time.perf_counter()
    windows = []
    starts = window_starts(num_frames, window, stride)
    for k, s in enumerate(starts):
        w = _classify(model, tracks, s, min(num_frames, s + window), max_persons, shape, top_k)
        if w is not None:
            windows.append(w)
        if progress:
            progress('windows', k + 1, len(starts))
    timings['recognition'] = time.perf_counter() - t0
    result = VideoRecognition(os.fspath(video), info.fps, num_frames, windows,
                              merge_windows(windows, info.fps), seconds=timings)
    if out is not None:
        out = Path(out)
        t0 = time.perf_counter()
        result.video = write_video(out, _drawn_frames(video, tracks, windows, estimator.layout, min_score,
                                                      draw_poses, draw_text_box, read_frames),
                                   fps=info.fps or 25.0)
        timings['drawing'] = time.perf_counter() - t0
    result.timeline_json, result.timeline_csv = _timeline_paths(timeline, out, video)
    write_timeline(result, result.timeline_json, result.timeline_csv)
    return result


def _timeline_paths(timeline: Any, out: Any, video: Any) -> tuple[Path, Path]:
    """``X.json`` and ``X.csv`` for ``--timeline X.json``; else beside the MP4 (or the video):
    ``<stem>.timeline.json`` / ``.csv``."""
    if timeline:
        path = Path(timeline)
        if path.suffix.lower() in ('.json', '.csv'):
            return path.with_suffix('.json'), path.with_suffix('.csv')
        return path.with_name(path.name + '.json'), path.with_name(path.name + '.csv')
    base = Path(out) if out is not None else Path(video)
    return base.with_suffix('.timeline.json'), base.with_suffix('.timeline.csv')


def _current_window(windows: Sequence[WindowResult], frame: int) -> WindowResult | None:
    """The window a frame is shown with: the last one that started at or before it."""
    current = None
    for w in windows:
        if w.start <= frame:
            current = w
        else:
            break
    return current


def _drawn_frames(video: Any, tracks: Any, windows: Sequence[WindowResult], layout: str, min_score: float,
                  draw_poses: Callable, draw_text_box: Callable, read_frames: Callable) -> Iterable[np.ndarray]:
    for i, rgb in enumerate(read_frames(video)):
        frame = rgb.copy()
        persons = [(t.frames[i][0], t.frames[i][1]) for t in tracks.tracks if i in t.frames]
        if persons:
            draw_poses(frame, np.stack([p[0] for p in persons]), np.stack([p[1] for p in persons]), layout,
                       min_score=min_score)
        draw_text_box(frame, _label_lines(_current_window(windows, i), 3))
        yield frame


def run_camera(model: Any, camera: int, estimator: Any, *, window: int = 48, stride: int = 8,
               top_k: int = 3, max_persons: int = 2, min_score: float = 0.3,
               out: str | os.PathLike | None = None, show: bool = True, max_frames: int | None = None,
               log: Callable[[str], None] = print) -> VideoRecognition:
    """Live: frames from camera ``camera``, the label of the last ``window`` frames every
    ``stride`` frames, skeletons, label and frames per second drawn; shown in a window
    (``show``; 'q' or Esc quits) and/or written to ``out``; runs until stopped (Ctrl-C, the
    camera ends, or ``max_frames``)."""
    cv2 = require('cv2')
    estimator.reset()
    tracks = PoseTracks()
    windows: list[WindowResult] = []
    writer = None
    current = None
    fps_avg = 0.0
    last = time.perf_counter()
    frames = 0
    try:
        for i, rgb in enumerate(read_frames(camera)):
            poses = estimator(rgb)
            tracks.add(poses, frame=i)
            if (i + 1) % stride == 0:
                w = _classify(model, tracks, max(0, i + 1 - window), i + 1, max_persons, rgb.shape[:2], top_k)
                if w is not None:
                    current = w
                    windows.append(w)
                tracks.forget_before(i + 1 - window)
            frame = rgb.copy()
            if poses.num_persons:
                draw_poses(frame, poses.keypoints, poses.scores, estimator.layout, min_score=min_score)
            now = time.perf_counter()
            fps_avg = 0.9 * fps_avg + 0.1 * (1.0 / max(now - last, 1e-6)) if i else 1.0 / max(now - last, 1e-6)
            last = now
            draw_text_box(frame, [f'{fps_avg:.1f} fps', *_label_lines(current, top_k)])
            if out is not None:
                if writer is None:
                    writer = cv2.VideoWriter(os.fspath(out), cv2.VideoWriter_fourcc(*'mp4v'), 25.0,
                                             (frame.shape[1], frame.shape[0]))
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            if show:
                cv2.imshow('SkeletonAgent', cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
                if cv2.waitKey(1) & 0xFF in (ord('q'), 27):
                    break
            frames = i + 1
            if frames % 100 == 0:
                log(f'camera {camera}: {frames} frames, {fps_avg:.1f} frames/s'
                    + (f', {current.label} ({current.score:.2f})' if current else ''))
            if max_frames is not None and frames >= max_frames:
                break
    except KeyboardInterrupt:
        log(f'camera {camera}: stopped after {frames} frames')
    finally:
        if writer is not None:
            writer.release()
        if show:
            cv2.destroyAllWindows()
    return VideoRecognition(f'camera {camera}', 25.0, frames, windows, merge_windows(windows, 25.0))
