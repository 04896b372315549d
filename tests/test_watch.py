"""vidgru watch: live scoring equals offline scoring, stream faults, the cameras config, and the whole
command against a real RTSP server (GStreamer's, tests/rtsp_server.py) that is killed and restarted."""

from __future__ import annotations

import csv
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import run_cli
from tests.test_cli import assert_one_line_error
from vidgru.config import EventsConfig
from vidgru.config.cameras import CamerasConfig, StreamSettings, load_cameras_config
from vidgru.decode import FrameReader
from vidgru.errors import ConfigError
from vidgru.features import FeatureExtractor
from vidgru.jobs import detect_events, score_clip
from vidgru.live import FramePrep, LiveScoresCsv, WatchSession, iso_utc, roi_cells
from vidgru.model_store import load_model
from vidgru.motion import MotionAnalyzer
from vidgru.pipeline import LocalFeaturePipeline
from vidgru.reasons import peak_reason
from vidgru.schemas import validate_record
from vidgru.sinks import JsonlSink
from vidgru.sources import Clip
from vidgru.streams import Backoff, CameraStream, CapturedFrame, FrameSampler, LatestFrames, StatusChange
from vidgru.synthetic import Intruder, SceneSpec, render_scene
from vidgru.watching import plan_cameras

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / "tests" / "rtsp_server.py"
EXAMPLE = ROOT / "configs" / "cameras.example.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RtspServer:
    """tests/rtsp_server.py under Debian's python3, on a free port of 127.0.0.1."""

    def __init__(self, mounts: dict[str, Path], repeat: int = 1) -> None:
        self.mounts, self.repeat, self.port = mounts, repeat, free_port()
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        streams = [a for mount, path in self.mounts.items() for a in ("--stream", f"{mount}={path}")]
        self.proc = subprocess.Popen(
            [
                "/usr/bin/python3",
                str(SERVER),
                "--port",
                str(self.port),
                "--repeat",
                str(self.repeat),
                *streams,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        assert line.strip() == "ready", self.proc.stderr.read()  # type: ignore[union-attr]

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def url(self, mount: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{mount}"


@pytest.fixture(scope="module")
def live_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[list[int]]]:
    path = tmp_path_factory.mktemp("live") / "intruder12.mp4"
    labels = render_scene(path, SceneSpec(seconds=20, seed=2, intruders=(Intruder(8, 3, speed=12),)))
    return path, labels


@pytest.fixture(scope="module")
def offline(model_dir: Path, live_clip: tuple[Path, list[list[int]]]) -> tuple[np.ndarray, np.ndarray, dict]:
    """The clip's offline scores, and event settings under which offline analysis finds exactly the
    intruder. The live tests then check that the live path finds what offline analysis finds; the
    settings come from the scores so that they hold for whatever the fixture model learned."""
    path, ((lo, hi),) = live_clip
    model = load_model(model_dir)
    pipeline = LocalFeaturePipeline(model.config)
    features = next(pipeline.run([Clip("live", path, "video")], background=model.background))
    scored = score_clip(features, model)  # both temporal models, as analyze scores
    scores, cells = scored.scores, scored.cells
    for q, hysteresis in itertools.product((0.5, 0.3, 0.7, 0.2), (0.7, 0.5)):
        settings = {
            "threshold": round(float(np.quantile(scores[lo:hi], q)), 3),
            "hysteresis": hysteresis,
            "min_duration_s": 1.0,
            "merge_gap_s": 0.5,
        }
        found = detect_events("live", scores, cells, 10.0, EventsConfig(**settings), "m")
        if len(found) == 1 and found[0].start_frame < hi and found[0].end_frame >= lo:
            return scores, cells, settings
    pytest.fail(f"the fixture model does not single out the intruder (frames {lo}-{hi}): {scores.round(1)}")


@pytest.fixture
def rtsp(live_clip: tuple[Path, list[list[int]]]) -> Iterator[RtspServer]:
    server = RtspServer({"live": live_clip[0]}, repeat=4)
    server.start()
    yield server
    server.kill()


def descendants(pid: int) -> dict[int, str]:
    """Every process below ``pid``, with its command line (Ray names worker processes ray::<Actor>...)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # the process has gone
    found, frontier = {}, [pid]
    while frontier:
        parent = frontier.pop()
        for child in [c for c, p in parents.items() if p == parent]:
            try:
                found[child] = (Path("/proc") / str(child) / "cmdline").read_text().replace("\0", " ")
            except OSError:
                continue
            frontier.append(child)
    return found


def captured_after(scores: Path, t: float) -> int:
    """Frames in a live scores CSV captured after ``t``."""
    if not scores.is_file():
        return 0
    with scores.open() as fh:
        return sum(1 for row in csv.DictReader(fh) if float(row["captured"]) > t)


def read_records(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for(path: Path, predicate, timeout: float, proc: subprocess.Popen | None = None) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = read_records(path)
        if predicate(records):
            return records
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.2)
    stderr = proc.stderr.read() if proc is not None and proc.poll() is not None else ""  # type: ignore[union-attr]
    raise AssertionError(f"timed out; records so far: {read_records(path)}\n{stderr}")


# --- the library, without Ray --------------------------------------------------------------------------


def test_live_scoring_matches_offline_and_emits_start_then_end(
    model_dir: Path,
    live_clip: tuple[Path, list[list[int]]],
    offline: tuple[np.ndarray, np.ndarray, dict],
    tmp_path: Path,
) -> None:
    """Frame by frame, in small mixed batches, the live path gives the offline scores and events, and the
    intruder's event is written when it starts and when it ends (same id), with ISO-8601 UTC capture times."""
    path, ((lo, hi),) = live_clip
    offline_scores, offline_cells, settings = offline
    clip = Clip("live", path, "video")
    model = load_model(model_dir)
    cfg = CamerasConfig.model_validate(
        {"model": str(model_dir), "events": settings, "cameras": [{"id": "cam", "url": "x"}]}
    )
    (plan,) = plan_cameras(cfg, tmp_path / "thumbs")
    (expected,) = detect_events("cam", offline_scores, offline_cells, 10.0, plan.scorer.events, "m")

    extractor = FeatureExtractor(model.config.features, model.config.motion.grid)
    prep = FramePrep("cam", model.config.motion, model.config.features, model.background)
    sink, scores = JsonlSink(tmp_path / "events.jsonl"), LiveScoresCsv(tmp_path / "scores.csv")
    session = WatchSession({"cam": plan.scorer}, lambda b: extractor(b.cnn_input), [sink], scores)
    start = time.time() - 3600.0  # captured an hour ago
    frames = [prep(CapturedFrame(i, start + i / 10, image, i == 0)) for i, image in FrameReader(clip)]
    for lo_batch in range(0, len(frames), 7):
        session.process({"cam": frames[lo_batch : lo_batch + 7]})
    session.close()
    sink.close()
    scores.close()

    live = np.loadtxt(tmp_path / "scores.csv", delimiter=",", skiprows=1, usecols=4)
    np.testing.assert_allclose(live, offline_scores, atol=1e-4)
    records = read_records(tmp_path / "events.jsonl")
    assert [r["type"] for r in records] == ["start", "end"]
    first, last = records
    assert first["id"] == last["id"] and first["camera"] == "cam"
    assert (first["start_frame"], last["end_frame"]) == (expected.start_frame, expected.end_frame)
    assert first["start_frame"] < hi and last["end_frame"] >= lo
    assert first["start_time"] == iso_utc(start + first["start_frame"] / 10)
    assert first["start_time"].endswith("Z") and "T" in first["start_time"]
    assert last["end_time"] == iso_utc(start + last["end_frame"] / 10)
    assert Path(last["thumbnail"]).is_file() and len(last["box"]) == 4
    # the live reason is the one batch analysis gives for the same peak window
    features = next(LocalFeaturePipeline(model.config).run([clip], background=model.background))
    scored = score_clip(features, model)
    expected_reason = (
        "time_pattern"
        if scored.from_behaviour[last["peak_frame"]]
        else peak_reason(model.temporal, model.descriptors, features, last["peak_frame"], last["peak_cell"])
    )
    assert first["reason"] in ("speed", "appearance", "time_pattern") and last["reason"] == expected_reason
    for r in records:
        assert r["emitted"] >= r["captured"]  # ISO strings of one format sort as times
        validate_record(r)


def test_roi_masks_cells_outside_it(
    model_dir: Path, live_clip: tuple[Path, list[list[int]]], offline: tuple[np.ndarray, np.ndarray, dict]
) -> None:
    top = [[[0, 0], [1, 0], [1, 0.25], [0, 0.25]]]
    mask = roi_cells(top, (8, 12))
    assert mask.reshape(8, 12)[:2].all() and not mask.reshape(8, 12)[2:].any()
    assert roi_cells(None, (8, 12)).all()
    # Nothing moves in the top quarter of the scene, so the intruder raises nothing there.
    cfg = CamerasConfig.model_validate(
        {
            "model": str(model_dir),
            "events": {**offline[2], "thumbnails": False},
            "cameras": [{"id": "cam", "url": "x", "roi": top}],
        }
    )
    (plan,) = plan_cameras(cfg, None)
    model = plan.model
    extractor = FeatureExtractor(model.config.features, model.config.motion.grid)
    prep = FramePrep("cam", model.config.motion, model.config.features, model.background)
    cells, records = set(), []
    for i, image in FrameReader(Clip("live", live_clip[0], "video")):
        if i > live_clip[1][0][1] + 15:  # past the intruder
            break
        frame = prep(CapturedFrame(i, float(i), image, i == 0))
        appearance = extractor(frame.cnn_input[None])[0] if frame.cnn_input is not None else None
        _, cell, recs = plan.scorer.score(frame, appearance)
        cells.add(cell)
        records += recs
    assert records == [] and cells <= set(range(24))


def test_latest_frames_drops_the_oldest_and_keeps_statuses_in_order() -> None:
    buffer = LatestFrames(capacity=3)
    image = np.zeros((4, 4, 3), np.uint8)
    for seq in range(2):
        buffer.put(CapturedFrame(seq, 0.0, image, seq == 0))
    buffer.put_status(StatusChange(False, 0.0, "lost", after_seq=1))
    for seq in range(2, 6):
        buffer.put(CapturedFrame(seq, 0.0, image, seq == 2))
    items = buffer.take(wait_s=0)
    assert buffer.dropped == 3
    assert [(type(i).__name__, getattr(i, "seq", None)) for i in items] == [
        ("StatusChange", None),
        ("CapturedFrame", 3),
        ("CapturedFrame", 4),
        ("CapturedFrame", 5),
    ]
    assert buffer.take(wait_s=0.01) == []


def test_frame_prep_restarts_flow_after_a_gap(model_dir: Path) -> None:
    model = load_model(model_dir)
    prep = FramePrep("cam", model.config.motion, model.config.features, model.background)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (240, 360, 3), dtype=np.uint8) for _ in range(5)]
    out = [prep(CapturedFrame(seq, 0.0, images[i], seq == 0)) for i, seq in enumerate([0, 1, 2, 5, 6])]
    assert [f.restart for f in out] == [True, False, False, True, False]
    # The CNN runs on every (interval + 1)th frame counted from a restart: seqs 0, 1, 2, then 5 (a restart), 6.
    every = model.config.features.interval + 1
    assert [f.cnn_input is not None for f in out] == [i % every == 0 for i in (0, 1, 2, 0, 1)]
    # No flow across the gap (it would read as a speed-up): the frame after it is a first frame.
    np.testing.assert_array_equal(out[3].motion, MotionAnalyzer(model.config.motion).push(images[3]))
    assert not np.array_equal(out[4].motion, MotionAnalyzer(model.config.motion).push(images[4]))


