"""Draw skeleton sequences (PNG grid, GIF, MP4) and the agent's critical joints.

Everything renders through matplotlib's Agg canvas (no display, no pyplot state), so it
works on servers, in threads and in tests. Edges come from the layout
(:mod:`skeletonagent.skeleton`); persons get distinct colours; critical joints are drawn
bigger, in red, with a dark edge.

2D keypoints (image pixels, y down) are drawn as they are. 3D keypoints (camera space as
NTU RGB+D's Kinect: y up, z away from the camera) are drawn from the camera's side under a
fixed oblique orthographic projection (30° azimuth, 15° elevation), which keeps depth
visible without matplotlib's 3D axes. That arithmetic (the projection, the bounds, the 2D/3D
guess, the neutral pose) lives in :mod:`skeletonagent.skeleton.geometry`, the mask format in
:mod:`skeletonagent.skeleton.masks`; this module renders and writes the files.

Entry points: :func:`draw_skeleton_sequence` (what ``tools/vis_skeleton.py`` calls),
:func:`draw_critical_joints` (a class's joints on a canonical pose, for reports),
:func:`critical_joints_from_mask`, :func:`infer_layout`, and :func:`sample_title` for
titles (the class names come from the caller: ``datasets.config_view.class_names_for``).
"""
from __future__ import annotations

import math
import os
import shutil
import subprocess
import textwrap
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image

from ..skeleton import get_layout
from ..skeleton.geometry import (
    canonical_pose,
    infer_layout,
    is_3d,
    project_oblique,
    square_limits,
)
from ..skeleton.masks import rows_of_mask

__all__ = ['infer_layout', 'critical_joints_from_mask', 'canonical_pose', 'is_3d',
           'draw_skeleton_sequence', 'render_frames', 'draw_critical_joints',
           'find_ffmpeg', 'sample_title', 'PERSON_COLOURS',
           'CRITICAL_COLOUR']

PathLike = Union[str, os.PathLike]

#: Person colours, in order (no red: red marks critical joints).
PERSON_COLOURS = ('#1f77b4', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b',
                  '#e377c2', '#7f7f7f', '#bcbd22')
#: Colour of critical joints.
CRITICAL_COLOUR = '#e41a1c'
SUFFIXES = ('.png', '.gif', '.mp4')


# --------------------------------------------------------------------------- helpers
def _layout(layout: Any):
    return get_layout(layout)


#: The critical joints a Selector mask encodes: the mask format's own decoding
#: (:func:`skeletonagent.skeleton.masks.rows_of_mask`, beside the encoding).
critical_joints_from_mask = rows_of_mask


def _prepare(keypoint: Any, layout: Any, keypoint_score: Any, dim: int | None,
             score_thr: float) -> tuple[Any, np.ndarray, np.ndarray, bool]:
    """→ (layout, points M×T×V×2 in drawing coordinates, visible M×T×V, y_down)."""
    kp = np.asarray(keypoint, dtype=np.float64)
    if kp.ndim == 3:
        kp = kp[None]
    if kp.ndim != 4 or kp.shape[-1] not in (2, 3) or kp.shape[1] < 1:
        raise ValueError(f'keypoints must be M×T×V×C with C = 2 or 3 and T >= 1, got shape '
                         f'{kp.shape}')
    layout = _layout(layout if layout is not None else infer_layout(kp.shape[2]))
    if kp.shape[2] != layout.num_joints:
        raise ValueError(f'keypoints have {kp.shape[2]} joints (shape {kp.shape}) but layout '
                         f'{layout.name!r} has {layout.num_joints}')
    three_d = (dim == 3) if dim is not None else is_3d(kp, layout)
    if three_d and kp.shape[-1] != 3:
        raise ValueError(f'3D drawing needs C = 3, got shape {kp.shape}')
    score = None
    if keypoint_score is not None:
        score = np.asarray(keypoint_score, dtype=np.float64).reshape(kp.shape[:3])
    elif not three_d and kp.shape[-1] == 3:
        score = kp[..., 2]
    finite = np.isfinite(kp).all(-1)
    # all-zero joints are missing (padding persons, undetected joints)
    visible = finite & (np.abs(np.nan_to_num(kp)).sum(-1) > 0)
    if score is not None:
        visible &= score > score_thr
    if three_d:
        points = project_oblique(np.nan_to_num(kp[..., :3]))
    else:
        points = np.nan_to_num(kp[..., :2]).copy()
    return layout, points, visible, not three_d


