"""Own videos, side by side in one run: pose extraction per backend, the whole video demo, and
onnxruntime against torch eager and fused on the official test.

1. **Pose extraction** at 640×480: a video of a real person (scikit-image's astronaut photo
   sliding sideways, :mod:`skeletonagent.pose.sample_videos`), frames decoded beforehand, one
   estimator per process fed every frame in order (tracking mode, as ``extract_poses`` runs
   it). Backends: ``mediapipe`` (Pose), ``mediapipe_hands`` (Hands), and ``rtmlib`` when it is
   installed and its models are on disk. MediaPipe runs its graphs on threads of its own
   (not torch's): ``cpu/wall`` says how many cores it kept busy.
2. **The video demo** on the same video with ``configs/custom/j.py`` (random weights: speed
   does not depend on them): ``video`` is ``tools/demo/video.py VIDEO`` (decode + poses,
   windows of 48 frames every 16, an MP4 drawn and encoded), with its phases; ``camera`` is
   the camera loop of ``tools/demo/video.py --camera`` (``run_camera``, no window) fed from
   the file: a pose, a drawn frame and an encoded frame per frame, a window of 48 frames
   classified every 8 (the camera default). Goal: the camera loop at >= 25 frames/s.
3. **The official test** (NTU-60 joint model, 8 samples × 10 clips of 100 frames, 2 persons,
   clip-averaged softmax; ``official`` = one sample per call, ``batched`` = all 8): torch
   ``eager`` (unfused), torch ``fused`` (conv + BN folded, as ``init_recognizer`` runs it),
   and ``onnxruntime`` running the graph ``tools/deploy/export_onnx.py`` writes (exported
   here from the fused model, same weights, same inputs). The onnxruntime process imports
   neither torch nor the package: its peak memory is what a deployment holds. Every row's
   scores are compared with the fused model's.

Each measurement runs in its own process (memory peaks do not mix), threads pinned to
``--threads`` (torch.set_num_threads, OMP_NUM_THREADS, onnxruntime's intra-op threads).

Usage: python bench/video.py [--threads 2] [--frames 120] [--repeats 3] [--parts pose,demo,infer]
Needs the video extra (pip install -e ".[video]").
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SIZE = (480, 640)              # H, W
INFER_MODES = {'official': 1, 'batched': 8}
CAMERA_GOAL = 25.0


def _emit(result: dict) -> None:
    result['peak_gb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    print('RESULT ' + json.dumps(result), flush=True)


def _pin(threads: int) -> None:
    import torch
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------- children
def child_pose(args: argparse.Namespace) -> None:
    """One backend over the video's frames (decoded first)."""
    from skeletonagent.pose import PoseBackendUnavailable, VideoExtraMissing, build_estimator
    from skeletonagent.pose.video import read_frames
    frames = list(read_frames(args.video))
    try:
        estimator = build_estimator(args.backend)
    except (PoseBackendUnavailable, VideoExtraMissing) as exc:
        _emit(dict(backend=args.backend, skipped=str(exc).splitlines()[0]))
        return
    with estimator:
        for frame in frames[:5]:            # warm-up: graphs built, first detection done
            estimator(frame)
        times, found = [], 0
        for _ in range(args.repeats):
            estimator.reset()
            t0, c0 = time.perf_counter(), time.process_time()
            found = sum(estimator(frame).num_persons > 0 for frame in frames)
            times.append((time.perf_counter() - t0, time.process_time() - c0))
        what = estimator.describe()
    wall, cpu = min(times)
    _emit(dict(backend=args.backend, what=what, fps=len(frames) / wall, cpu_per_wall=cpu / wall,
               found=found, frames=len(frames), runs=[round(len(frames) / t, 1) for t, _ in times]))