def test_sampler_and_backoff() -> None:
    sampler = FrameSampler(10, native_fps=25)
    kept = [i for i in range(250) if sampler.keep(i, 0.0)]
    assert len(kept) == 100
    assert [i for i in range(10) if FrameSampler(10, 10).keep(i, 0.0)] == list(range(10))
    backoff = Backoff(1, 8)
    assert [backoff.next() for _ in range(6)] == [1, 2, 4, 8, 8, 8]
    backoff.reset()
    assert backoff.next() == 1


def test_stream_reports_offline_once_and_keeps_retrying() -> None:
    """A dead camera: one camera_offline, then reopen attempts with backoff until stopped."""
    statuses: list[StatusChange] = []
    stream = CameraStream(
        "dead",
        f"rtsp://127.0.0.1:{free_port()}/nothing",
        StreamSettings(open_timeout_s=1, backoff_initial_s=0.1, backoff_max_s=0.2),
        10,
        "stream",
    )
    stop = threading.Event()
    thread = threading.Thread(target=stream.run, args=(lambda f: None, statuses.append, stop))
    thread.start()
    time.sleep(1.5)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert [(s.online, s.message.startswith("cannot open")) for s in statuses] == [(False, True)]
    assert stream.open_attempts >= 4 and stream.online is False