def _figure(width_in: float, height_in: float, dpi: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # deferred: matplotlib is heavy
    from matplotlib.figure import Figure  # deferred: matplotlib is heavy
    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _rgb(fig) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


class _Panel:
    """The artists of one skeleton drawing on one axes, updated frame by frame."""

    def __init__(self, ax, layout, num_persons: int, critical: Sequence[int],
                 xlim, ylim, y_down: bool, joint_size: float = 14.0,
                 line_width: float = 1.6) -> None:
        from matplotlib.collections import LineCollection  # deferred: matplotlib is heavy
        self.ax = ax
        self.edges = np.asarray(layout.inward, dtype=np.int64).reshape(-1, 2)
        self.critical = np.zeros(layout.num_joints, dtype=bool)
        self.critical[list(critical)] = True
        self.lines, self.dots, self.marks = [], [], []
        for m in range(num_persons):
            colour = PERSON_COLOURS[m % len(PERSON_COLOURS)]
            lc = LineCollection([], colors=colour, linewidths=line_width, zorder=2)
            ax.add_collection(lc)
            self.lines.append(lc)
            self.dots.append(ax.scatter([], [], s=joint_size, c=colour, zorder=3,
                                        edgecolors='none'))
            self.marks.append(ax.scatter([], [], s=joint_size * 4.5, c=CRITICAL_COLOUR,
                                         zorder=4, edgecolors='black', linewidths=0.8))
        ax.set_xlim(*xlim)
        ax.set_ylim(*(ylim[::-1] if y_down else ylim))
        ax.set_aspect('equal', adjustable='box')
        ax.set_xticks([])
        ax.set_yticks([])
        self.text = ax.set_title('', fontsize=8)

    def update(self, points: np.ndarray, visible: np.ndarray, title: str = '') -> None:
        """points M×V×2, visible M×V for one frame."""
        empty = np.zeros((0, 2))
        for m in range(len(self.lines)):
            if m >= len(points):
                self.lines[m].set_segments([])
                self.dots[m].set_offsets(empty)
                self.marks[m].set_offsets(empty)
                continue
            p, vis = points[m], visible[m]
            ok = vis[self.edges[:, 0]] & vis[self.edges[:, 1]]
            self.lines[m].set_segments(list(p[self.edges[ok]]))
            self.dots[m].set_offsets(p[vis & ~self.critical] if vis.any() else empty)
            self.marks[m].set_offsets(p[vis & self.critical] if vis.any() else empty)
        self.text.set_text(title)


def _persons_present(visible: np.ndarray) -> np.ndarray:
    """Indices of persons visible in at least one frame (padding persons are dropped)."""
    present = np.flatnonzero(visible.reshape(visible.shape[0], -1).any(1))
    return present if len(present) else np.arange(min(1, visible.shape[0]))


def _caption(title: str | None, layout, critical: Sequence[int]) -> str:
    parts = [title] if title else []
    if critical:
        names = ', '.join(layout.joint_names[j] for j in critical)
        parts.append(f'critical: {names}')
    return '\n'.join(parts)


def _wrap(text: str, width: int) -> str:
    return '\n'.join(textwrap.fill(line, width) for line in text.split('\n'))


# --------------------------------------------------------------------------- titles
def sample_title(sample: dict, class_names: Sequence[str] | None = None,
                 critical_class: int | None = None) -> str:
    """``'S001C001P001R001A023: hand waving (label 22)'``: the sample's name, its class name
    (when ``class_names`` has it) and number; ``critical_class`` adds whose critical joints
    are drawn."""
    def known(index: int) -> bool:
        return class_names is not None and 0 <= index < len(class_names)

    title = str(sample.get('frame_dir', sample.get('filename', 'sample')))
    label = sample.get('label')
    label = int(np.asarray(label).reshape(-1)[0]) if label is not None else -1
    if label >= 0:
        title += (f': {class_names[label]} (label {label})' if known(label)
                  else f' (label {label})')
    if critical_class is not None:
        c = int(critical_class)
        title += ' — critical joints of ' + (f'{class_names[c]} (class {c})' if known(c)
                                              else f'class {c}')
    return title


# --------------------------------------------------------------------------- sequences
def _check_critical(critical: Iterable[int] | None, layout) -> list[int]:
    joints = sorted({int(j) for j in (critical or ())})
    bad = [j for j in joints if not 0 <= j < layout.num_joints]
    if bad:
        raise ValueError(f'critical joint {bad[0]} is outside 0..{layout.num_joints - 1} of '
                         f'layout {layout.name!r}')
    return joints


def render_frames(keypoint: Any, layout: Any = None, *, keypoint_score: Any = None,
                  critical: Iterable[int] | None = None, frames: Sequence[int] | None = None,
                  dim: int | None = None, size: tuple[float, float] = (4.0, 4.0),
                  dpi: int = 100, title: str | None = None,
                  score_thr: float = 0.0) -> Iterator[np.ndarray]:
    """Yield one H×W×3 uint8 image per frame of an M×T×V×C sequence (same size each).

    Arguments as :func:`draw_skeleton_sequence`; ``frames`` picks frame indices (all by
    default), ``size`` is the figure size in inches (pixels = size × dpi).
    """
    layout, points, visible, y_down = _prepare(keypoint, layout, keypoint_score, dim, score_thr)
    critical = _check_critical(critical, layout)
    persons = _persons_present(visible)
    points, visible = points[persons], visible[persons]
    xlim, ylim = square_limits(points, visible)
    fig = _figure(size[0], size[1], dpi)
    caption = _caption(title, layout, critical)
    if caption:
        fig.suptitle(_wrap(caption, int(size[0] * 14)), fontsize=7)
    ax = fig.add_axes((0.03, 0.03, 0.94, 0.82 if caption else 0.9))
    panel = _Panel(ax, layout, len(persons), critical, xlim, ylim, y_down)
    total = points.shape[1]
    for t in (range(total) if frames is None else frames):
        panel.update(points[:, t], visible[:, t], f'frame {t + 1}/{total}')
        yield _rgb(fig)


def _grid_png(points, visible, layout, critical, y_down, out: Path, num_panels: int,
              dpi: int, caption: str, panel_in: float = 3.0) -> None:
    total = points.shape[1]
    num = max(1, min(num_panels, total))
    frames = np.unique(np.linspace(0, total - 1, num).round().astype(int))
    cols = min(len(frames), 3)
    rows = math.ceil(len(frames) / cols)
    head = 0.5                       # title room, kept empty or not: a size that is predictable
    fig = _figure(cols * panel_in, rows * panel_in + head, dpi)
    if caption:
        fig.suptitle(_wrap(caption, int(cols * panel_in * 14)), fontsize=8)
    xlim, ylim = square_limits(points, visible)
    height = rows * panel_in + head
    for k, t in enumerate(frames):
        r, c = divmod(k, cols)
        rect = (c / cols + 0.01, 1 - (head + (r + 1) * panel_in) / height + 0.01,
                1 / cols - 0.02, panel_in / height - 0.04)
        ax = fig.add_axes(rect)
        panel = _Panel(ax, layout, len(points), critical, xlim, ylim, y_down)
        panel.update(points[:, t], visible[:, t], f'frame {t + 1}/{total}')
    fig.savefig(out, dpi=dpi, format='png')


def find_ffmpeg() -> str | None:
    """An ffmpeg executable: on PATH, matplotlib's ``animation.ffmpeg_path``, or the one the
    ``imageio-ffmpeg`` package ships; None when there is none."""
    found = shutil.which('ffmpeg')
    if found:
        return found
    try:
        import matplotlib  # deferred: matplotlib is heavy; only its ffmpeg setting is read
        configured = matplotlib.rcParams.get('animation.ffmpeg_path')
        if configured and configured != 'ffmpeg' and shutil.which(configured):
            return shutil.which(configured)
    except ImportError:
        pass
    try:
        import imageio_ffmpeg  # deferred: optional, not a dependency of the package
        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return None


def _write_mp4(images: Iterator[np.ndarray], out: Path, fps: float) -> None:
    ffmpeg = find_ffmpeg()
    if ffmpeg is None:
        raise RuntimeError(f'writing {out.name} needs ffmpeg, which was not found (install it: '
                           'apt-get install ffmpeg, or pip install imageio-ffmpeg); or write a '
                           '.gif instead (--out out.gif), which needs only pillow')
    first = next(images)
    h, w = first.shape[:2]
    cmd = [ffmpeg, '-y', '-loglevel', 'error', '-f', 'rawvideo', '-pix_fmt', 'rgb24',
           '-s', f'{w}x{h}', '-r', f'{fps:g}', '-i', '-', '-an',
           '-vf', 'pad=ceil(iw/2)*2:ceil(ih/2)*2', '-c:v', 'libx264', '-pix_fmt', 'yuv420p',
           str(out)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for image in _chain(first, images):
            proc.stdin.write(np.ascontiguousarray(image).tobytes())
        proc.stdin.close()
    except BrokenPipeError:
        pass
    err = proc.stderr.read().decode(errors='replace')
    if proc.wait() != 0:
        raise RuntimeError(f'ffmpeg failed writing {out}: {err.strip()[-2000:]}')


def _chain(first, rest):
    yield first
    yield from rest


def draw_skeleton_sequence(keypoint: Any, out: PathLike, layout: Any = None, *,
                           keypoint_score: Any = None,
                           critical: Iterable[int] | None = None, fps: float = 15,
                           num_panels: int = 6, dim: int | None = None,
                           title: str | None = None, dpi: int = 100,
                           size: tuple[float, float] = (4.0, 4.0), stride: int = 1,
                           score_thr: float = 0.0) -> Path:
    """Draw an M×T×V×C skeleton sequence to ``out`` (``.png``, ``.gif`` or ``.mp4``).

    Args:
        keypoint: M×T×V×C (or T×V×C) coordinates: 2D pixels (C = 2, or 3 with a score) or
            3D (C = 3); all-zero joints and persons count as missing.
        out: ``.png`` — a grid of ``num_panels`` evenly spaced frames (up to 3 per row, 3
            inches each, half an inch on top for the title: ``cols·3·dpi`` ×
            ``(rows·3 + 0.5)·dpi`` pixels, 900×650 for 6 panels at 100 dpi);
            ``.gif`` — an animation (pillow); ``.mp4`` — a video (needs ffmpeg).
        layout: a layout name or object; inferred from V when None (see :func:`infer_layout`).
        keypoint_score: M×T×V scores for 2D keypoints; joints at or below ``score_thr`` are
            hidden.
        critical: joint indices to highlight (e.g. from :func:`critical_joints_from_mask`).
        fps: frames per second of animations. ``stride``: draw every stride-th frame.
        dim: 2 or 3 to override the 2D/3D guess of :func:`is_3d`.
        title: a caption (the critical joints' names are added below it).
        size, dpi: animation frame size in inches and resolution.

    Returns:
        ``out`` as a Path.

    Raises:
        ValueError: bad shapes, an unknown suffix, joints outside the layout.
        RuntimeError: ``.mp4`` without ffmpeg (the message suggests ``.gif``).
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f'unknown output kind {out.suffix!r} for {out}: use '
                         f'{", ".join(SUFFIXES)}')
    if suffix == '.mp4' and find_ffmpeg() is None:
        _write_mp4(iter(()), out, fps)            # raises the explanatory error
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == '.png':
        lay, points, visible, y_down = _prepare(keypoint, layout, keypoint_score, dim,
                                                score_thr)
        joints = _check_critical(critical, lay)
        persons = _persons_present(visible)
        _grid_png(points[persons], visible[persons], lay, joints, y_down, out, num_panels, dpi,
                  _caption(title, lay, joints))
        return out
    total = np.asarray(keypoint).shape[-3]
    frames = range(0, total, max(1, int(stride)))
    images = render_frames(keypoint, layout, keypoint_score=keypoint_score, critical=critical,
                           frames=frames, dim=dim, size=size, dpi=dpi, title=title,
                           score_thr=score_thr)
    if suffix == '.gif':
        pictures = [Image.fromarray(image) for image in images]
        pictures[0].save(out, save_all=True, append_images=pictures[1:], loop=0,
                         duration=max(20, int(round(1000 * max(1, stride) / fps))),
                         optimize=False)
    else:
        _write_mp4(images, out, fps / max(1, int(stride)))
    return out


def draw_critical_joints(layout: Any, joints: Iterable[int], out_png: PathLike, *,
                         title: str | None = None, label_joints: bool = True,
                         size: tuple[float, float] = (3.0, 4.0), dpi: int = 100) -> Path:
    """Draw ``layout``'s skeleton in a neutral pose with ``joints`` highlighted, to a PNG.

    Meant for reports: one small picture per class of the joints the Selector chose.

    Args:
        layout: a layout name ('nturgb+d', 'coco', ...) or a Layout.
        joints: 0-based critical joints (e.g. ``AgentState.critical_joints[c]`` or
            :func:`critical_joints_from_mask` of a class's mask); may be empty.
        out_png: the PNG to write (parent folders are created).
        title: a caption above the drawing (e.g. the class name).
        label_joints: write the critical joints' names next to them.
        size, dpi: figure size in inches and resolution; the PNG is exactly
            ``size[0]·dpi`` × ``size[1]·dpi`` pixels (300×400 by default).

    Returns:
        the PNG path.

    Raises:
        ValueError: a joint outside the layout.
    """
    layout = _layout(layout)
    joints = _check_critical(joints, layout)
    pose = canonical_pose(layout)
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig = _figure(size[0], size[1], dpi)
    top = 0.88 if title else 0.97
    if title:
        fig.suptitle(_wrap(title, int(size[0] * 12)), fontsize=9)
    ax = fig.add_axes((0.02, 0.02, 0.96, top - 0.02))
    # room on both sides for the joint names
    xlim, ylim = square_limits(pose[None, None], np.ones((1, 1, len(pose)), dtype=bool),
                         margin=0.3 if label_joints and joints else 0.12)
    panel = _Panel(ax, layout, 1, joints, xlim, ylim, y_down=False, joint_size=18,
                   line_width=2.2)
    panel.update(pose[None], np.ones((1, len(pose)), dtype=bool))
    ax.axis('off')
    if label_joints:
        centre_x = float(np.mean(xlim))
        for j in joints:
            x, y = pose[j]
            right = x >= centre_x
            ax.annotate(layout.joint_names[j], (x, y), xytext=(6 if right else -6, 0),
                        textcoords='offset points', fontsize=6, va='center',
                        ha='left' if right else 'right', color='#7f0000', zorder=5)
    fig.savefig(out, dpi=dpi, format='png')
    return out
