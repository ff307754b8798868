"""Kinetics-Skeleton through memcached, against a real memcached server.

Every test that needs the server starts its own on a free port and stops it afterwards.
Tests that need the ``memcached`` binary skip when it is not installed; CI installs it
(``.ci/run``: ``apt-get install -y memcached``).
"""
import contextlib
import importlib.util
import pickle
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from skeletonagent.datasets import PoseDataset
from skeletonagent.datasets.memcache import MemcachedError, MemcachedReader, make_client, probe_memcached
from skeletonagent.datasets.pipelines import Compose
from skeletonagent.engine import memcached_server
from skeletonagent.engine.memcached_server import MemcachedServer, fill_from_kpfiles, memcached_session, sentinel_key

ROOT = Path(__file__).resolve().parents[2]
needs_memcached = pytest.mark.skipif(
    shutil.which('memcached') is None,
    reason='the memcached server is not installed (Debian/Ubuntu: apt-get install -y '
           'memcached; .ci/run installs it)')

NUM_JOINTS = 17  # COCO, as PYSKL's HRNet Kinetics skeletons


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _pipeline(test_mode_clips=1, feat='j'):
    """The official Kinetics val pipeline (configs/k400/j.py)."""
    return [
        dict(type='DecompressPose', squeeze=True),
        dict(type='UniformSampleFrames', clip_len=24, num_clips=test_mode_clips),
        dict(type='PoseDecode'),
        dict(type='Kinetics_Transform'),
        dict(type='GenSkeFeat', dataset='coco_new', feats=[feat]),
        dict(type='FormatGCNInput', num_person=2),
        dict(type='Collect', keys=['keypoint', 'label'], meta_keys=[]),
        dict(type='ToTensor', keys=['keypoint']),
    ]


def _video(rng, name, label, raw_file):
    """One compressed Kinetics sample: the annotation (table of contents) and its pack."""
    total_frames = int(rng.integers(20, 40))
    frame_inds, rows = [], []
    for t in range(total_frames):
        if t % 7 == 3:          # frames without any detection (squeezed out)
            continue
        for _ in range(int(rng.integers(1, 4))):
            frame_inds.append(t)
            xy = rng.uniform(0, 600, size=(NUM_JOINTS, 2))
            score = rng.uniform(0.1, 1.0, size=(NUM_JOINTS, 1))
            rows.append(np.concatenate([xy, score], axis=1))
    keypoint = np.stack(rows).astype(np.float16)             # rows × V × 3 (x, y, score)
    box_score = rng.uniform(0.4, 1.0, size=len(rows)).astype(np.float16)
    valid = {thr: int(len(set(np.asarray(frame_inds)[box_score >= thr].tolist())))
             for thr in (0.5, 0.6, 0.7, 0.8, 0.9)}
    ann = dict(frame_dir=name, label=label, total_frames=total_frames, img_shape=(480, 640),
               original_shape=(480, 640), frame_inds=np.asarray(frame_inds, dtype=np.int16),
               box_score=box_score, valid=valid, raw_file=raw_file)
    return ann, dict(keypoint=keypoint)


