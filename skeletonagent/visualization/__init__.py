"""Pictures of skeletons: sequences (PNG grids, GIF, MP4) and the agent's critical joints."""
from .skeleton import (
    CRITICAL_COLOUR,
    PERSON_COLOURS,
    canonical_pose,
    critical_joints_from_mask,
    draw_critical_joints,
    draw_skeleton_sequence,
    find_ffmpeg,
    infer_layout,
    is_3d,
    render_frames,
    sample_title,
)

__all__ = ['CRITICAL_COLOUR', 'PERSON_COLOURS', 'canonical_pose', 'critical_joints_from_mask',
           'draw_critical_joints', 'draw_skeleton_sequence', 'find_ffmpeg', 'infer_layout', 'is_3d',
           'render_frames', 'sample_title']
