#!/usr/bin/env python
"""Recognise actions in a video or a camera: skeletons and labels drawn, a timeline out.

    python tools/demo/video.py CONFIG CHECKPOINT VIDEO [--out out.mp4] [--window 48] [--stride 16]
    python tools/demo/video.py CONFIG CHECKPOINT --camera 0 [--out live.mp4] [--no-show]

A video: poses (MediaPipe by default) → windows of --window frames every --stride frames →
the top-k classes per window; writes an MP4 with the skeletons and the current label drawn
(default: VIDEO's name + _demo.mp4 in the current folder) and a timeline of the actions
(<out>.timeline.json and .csv: start, end, label, score). A camera: the same live, with
frames per second shown, until Ctrl-C (or q in the window). Needs the video extra:
pip install -e ".[video]".
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's package first

from skeletonagent.engine.threads import threads_arg  # noqa: E402
from skeletonagent.engine.tool import tool_main  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('video', nargs='?', help='a video file (or --camera N)')
    p.add_argument('--camera', type=int, default=None, help='camera index instead of a video')
    p.add_argument('--out', help='the MP4 to write (video: default <VIDEO stem>_demo.mp4)')
    p.add_argument('--timeline', help='timeline JSON path (the CSV beside it; default beside --out)')
    p.add_argument('--backend', default=None, choices=['mediapipe', 'mediapipe_hands', 'rtmlib'],
                   help='pose backend (default: mediapipe, or mediapipe_hands for a handmp model)')
    p.add_argument('--window', type=int, default=48, help='frames per window')
    p.add_argument('--stride', type=int, default=16, help='frames between windows')
    p.add_argument('--top-k', type=int, default=3)
    p.add_argument('--max-persons', type=int, default=2)
    p.add_argument('--device', default='cpu')
    p.add_argument('--threads', type=threads_arg, default=None,
                   help='torch threads (default: chosen from the free cores, as tools/test.py does)')
    p.add_argument('--no-show', action='store_true', help='camera: no window (e.g. with --out)')
    p.add_argument('--max-frames', type=int, default=None, help='camera: stop after N frames')
    p.add_argument('--debug', action='store_true', help='show the traceback of an error')
    args = p.parse_args(argv)
    if (args.video is None) == (args.camera is None):
        p.error('give a VIDEO or --camera N (one of them)')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from skeletonagent.apis.video_demo import recognize_video, run_camera
    from skeletonagent.pose import build_estimator, require
    if args.backend != 'rtmlib':
        require('mediapipe')                         # the extra, before the model is built
    from skeletonagent.engine.threads import configure_threads
    # torch's threads as tools/train.py and tools/test.py choose them (on a shared 2-core
    # machine one thread, where torch's default of one per core made a window 10-70x slower)
    choice = configure_threads(args.threads, cuda=args.device.startswith('cuda'))
    print(f'threads: {choice.line()}')
    from skeletonagent.apis import init_recognizer
    from skeletonagent.apis.inference import input_spec
    model = init_recognizer(args.config, args.checkpoint, device=args.device)
    layout = input_spec(model).input_layout
    backend = args.backend or ('mediapipe_hands' if layout == 'handmp' else 'mediapipe')
    kwargs = {'max_hands': args.max_persons} if backend == 'mediapipe_hands' else {}
    with build_estimator(backend, **kwargs) as estimator:
        if args.camera is not None:
            result = run_camera(model, args.camera, estimator, window=args.window, stride=args.stride,
                                top_k=args.top_k, max_persons=args.max_persons, out=args.out,
                                show=not args.no_show, max_frames=args.max_frames)
            print(f'camera {args.camera}: {result.frames} frames, {len(result.windows)} windows')
            return 0
        out = args.out or f'{Path(args.video).stem}_demo.mp4'
        from tqdm import tqdm
        bars: dict = {}

        def progress(phase: str, done: int, total: int) -> None:
            bar = bars.get(phase)
            if bar is None:
                bar = bars[phase] = tqdm(total=total or None, desc=phase, unit='frame' if phase == 'poses'
                                         else 'window', dynamic_ncols=True, leave=False)
            bar.update(done - bar.n)
        try:
            result = recognize_video(model, args.video, estimator, out=out, window=args.window,
                                     stride=args.stride, top_k=args.top_k, max_persons=args.max_persons,
                                     timeline=args.timeline, progress=progress)
        finally:
            for bar in bars.values():
                bar.close()
    secs = result.seconds
    print(f'{args.video}: {result.frames} frames, {len(result.windows)} windows '
          f'(pose {secs["pose"]:.1f} s, recognition {secs["recognition"]:.1f} s, video {secs["drawing"]:.1f} s)')
    for seg in result.segments:
        print(f'  {seg.start:7.2f}-{seg.end:7.2f} s  {seg.label}  ({seg.score:.2f})')
    print(f'video -> {result.video}\ntimeline -> {result.timeline_json}, {result.timeline_csv}')
    return 0


if __name__ == '__main__':
    tool_main(main)