def test_file_replay_samples_at_the_analysis_rate(tmp_path: Path) -> None:
    path = tmp_path / "short.mp4"
    render_scene(path, SceneSpec(seconds=2, seed=4))
    frames: list[CapturedFrame] = []
    statuses: list[StatusChange] = []
    stream = CameraStream("file", str(path), StreamSettings(), 5, "file")
    stream.run(frames.append, statuses.append, threading.Event())
    assert stream.finished and stream.frames_in == 20
    assert [f.seq for f in frames] == list(range(10)) and [f.restart for f in frames[:2]] == [True, False]
    assert frames[-1].captured - frames[0].captured > 1.5  # replayed in real time
    assert [s.online for s in statuses] == [True]


# --- the cameras config ---------------------------------------------------------------------------------


def test_example_config_is_valid() -> None:
    cfg = load_cameras_config(EXAMPLE)
    assert [c.source_kind for c in cfg.cameras] == ["stream", "stream", "device"]
    entrance = cfg.cameras[0]
    from vidgru.config import EventsConfig

    merged = cfg.events_for(entrance, EventsConfig(threshold=1.5, merge_gap_s=2.0))
    assert merged.threshold == 2.0 and merged.merge_gap_s == 2.0
    assert cfg.analysis_fps_for(cfg.cameras[1], None) == 5 and cfg.analysis_fps_for(entrance, None) == 10


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("model: m\ncameras:\n  - id: a\n    urll: rtsp://x/y\n", "unknown key 'cameras[0].urll'"),
        ("model: m\ncameras:\n  - id: a\n", "cameras[0].url is required"),
        ("cameras:\n  - id: a\n    url: rtsp://x/y\n", "cameras[0].model"),
        ("model: m\ncameras:\n  - {id: a, url: rtsp://x}\n  - {id: a, url: rtsp://y}\n", "cameras[1].id"),
        (
            "model: m\ncameras:\n  - {id: a, url: rtsp://x, roi: [[[0, 0], [2, 0], [1, 1]]]}\n",
            "cameras[0].roi",
        ),
        ("model: m\ncameras:\n  - {id: a, url: missing.mp4}\n", "cameras[0].url"),
        (
            "model: m\nstream:\n  stall_timeout_s: -1\ncameras:\n  - {id: a, url: 0}\n",
            "stream.stall_timeout_s",
        ),
        ("model: m\ncameras: []\n", "cameras"),
    ],
    ids=[
        "unknown-key",
        "missing-url",
        "no-model",
        "duplicate-id",
        "roi-outside",
        "missing-file",
        "bad-timeout",
        "none",
    ],
)
def test_bad_cameras_config_names_the_key(text: str, needle: str, tmp_path: Path) -> None:
    path = tmp_path / "cams.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_cameras_config(path)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_watch_bad_config_is_one_line(tmp_path: Path, model_dir: Path) -> None:
    assert "Example: vidgru watch --config" in run_cli("watch", "--help").stdout
    path = tmp_path / "cams.yaml"
    path.write_text(
        f"model: {model_dir}\ncameras:\n  - id: a\n    url: rtsp://127.0.0.1:1/x\n    treshold: 2\n"
    )
    assert_one_line_error(run_cli("watch", "--config", str(path)), 2, "unknown key 'cameras[0].treshold'")
    path.write_text("cameras:\n  - id: a\n    url: rtsp://127.0.0.1:1/x\n    model: nowhere\n")
    assert_one_line_error(run_cli("watch", "--config", str(path)), 6, "cameras[0].model", "does not exist")