def child_demo(args: argparse.Namespace) -> None:
    """tools/demo/video.py on a file (``video``) or its camera loop fed from the file."""
    _pin(args.threads)
    from skeletonagent.apis import init_recognizer
    from skeletonagent.apis.video_demo import recognize_video, run_camera
    from skeletonagent.pose import build_estimator
    from skeletonagent.pose.video import video_info
    model = init_recognizer(os.path.join(ROOT, 'configs', 'custom', 'j.py'), None)
    frames = video_info(args.video).frame_count
    runs = []
    with build_estimator('mediapipe') as estimator:
        for k in range(args.repeats + 1):          # the first run warms up
            t0, c0 = time.perf_counter(), time.process_time()
            if args.demo == 'video':
                result = recognize_video(model, args.video, estimator, out=os.path.join(args.tmp, 'demo.mp4'),
                                         window=48, stride=16)
                phases = dict(result.seconds)
            else:
                run_camera(model, args.video, estimator, window=48, stride=8, show=False,
                           out=os.path.join(args.tmp, 'camera.mp4'), log=lambda _: None)
                phases = {}
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            if k:
                runs.append((wall, cpu, phases))
    wall, cpu, phases = min(runs, key=lambda r: r[0])
    _emit(dict(demo=args.demo, fps=frames / wall, cpu_per_wall=cpu / wall, frames=frames,
               phases={k: frames / v for k, v in phases.items() if v > 0},
               runs=[round(frames / r[0], 1) for r in runs]))


def _official_inputs():
    import torch
    return torch.randn(8, 10, 2, 100, 25, 3, generator=torch.Generator().manual_seed(0))


def child_export(args: argparse.Namespace) -> None:
    """The fused NTU-60 joint model → ONNX (the export tool's graph), and the inputs."""
    _pin(args.threads)
    import _common as C
    import numpy as np
    import torch

    from skeletonagent.apis.onnx_export import trace_test_path
    from skeletonagent.models.gcn import fuse_for_inference
    torch.manual_seed(0)
    model = C.build_ntu_model('minilm', 'cpu', with_text=False).eval()
    fuse_for_inference(model)
    x = _official_inputs()
    trace_test_path(model, os.path.join(args.tmp, 'ntu60_j.onnx'), x[:1])
    np.save(os.path.join(args.tmp, 'inputs.npy'), x.numpy())
    _emit(dict(export=True))


def child_infer(args: argparse.Namespace) -> None:
    """The official test: 8 samples × 10 clips, ``INFER_MODES[mode]`` samples per call."""
    import numpy as np
    x = np.load(os.path.join(args.tmp, 'inputs.npy'))
    batch = INFER_MODES[args.mode]
    if args.engine == 'onnxruntime':         # no torch, no package: what a deployment holds
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(os.path.join(args.tmp, 'ntu60_j.onnx'), options,
                                       providers=['CPUExecutionProvider'])

        def score(clips):
            return session.run(['scores'], {'keypoint': clips})[0]
    else:
        _pin(args.threads)
        import _common as C
        import torch
        torch.manual_seed(0)
        model = C.build_ntu_model('minilm', 'cpu', with_text=False).eval()
        if args.engine == 'fused':
            from skeletonagent.models.gcn import fuse_for_inference
            fuse_for_inference(model)

        def score(clips):
            with torch.inference_mode():
                return model(torch.from_numpy(clips), mode='tensor').numpy()

    def run():
        return np.concatenate([score(x[i:i + batch]) for i in range(0, len(x), batch)])

    score(x[:1])                                 # warm-up
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        scores = run()
        times.append(time.perf_counter() - t0)
    np.save(os.path.join(args.tmp, f'scores_{args.engine}_{args.mode}.npy'), scores)
    best = min(times)
    _emit(dict(engine=args.engine, mode=args.mode, seconds=best, clips_per_s=80 / best,
               runs=[round(t, 2) for t in times]))


