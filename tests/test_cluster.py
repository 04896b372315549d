"""Scale-out on a real local Ray cluster (tests/cluster.py): a head and two worker nodes on this machine.

`vidgru analyze --address` splits six generated videos into segment tasks over the nodes; one worker node
is SIGKILLed mid-run, and every clip still ends scored exactly once. Then the driver itself is SIGKILLed
mid-run and the same command run again: it resumes from the manifest, and the outputs are byte for byte
those of the first run.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import LocalCluster
from vidgru.synthetic import Intruder, SceneSpec, render_scene

pytestmark = pytest.mark.slow

N_CLIPS, SECONDS, FPS = 6, 20, 10
BUSY = ("ray::decode_segment", "ray::FeatureActor")


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    root = Path(tempfile.mkdtemp(prefix="vgc", dir="/tmp"))
    cluster = LocalCluster(root)
    try:
        cluster.start_head()
        cluster.wait_for_nodes(1)
        # One at a time: on a loaded 2-core machine a raylet starting beside another can time out.
        cluster.add_worker("node_a", cpus=2)
        cluster.wait_for_nodes(2)
        cluster.add_worker("node_b", cpus=2)
        cluster.wait_for_nodes(3)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def footage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("footage")
    for i in range(N_CLIPS):
        intruders = (Intruder(6, 3),) if i % 2 else ()
        render_scene(root / f"cam_{i}.mp4", SceneSpec(seconds=SECONDS, seed=40 + i, intruders=intruders))
    return root


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "run.yaml"
    # Segments of 64 frames: each 200-frame video is three tasks (0-63, 64-127, 128-end).
    config.write_text("events:\n  threshold: 1.0\nray:\n  segment_frames: 64\n")
    return config


def _start(cluster: LocalCluster, *args: str, log: Path) -> subprocess.Popen[bytes]:
    """`vidgru analyze --address` as a driver of ``cluster``, in its own process group."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "vidgru", "analyze", *args, "--address", cluster.address],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=cluster.env,
            start_new_session=True,
        )


def _committed(events: Path) -> list[dict]:
    manifest = events.with_name(f"{events.stem}.manifest")
    if not manifest.is_file():
        return []
    lines = [json.loads(line) for line in manifest.read_text().splitlines()[1:] if line.endswith("}")]
    return [line for line in lines if "clip" in line]