# --- the whole command ------------------------------------------------------------------------------------


@pytest.mark.slow  # about a minute: the 10 s outage, and the clip played twice
def test_watch_survives_a_server_restart_and_a_dead_camera(
    rtsp: RtspServer,
    live_clip: tuple[Path, list[list[int]]],
    offline: tuple[np.ndarray, np.ndarray, dict],
    model_dir: Path,
    tmp_path: Path,
) -> None:
    """Real RTSP server, real subprocess: start/end for the intruder; the server killed for 10 s gives
    camera_offline then camera_online and scoring resumes in the same process; killed reader processes
    and a killed CNN actor are restarted; a dead second camera disturbs nothing; SIGTERM ends the open
    event and exits 0."""
    (lo, hi), period = live_clip[1][0], 200  # the server loops the 200-frame clip
    config = tmp_path / "cams.yaml"
    cameras = {
        "model": str(model_dir),
        "stream": {"stall_timeout_s": 3, "open_timeout_s": 3, "backoff_initial_s": 0.5, "backoff_max_s": 2},
        "ray": {"num_cpus": 2},
        "cameras": [
            {"id": "live", "url": rtsp.url("live"), "events": offline[2]},
            {"id": "dead", "url": f"rtsp://127.0.0.1:{free_port()}/none"},
        ],
    }
    config.write_text(yaml.safe_dump(cameras))
    events, scores = tmp_path / "events.jsonl", tmp_path / "scores.csv"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vidgru",
            "watch",
            "--config",
            str(config),
            "--events",
            str(events),
            "--scores",
            str(scores),
            "--status-every",
            "2",
            "--duration",
            "240",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    try:

        def live(records: list[dict], kind: str, after: str = "") -> list[dict]:
            return [
                r for r in records if r.get("camera") == "live" and r["type"] == kind and r["emitted"] > after
            ]

        records = wait_for(events, lambda rs: live(rs, "end"), 120, proc)
        (start,), (end,) = live(records, "start"), live(records, "end")
        assert start["id"] == end["id"]
        assert start["start_frame"] % period < hi and end["end_frame"] % period >= lo
        assert start["emitted"] < end["emitted"]

        rtsp.kill()
        killed = time.time()
        time.sleep(10)
        rtsp.start()
        # Counted from the intruder's end: on a busy machine the first open may time out, and that is
        # reported too (offline, then online) before any of this.
        records = wait_for(events, lambda rs: live(rs, "camera_online", end["emitted"]), 60, proc)
        offline, online = live(records, "camera_offline", end["emitted"]), live(records, "camera_online")
        assert len(offline) == 1 and offline[0]["emitted"] < online[-1]["emitted"]
        assert iso_utc(killed - 1) < offline[0]["time"] < iso_utc(killed + 10)

        # Scoring resumes without restarting vidgru.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and captured_after(scores, killed + 10) < 20:
            time.sleep(0.5)
        assert captured_after(scores, killed + 10) >= 20

        # The readers' processes die (as when FFmpeg crashes on a bad stream): Ray restarts them.
        processes = descendants(proc.pid)
        readers = [pid for pid, cmd in processes.items() if cmd.startswith("ray::CameraReader")]
        assert len(readers) == 2, processes
        for pid in readers:
            os.kill(pid, signal.SIGKILL)
        resumed = online[-1]["emitted"]
        records = wait_for(events, lambda rs: live(rs, "camera_online", resumed), 60, proc)
        assert "reader process died" in live(records, "camera_offline", resumed)[0]["message"]
        back = live(records, "camera_online", resumed)[0]

        # The CNN actor's process dies: Ray restarts it, its lost call runs again, scoring goes on.
        actors = [pid for pid, cmd in descendants(proc.pid).items() if cmd.startswith("ray::FeatureActor")]
        assert len(actors) == 1, descendants(proc.pid)
        os.kill(actors[0], signal.SIGKILL)
        cnn_killed = time.time()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and captured_after(scores, cnn_killed + 2) < 20:
            time.sleep(0.5)
        assert captured_after(scores, cnn_killed + 2) >= 20
        assert proc.poll() is None

        # The replayed intruder opens another event. SIGTERM while it is open ends it.
        records = wait_for(events, lambda rs: len(live(rs, "start")) == 2, 60, proc)
        second = live(records, "start")[1]
        assert second["emitted"] > back["emitted"] and len(live(records, "end")) == 1
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0, stderr
    finally:
        if proc.poll() is None:
            proc.kill()
    records = read_records(events)
    ends = {r["id"]: r for r in live(records, "end")}
    assert second["id"] in ends and ends[second["id"]]["emitted"] > second["emitted"]
    assert {r["id"] for r in live(records, "start")} == set(ends)
    dead = {r["type"] for r in records if r["camera"] == "dead"}
    assert dead == {"camera_offline"}  # once at start, once more when its restarted reader found it dead
    assert "live: online" in stderr and "fps analysed" in stderr


def test_cameras_must_share_the_cnn(model_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(model_dir, other)
    config = yaml.safe_load((other / "config.yaml").read_text())
    config["features"]["layers"] -= 1
    (other / "config.yaml").write_text(yaml.safe_dump(config))
    cfg = CamerasConfig.model_validate(
        {
            "model": str(model_dir),
            "cameras": [{"id": "a", "url": 0}, {"id": "b", "url": 1, "model": str(other)}],
        }
    )
    with pytest.raises(ConfigError, match=r"cameras\[1\]\.model: .* different backbone or grid"):
        plan_cameras(cfg, None)
    config["features"]["layers"] += 1
    config["features"]["interval"] += 1  # the CNN cadence may differ
    (other / "config.yaml").write_text(yaml.safe_dump(config))
    assert [p.camera.id for p in plan_cameras(cfg, None)] == ["a", "b"]