# ---------------------------------------------------------------------------- parent
def _make_video(path: str, frames: int) -> None:
    from skeletonagent.pose.sample_videos import moving_photo_frames
    from skeletonagent.pose.video import write_video
    # there and back again: the person crosses the frame twice
    half = frames // 2
    a, _ = moving_photo_frames(half, SIZE, 0.0, 1.0, bob=4.0)
    b, _ = moving_photo_frames(frames - half, SIZE, 1.0, 0.0, mirror=True, bob=4.0)
    write_video(path, a + b, 25.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--frames', type=int, default=120, help='frames of the 640x480 video')
    parser.add_argument('--repeats', type=int, default=3, help='timed repetitions (best reported)')
    parser.add_argument('--parts', default='pose,demo,infer')
    parser.add_argument('--backends', default='mediapipe,mediapipe_hands,rtmlib')
    for hidden in ('--child', '--video', '--tmp', '--backend', '--demo', '--engine', '--mode'):
        parser.add_argument(hidden, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        dict(pose=child_pose, demo=child_demo, export=child_export, infer=child_infer)[args.child](args)
        return

    import _common as C
    import numpy as np
    os.environ['OMP_NUM_THREADS'] = str(args.threads)       # children inherit it
    parts = args.parts.split(',')
    print(C.machine_line())
    print(f'threads: {args.threads} (torch, OMP, onnxruntime; MediaPipe picks its own); '
          f'best of {args.repeats} runs; "others": cores other processes kept busy meanwhile')
    with tempfile.TemporaryDirectory(prefix='bench_video_') as tmp:
        video = os.path.join(tmp, 'person_640x480.mp4')
        _make_video(video, args.frames)
        common = ['--threads', str(args.threads), '--repeats', str(args.repeats), '--tmp', tmp,
                  '--video', video]

        if 'pose' in parts:
            print(f'\npose extraction, {args.frames} frames of {SIZE[1]}x{SIZE[0]} (decoded beforehand)')
            print(f'{"backend":16s} {"frames/s":>9s} {"cpu/wall":>8s} {"found":>7s} {"peak GB":>8s} '
                  f'{"others":>6s}  model / runs (frames/s)')
            for backend in args.backends.split(','):
                res = C.run_child(__file__, ['pose', '--backend', backend, *common])
                if 'skipped' in res:
                    print(f'{backend:16s} skipped: {res["skipped"]}')
                    continue
                print(f'{backend:16s} {res["fps"]:9.1f} {res["cpu_per_wall"]:8.2f} '
                      f'{res["found"]:>3d}/{res["frames"]:<3d} {res["peak_gb"]:8.2f} {res["others"]["cores"]:6.2f}  '
                      f'{res["what"]}; {res["runs"]}', flush=True)

        if 'demo' in parts:
            print(f'\nvideo demo (configs/custom/j.py, MediaPipe Pose), {args.frames} frames of '
                  f'{SIZE[1]}x{SIZE[0]}; goal: camera >= {CAMERA_GOAL:g} frames/s')
            print(f'{"demo":16s} {"frames/s":>9s} {"cpu/wall":>8s} {"peak GB":>8s} {"others":>6s}  '
                  f'phases (frames/s) / runs (frames/s)')
            for demo in ('video', 'camera'):
                res = C.run_child(__file__, ['demo', '--demo', demo, *common])
                phases = ', '.join(f'{k} {v:.1f}' for k, v in res['phases'].items())
                print(f'{demo:16s} {res["fps"]:9.1f} {res["cpu_per_wall"]:8.2f} {res["peak_gb"]:8.2f} '
                      f'{res["others"]["cores"]:6.2f}  {phases + "; " if phases else ""}{res["runs"]}', flush=True)
                if demo == 'camera':
                    verdict = 'met' if res['fps'] >= CAMERA_GOAL else 'not met'
                    print(f'goal camera >= {CAMERA_GOAL:g} frames/s: {verdict}')

        if 'infer' in parts:
            C.run_child(__file__, ['export', *common])
            print('\nofficial test: NTU-60 joint model, 8 samples x 10 clips x 100 frames x 2 persons')
            print(f'{"mode":9s} {"engine":12s} {"seconds":>8s} {"clips/s":>8s} {"x eager":>7s} {"x fused":>7s} '
                  f'{"peak GB":>8s} {"others":>6s}  max |score - fused|  runs (s)')
            for mode in INFER_MODES:
                rows = {}
                for engine in ('eager', 'fused', 'onnxruntime'):
                    rows[engine] = C.run_child(__file__, ['infer', '--engine', engine, '--mode', mode,
                                                          *common])
                fused_scores = np.load(os.path.join(tmp, f'scores_fused_{mode}.npy'))
                for engine, res in rows.items():
                    diff = np.abs(np.load(os.path.join(tmp, f'scores_{engine}_{mode}.npy')) - fused_scores).max()
                    print(f'{mode:9s} {engine:12s} {res["seconds"]:8.2f} {res["clips_per_s"]:8.2f} '
                          f'{res["clips_per_s"] / rows["eager"]["clips_per_s"]:7.2f} '
                          f'{res["clips_per_s"] / rows["fused"]["clips_per_s"]:7.2f} {res["peak_gb"]:8.2f} '
                          f'{res["others"]["cores"]:6.2f}  {diff:.2g}  {res["runs"]}', flush=True)


if __name__ == '__main__':
    main()