def _make_k400(root: Path, num_videos=6, num_kpfiles=2, seed=0):
    """PYSKL's k400 layout: an annotation pickle plus kpfiles under kpfiles/."""
    rng = np.random.default_rng(seed)
    (root / 'kpfiles').mkdir(parents=True, exist_ok=True)
    anns, kpfiles = [], [dict() for _ in range(num_kpfiles)]
    for i in range(num_videos):
        part = i % num_kpfiles
        ann, pack = _video(rng, f'vid{i:03d}_000010_000020', i % 3, f'kpfiles/part_{part}.pkl')
        anns.append(ann)
        kpfiles[part][ann['frame_dir']] = pack
    for part, content in enumerate(kpfiles):
        (root / 'kpfiles' / f'part_{part}.pkl').write_bytes(pickle.dumps(content))
    names = [a['frame_dir'] for a in anns]
    data = dict(split=dict(train=names[: num_videos // 2], val=names[num_videos // 2:]),
                annotations=anns)
    ann_file = root / 'k400_hrnet.pkl'
    ann_file.write_bytes(pickle.dumps(data))
    return ann_file, anns, kpfiles


@pytest.fixture
def server():
    srv = MemcachedServer.start('127.0.0.1', _free_port(), item_size_mb=1, memory_mb=64)
    yield srv
    srv.stop(graceful=False)


@pytest.fixture
def k400(tmp_path):
    return _make_k400(tmp_path)


def _naive_decompress(frame_inds, keypoint):
    """PYSKL's DecompressPose (squeeze=True, no person cap), written as a plain loop."""
    uniq = sorted(set(frame_inds.tolist()))
    dense = [uniq.index(f) for f in frame_inds.tolist()]
    total = len(uniq)
    num_person = max(dense.count(t) for t in range(total))
    kp = np.zeros((num_person, total, keypoint.shape[1], 2), np.float16)
    sc = np.zeros((num_person, total, keypoint.shape[1]), np.float16)
    seen = [0] * total
    for t, row in zip(dense, keypoint):
        kp[seen[t], t], sc[seen[t], t] = row[:, :2], row[:, 2]
        seen[t] += 1
    return kp, sc


# ------------------------------------------------------------------------------- round trip
@needs_memcached
def test_round_trip_through_pose_dataset_and_k400_pipeline(server, k400):
    ann_file, anns, kpfiles = k400
    mc_cfg = ('localhost', server.port)
    stored = fill_from_kpfiles(mc_cfg, [ann_file.parent / 'kpfiles' / f'part_{i}.pkl'
                                        for i in range(2)], progress=False)
    assert stored == {a['frame_dir'] for a in anns}
    packs = {k: v for content in kpfiles for k, v in content.items()}

    # the raw fields come back bit for bit, under the frame_dir key
    dataset = PoseDataset(str(ann_file), [], split='val', memcached=True, mc_cfg=mc_cfg,
                          test_mode=True)
    assert dataset.frame_dirs == [a['frame_dir'] for a in anns[3:]]
    for i, ann in enumerate(anns[3:]):
        info = dataset.get_data_info(i)
        assert 'key' not in info and info['raw_file'] == ann['raw_file']
        np.testing.assert_array_equal(info['keypoint'], packs[ann['frame_dir']]['keypoint'])
        assert info['keypoint'].dtype == np.float16
        # DecompressPose expands PYSKL's compressed rows as PYSKL does
        out = Compose([dict(type='DecompressPose', squeeze=True)])(info)
        kp, sc = _naive_decompress(ann['frame_inds'], packs[ann['frame_dir']]['keypoint'])
        np.testing.assert_array_equal(out['keypoint'], kp)
        np.testing.assert_array_equal(out['keypoint_score'], sc)
        assert out['total_frames'] == len(set(ann['frame_inds'].tolist()))

    # the whole k400 pipeline gives the same tensors as the in-memory sample would
    dataset = PoseDataset(str(ann_file), _pipeline(test_mode_clips=2), split='val',
                          memcached=True, mc_cfg=mc_cfg, test_mode=True)
    reference = Compose(_pipeline(test_mode_clips=2))
    for i, ann in enumerate(anns[3:]):
        got = dataset[i]
        sample = dict(ann, **packs[ann['frame_dir']], start_index=0, modality='Pose',
                      test_mode=True)
        want = reference(sample)
        assert got['keypoint'].shape == (2, 2, 24, 20, 3)        # nc, M, T, V (coco_new), C
        assert got['keypoint'].dtype == torch.float32 and got['label'] == ann['label']
        assert torch.equal(got['keypoint'], want['keypoint'])

    # the training split with PYSKL's box threshold (anno_inds) reads through as well
    train = PoseDataset(str(ann_file), _pipeline(), split='train', memcached=True,
                        mc_cfg=mc_cfg, box_thr=0.5, valid_ratio=0.0)
    assert len(train) == 3 and train[0]['keypoint'].shape == (1, 2, 24, 20, 3)


@needs_memcached
def test_missing_key_names_key_and_sample(server, k400):
    ann_file, anns, _ = k400
    fill_from_kpfiles(('localhost', server.port), [ann_file.parent / 'kpfiles/part_0.pkl'],
                      progress=False)    # part_1 (odd videos) never stored
    dataset = PoseDataset(str(ann_file), [], split='train', memcached=True,
                          mc_cfg=('localhost', server.port))
    dataset.get_data_info(0)             # vid000: in part_0
    with pytest.raises(MemcachedError, match=r"key 'vid001_000010_000020'.*not in memcached"):
        dataset.get_data_info(1)


def test_reader_is_fork_and_pickle_safe_and_unreachable_server_is_named():
    port = _free_port()
    dataset_reader = MemcachedReader(('localhost', port))
    clone = pickle.loads(pickle.dumps(dataset_reader))
    assert clone.mc_cfg == ('localhost', port) and clone._client is None
    first = dataset_reader._get_client()
    assert dataset_reader._get_client() is first
    dataset_reader._pid = -1                         # as in a forked DataLoader worker
    assert dataset_reader._get_client() is not first
    with pytest.raises(MemcachedError, match=rf"cannot read key 'x' \(sample 'x'\) from "
                                             rf"memcached at localhost:{port}.*install"):
        dataset_reader.get('x', sample='x')


# ---------------------------------------------------------------------------- noreply=False
@needs_memcached
def test_refused_value_raises_instead_of_vanishing(server, tmp_path):
    big = np.zeros(2 * 2**20, dtype=np.uint8)            # 2 MiB > -I 1m
    client = make_client(('localhost', server.port))
    from pymemcache.exceptions import MemcacheServerError
    with pytest.raises(MemcacheServerError, match='too large'):
        client.set('big', big)
    # pymemcache's default (noreply=True) would have dropped it without a word:
    from pymemcache import serde
    from pymemcache.client.base import Client
    silent = Client(('127.0.0.1', server.port), serde=serde.pickle_serde)
    assert silent.set('big', big) is True and silent.get('big') is None

    kpfile = tmp_path / 'huge.pkl'
    kpfile.write_bytes(pickle.dumps({'small': dict(keypoint=np.zeros((2, 17, 3))),
                                     'huge': dict(keypoint=big)}))
    with pytest.raises(MemcachedError, match=r"refused key 'huge' from kpfile .*huge.pkl"):
        fill_from_kpfiles(('localhost', server.port), [kpfile], progress=False,
                          item_size_mb=1)


# ------------------------------------------------------------------------------ the launcher
def _cfg(ann_file, port, **extra):
    ds = dict(type='PoseDataset', ann_file=str(ann_file), pipeline=_pipeline())
    return dict(memcached=True, mc_cfg=('localhost', port),
                data=dict(train=dict(ds, split='train', box_thr=0.5, valid_ratio=0.0),
                          val=dict(ds, split='val'), test=dict(ds, split='val')), **extra)


@needs_memcached
def test_launcher_starts_fills_and_stops_only_its_own_server(k400, monkeypatch):
    ann_file, anns, _ = k400
    monkeypatch.chdir(ann_file.parent.parent)    # raw_file resolves beside the ann file
    other = MemcachedServer.start('127.0.0.1', _free_port(), item_size_mb=1, memory_mb=64)
    try:
        port = _free_port()
        assert probe_memcached('localhost', port) is None
        with memcached_session(_cfg(ann_file, port), progress=False) as started:
            assert isinstance(started, MemcachedServer) and started.running()
            assert started.port == port and '-I' in started.argv
            assert probe_memcached('127.0.0.1', port) == 'memcached'
            dataset = PoseDataset(str(ann_file), _pipeline(), split='val', memcached=True,
                                  mc_cfg=('localhost', port), test_mode=True)
            assert dataset[0]['keypoint'].shape == (1, 2, 24, 20, 3)
            pid = started.pid
        assert not started.running() and started.process.returncode is not None
        assert probe_memcached('127.0.0.1', port) is None
        # the server the test started itself is untouched
        assert other.running() and probe_memcached('127.0.0.1', other.port) == 'memcached'
        assert pid != other.pid

        # a server that already answers is used (filled once, then reused) and left running
        cfg = _cfg(ann_file, other.port)
        with memcached_session(cfg, progress=False) as started:
            assert started is None
        kpfiles = sorted(str(ann_file.parent / 'kpfiles' / f'part_{i}.pkl') for i in range(2))
        reader = MemcachedReader(('localhost', other.port))
        assert reader.get(sentinel_key(kpfiles)) == dict(kpfiles=2, videos=len(anns))
        reader.get(anns[0]['frame_dir'])
        with memcached_session(cfg, progress=False) as started:   # sentinel: no refill
            assert started is None
        assert other.running()
    finally:
        other.stop(graceful=False)


@needs_memcached
def test_other_local_ranks_wait_for_the_sentinel(server, k400, monkeypatch):
    ann_file, _, _ = k400
    cfg = _cfg(ann_file, server.port, mc_wait_s=20)
    monkeypatch.setenv('LOCAL_RANK', '1')
    kpfiles = [str(ann_file.parent / 'kpfiles' / f'part_{i}.pkl') for i in range(2)]
    key = sentinel_key(kpfiles)

    def rank0():
        time.sleep(0.5)
        fill_from_kpfiles(('localhost', server.port), kpfiles, progress=False)
        make_client(('localhost', server.port)).set(key, dict(kpfiles=2))

    thread = threading.Thread(target=rank0)
    thread.start()
    t0 = time.monotonic()
    with memcached_session(cfg, progress=False) as started:
        assert started is None                        # only local rank 0 starts a server
        assert time.monotonic() - t0 >= 0.4
    thread.join()
    assert server.running()

    # a rank that waits for a server nobody fills gives up with a clear message
    cfg = _cfg(ann_file, _free_port(), mc_wait_s=0.3)
    with pytest.raises(MemcachedError, match='was not filled within'):
        with memcached_session(cfg, progress=False):
            pass


def test_missing_binary_stops_with_install_instructions(k400, monkeypatch):
    ann_file, _, _ = k400
    monkeypatch.setattr(memcached_server, 'MEMCACHED_BINARY', '/nonexistent/bin/memcached')
    port = _free_port()
    with pytest.raises(MemcachedError) as info:
        with memcached_session(_cfg(ann_file, port), progress=False):
            pytest.fail('the block must not run')
    message = str(info.value)
    assert "'/nonexistent/bin/memcached' was not found" in message
    assert 'apt-get install -y memcached' in message and f'-p {port}' in message

    # tools/train.py turns it into a clean exit with that message
    config = ann_file.parent / 'k400_cfg.py'
    config.write_text(f'memcached = True\nmc_cfg = ("localhost", {port})\n'
                      f'data = {_cfg(ann_file, port)["data"]!r}\n'
                      'total_epochs = 1\noptimizer = dict(type="SGD", lr=0.1)\n'
                      'model = dict(type="RecognizerGCN")\n')
    spec = importlib.util.spec_from_file_location('train_tool', ROOT / 'tools' / 'train.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    with pytest.raises(SystemExit, match='error: cannot start memcached.*apt-get install'):
        tool.main([str(config), '--work-dir', str(ann_file.parent / 'work')])


def test_runner_test_serves_memcached_itself(k400, monkeypatch, tmp_path):
    """The runner's test entry point (not the tool) starts the server: without the binary
    it stops there, before anything reads the (here missing) checkpoint."""
    from skeletonagent.engine import RunOptions
    from skeletonagent.engine.runner import test as run_test
    ann_file, _, _ = k400
    monkeypatch.setattr(memcached_server, 'MEMCACHED_BINARY', '/nonexistent/bin/memcached')
    with pytest.raises(MemcachedError, match="'/nonexistent/bin/memcached' was not found"):
        run_test(_cfg(ann_file, _free_port()), str(tmp_path / 'missing.pth'), RunOptions(),
                 None)


def test_port_taken_by_another_service(k400):
    ann_file, _, _ = k400
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(4)
    port = listener.getsockname()[1]

    def answer():                      # an HTTP-ish service, not memcached
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                conn.sendall(b'HTTP/1.1 400 Bad Request\r\n\r\n')
                conn.close()

    threading.Thread(target=answer, daemon=True).start()
    try:
        assert probe_memcached('localhost', port) == 'other'
        with pytest.raises(MemcachedError, match=rf'port {port} .*not memcached.*install'):
            with memcached_session(_cfg(ann_file, port), progress=False):
                pass
    finally:
        listener.close()


def test_server_that_exits_at_start_is_reported(tmp_path, monkeypatch):
    fake = tmp_path / 'memcached'
    fake.write_text('#!/bin/sh\necho "failed to listen on TCP port: Address in use" >&2\nexit 71\n')
    fake.chmod(0o755)
    monkeypatch.setattr(memcached_server, 'MEMCACHED_BINARY', str(fake))
    with pytest.raises(MemcachedError, match='exited with status 71.*Address in use'):
        MemcachedServer.start('127.0.0.1', _free_port(), timeout=5)