def _wait_for_commit(proc: subprocess.Popen[bytes], events: Path, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not _committed(events):
        assert proc.poll() is None, f"analyze ended before any clip completed:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, "no clip completed in time"
        time.sleep(0.2)


def _check_exactly_once(events: Path, scores: Path) -> None:
    with scores.open() as fh:
        rows = [(r["video"], int(r["frame"])) for r in csv.DictReader(fh)]
    per_clip = Counter(video for video, _ in rows)
    assert sorted(per_clip) == [f"cam_{i}" for i in range(N_CLIPS)]
    assert len(rows) == len(set(rows)) == N_CLIPS * SECONDS * FPS, "a frame scored twice or not at all"
    for video, n in per_clip.items():
        assert sorted(f for v, f in rows if v == video) == list(range(n)) and n == SECONDS * FPS
    records = [json.loads(line) for line in events.read_text().splitlines()]
    assert len({(r["id"], r["type"]) for r in records}) == len(records), "an event written twice"
    assert [c["clip"] for c in _committed(events)] == [f"cam_{i}" for i in range(N_CLIPS)]


def _without_media(events: Path) -> list[dict]:
    return [
        {k: v for k, v in json.loads(line).items() if k not in ("thumbnail", "clip")}
        for line in events.read_text().splitlines()
    ]


@pytest.fixture(scope="module")
def node_killed_run(
    model_dir: Path, footage: Path, cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    # (model_dir first: the model is trained, on a local Ray, before the cluster takes the cores.)
    out = tmp_path_factory.mktemp("node_killed")
    paths = {"events": out / "events.jsonl", "scores": out / "scores.csv", "log": out / "analyze.log"}
    proc = _start(
        cluster,
        str(footage),
        "--model",
        str(model_dir),
        "--events",
        str(paths["events"]),
        "--scores",
        str(paths["scores"]),
        "--config",
        str(_config(out)),
        log=paths["log"],
    )
    try:
        # Kill node_b while it runs a decode task or the CNN actor, so that killing it loses work. Watch from
        # the start: decoding runs ahead of the one CNN actor, so on these short clips node_b may have
        # finished all its decoding before the first clip is committed.
        deadline = time.monotonic() + 300
        while not any(t.startswith(BUSY) for t in cluster.node_processes("node_b")):
            assert proc.poll() is None, f"analyze ended early:\n{paths['log'].read_text()[-3000:]}"
            assert time.monotonic() < deadline, (
                "node_b ran no decode task or CNN actor: killing it tests nothing"
            )
            time.sleep(0.05)
        assert len(_committed(paths["events"])) < N_CLIPS, "the run was over before the node could be killed"
        cluster.kill_node("node_b")
        assert proc.wait(timeout=600) == 0, paths["log"].read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return paths


def test_worker_node_killed_mid_run_every_clip_scored_once(node_killed_run: dict[str, Path]) -> None:
    _check_exactly_once(node_killed_run["events"], node_killed_run["scores"])
    assert (
        f"analysed {N_CLIPS * SECONDS * FPS} frames of {N_CLIPS} clip(s)"
        in node_killed_run["log"].read_text()
    )


def test_driver_killed_mid_run_resumes_to_the_same_outputs(
    cluster: LocalCluster, footage: Path, model_dir: Path, node_killed_run: dict[str, Path], tmp_path: Path
) -> None:
    events, scores, log = tmp_path / "events.jsonl", tmp_path / "scores.csv", tmp_path / "analyze.log"
    args = (
        str(footage),
        "--model",
        str(model_dir),
        "--events",
        str(events),
        "--scores",
        str(scores),
        "--config",
        str(_config(tmp_path)),
    )
    proc = _start(cluster, *args, log=log)
    try:
        _wait_for_commit(proc, events, log)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_at_kill = len(_committed(events))
    assert 0 < done_at_kill < N_CLIPS

    rerun = _start(cluster, *args, log=log)
    assert rerun.wait(timeout=600) == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert f"{done_at_kill} clip(s) already complete" in text
    _check_exactly_once(events, scores)
    # the same frames, scores and events as the run that lost a node
    assert scores.read_bytes() == node_killed_run["scores"].read_bytes()
    assert _without_media(events) == _without_media(node_killed_run["events"])

    # and once complete, a third run has nothing left to do and changes nothing
    before = (events.read_bytes(), scores.read_bytes())
    third = _start(cluster, *args, log=log)
    assert third.wait(timeout=120) == 0, log.read_text()[-3000:]
    assert f"{N_CLIPS} clip(s) already complete" in log.read_text()
    assert (events.read_bytes(), scores.read_bytes()) == before


def test_without_an_address_a_local_ray_starts_beside_a_running_cluster(
    cluster: LocalCluster, footage: Path, model_dir: Path, tmp_path: Path
) -> None:
    """Where `ray start` left a cluster that Ray's own default would join (here found through RAY_TMPDIR),
    analyze without --address still starts its own local Ray with its own CPUs, as documented."""
    env = {**cluster.env, "RAY_TMPDIR": str(cluster.root)}  # Ray looks in $RAY_TMPDIR/ray
    assert (cluster.root / "ray" / "ray_current_cluster").is_file()
    config = tmp_path / "local.yaml"
    config.write_text("ray:\n  num_cpus: 1\n")
    clip, events = footage / "cam_1.mp4", tmp_path / "events.jsonl"
    args = ["analyze", str(clip), "--model", str(model_dir), "--events", str(events), "--config", str(config)]
    run = subprocess.run(
        [sys.executable, "-m", "vidgru", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"analysed {SECONDS * FPS} frames of 1 clip(s)" in run.stdout
