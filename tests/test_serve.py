"""`vidgru serve` over a real `vidgru analyze` run: the REST API with httpx against the server process,
the bearer token, thumbnails and clips, review marks and their export, and /metrics holding what the
analysing process counted."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import SERVE_TOKEN, run_cli
from tests.serve_process import ServeProcess
from tests.servers import free_port
from tests.test_cli import assert_one_line_error
from vidgru.events import camera_status_record
from vidgru.schemas import validate_record
from vidgru.serve.store import EventStore
from vidgru.tampering import TamperEpisode, tamper_record


def read_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def frame_scores(path: Path) -> dict[int, float]:
    with path.open() as fh:
        return {int(row["frame"]): float(row["score"]) for row in csv.DictReader(fh)}


def test_event_list_matches_the_run(analyzed: dict[str, Path], review_server: ServeProcess) -> None:
    records = read_records(analyzed["events"])
    with review_server.client() as client:
        page = client.get("/api/events").json()
        assert page["total"] == len(records)
        assert {e["id"] for e in page["events"]} == {r["id"] for r in records}
        assert all(e["camera"] == "intruder" and e["type"] == "end" for e in page["events"])
        # the intruders are fast walkers on a still background: their motion is what drives the score
        assert {e["reason"] for e in page["events"]} == {r["reason"] for r in records} == {"speed"}
        # Pages of one event each cover the whole list, newest (latest start in the video) first.
        pages = [
            client.get("/api/events", params={"limit": 1, "offset": i}).json() for i in range(len(records))
        ]
        assert [p["events"][0]["id"] for p in pages] == [e["id"] for e in page["events"]]
        starts = [e["start_time"] for e in page["events"]]
        assert starts == sorted(starts, reverse=True)
        # Filters.
        top = max(r["peak_score"] for r in records)
        assert client.get("/api/events", params={"min_score": top}).json()["total"] == 1
        assert client.get("/api/events", params={"min_score": top + 1}).json()["total"] == 0
        assert client.get("/api/events", params={"camera": "nobody"}).json()["total"] == 0
        assert client.get("/api/events", params={"type": "start"}).json()["total"] == 0  # batch: only 'end'
        first = min(records, key=lambda r: r["start_time"])
        after = client.get("/api/events", params={"since": first["end_time"] + 0.05}).json()
        assert first["id"] not in {e["id"] for e in after["events"]}
        assert after["total"] == len(records) - 1
        # Live (ISO) time bounds select no batch event.
        assert client.get("/api/events", params={"since": "2020-01-01T00:00:00Z"}).json()["total"] == 0


def test_event_detail_has_the_run_s_scores_as_timeline(
    analyzed: dict[str, Path], review_server: ServeProcess
) -> None:
    scores = frame_scores(analyzed["scores"])
    records = read_records(analyzed["events"])
    with review_server.client() as client:
        for record in records:
            validate_record(record)
            detail = client.get(f"/api/events/{record['id']}").json()
            timeline = detail["timeline"]
            assert detail["record"]["peak_score"] == record["peak_score"]
            # It starts before the event, ends after it, and holds the frames' scores from scores.csv.
            assert timeline["t0"] < record["start_time"] and timeline["step"] == pytest.approx(0.1)
            first = round(timeline["t0"] / timeline["step"])
            assert first + len(timeline["scores"]) - 1 > record["end_frame"]
            for i, value in enumerate(timeline["scores"]):
                assert value == pytest.approx(scores[first + i], abs=1e-3)
            assert max(timeline["scores"]) >= record["peak_score"] - 1e-3


def test_bad_query_is_422_with_a_message(review_server: ServeProcess) -> None:
    with review_server.client() as client:
        for params, word in [
            ({"limit": "abc"}, "limit"),
            ({"limit": 0}, "limit"),
            ({"offset": -1}, "offset"),
            ({"min_score": "high"}, "min_score"),
            ({"type": "middle"}, "type"),
            ({"since": "yesterday"}, "ISO-8601"),
            ({"since": 5, "until": 1}, "swap"),
            ({"false_positive": "maybe"}, "false_positive"),
        ]:
            response = client.get("/api/events", params=params)
            assert response.status_code == 422, params
            assert word in response.json()["message"], response.json()


def test_unknown_event_is_404(review_server: ServeProcess) -> None:
    with review_server.client() as client:
        for path in (
            "/api/events/no-such-id",
            "/api/events/no-such-id/thumbnail.jpg",
            "/api/events/no-such-id/clip.mp4",
        ):
            response = client.get(path)
            assert response.status_code == 404
            assert "no-such-id" in response.json()["detail"]
        assert client.put("/api/events/no-such-id/review", json={"false_positive": True}).status_code == 404


def test_thumbnails_and_clips_are_the_run_s_files(
    analyzed: dict[str, Path], review_server: ServeProcess
) -> None:
    records = read_records(analyzed["events"])
    with review_server.client() as client:
        for record in records:
            response = client.get(f"/api/events/{record['id']}/thumbnail.jpg")
            assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
            on_disk = analyzed["root"] / record["thumbnail"]
            assert response.content == on_disk.read_bytes()
            image = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
            assert image is not None and image.shape[0] > 0
            clip = client.get(f"/api/events/{record['id']}/clip.mp4")
            assert clip.status_code == 200 and clip.headers["content-type"] == "video/mp4"
            assert clip.content[4:8] == b"ftyp"  # an MP4 container


def test_token_is_required_everywhere_but_healthz(
    review_server: ServeProcess, analyzed: dict[str, Path]
) -> None:
    event_id = read_records(analyzed["events"])[0]["id"]
    protected = [
        "/",
        "/api/events",
        f"/api/events/{event_id}",
        f"/api/events/{event_id}/thumbnail.jpg",
        "/api/cameras",
        "/metrics",
        "/docs",
        "/openapi.json",
        "/static/style.css",
    ]
    for token in (None, "wrong-token"):
        with review_server.client(token=token) as client:
            assert client.get("/healthz").status_code == 200
            for path in protected:
                response = client.get(path)
                assert response.status_code == 401, path
                assert response.headers["www-authenticate"] == "Bearer"
            assert (
                client.put(f"/api/events/{event_id}/review", json={"false_positive": True}).status_code == 401
            )
    with review_server.client() as client:
        assert all(client.get(path).status_code == 200 for path in protected)
        assert "vidgru events" in client.get("/docs").text
        assert client.get("/openapi.json").json()["info"]["title"] == "vidgru events"
    # A browser brings the token once in the URL; a cookie carries it afterwards, the URL loses it.
    with review_server.client(token=None) as browser:
        first = browser.get("/", params={"token": SERVE_TOKEN, "camera": "intruder"})
        assert first.status_code == 303 and first.headers["location"] == "/?camera=intruder"
        assert browser.get("/api/events").status_code == 200


def test_cameras_show_events_and_pipeline_metrics(
    analyzed: dict[str, Path], review_server: ServeProcess
) -> None:
    frames = len(frame_scores(analyzed["scores"]))
    with review_server.client() as client:
        cameras = {c["camera"]: c for c in client.get("/api/cameras").json()}
    assert set(cameras) == {"intruder"}
    camera = cameras["intruder"]
    assert camera["state"] == "unknown"  # a recorded video: no camera status records
    assert camera["events"] == len(read_records(analyzed["events"])) and camera["open_events"] == 0
    assert camera["frames_analysed"] == frames


def test_metrics_hold_the_run_s_counters(analyzed: dict[str, Path], review_server: ServeProcess) -> None:
    frames = len(frame_scores(analyzed["scores"]))
    records = read_records(analyzed["events"])
    with review_server.client() as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.text)}

    def value(sample_name: str, **labels: str) -> float:
        family = families[sample_name.removesuffix("_total").removesuffix("_count")]
        return sum(
            s.value for s in family.samples if s.name == sample_name and labels.items() <= s.labels.items()
        )

    assert value("vidgru_frames_decoded_total", camera="intruder") == frames
    assert value("vidgru_frames_analysed_total", camera="intruder") == frames
    assert value("vidgru_inference_frames_total", stage="gru") == frames
    assert families["vidgru_inference_seconds"].type == "histogram"
    assert value("vidgru_inference_seconds_count", stage="gru") == 1  # one clip, one GRU pass
    assert value("vidgru_events_emitted_total", sink="events_file", type="end") == len(records)
    assert value("vidgru_review_events", state="closed") == len(records)
    # Only vidgru's metrics: Ray's processes inherit the metrics folder and write theirs there too.
    assert all(name.startswith("vidgru_") for name in families)


def test_review_marks_are_stored_and_exported(
    analyzed: dict[str, Path], review_server: ServeProcess, tmp_path: Path
) -> None:
    records = read_records(analyzed["events"])
    marked = records[0]["id"]
    with review_server.client() as client:
        saved = client.put(f"/api/events/{marked}/review", json={"false_positive": True, "note": "a shadow"})
        assert saved.status_code == 200 and saved.json()["false_positive"] is True
        assert client.get(f"/api/events/{marked}").json()["review"]["note"] == "a shadow"
        only = client.get("/api/events", params={"false_positive": "true"}).json()
        assert [e["id"] for e in only["events"]] == [marked]
        others = client.get("/api/events", params={"false_positive": "false"}).json()
        assert marked not in {e["id"] for e in others["events"]} and others["total"] == len(records) - 1
        metrics = client.get("/metrics").text
        assert "vidgru_review_false_positives 1.0" in metrics
    marks = review_server.args[review_server.args.index("--marks") + 1]
    base = ["events", "export", "--events", str(analyzed["events"]), "--marks", marks]
    out = tmp_path / "reviewed.csv"
    result = run_cli(*base, "--format", "csv", "--out", str(out))
    assert result.returncode == 0, result.stderr
    rows = {r["id"]: r for r in csv.DictReader(out.open())}
    assert set(rows) == {r["id"] for r in records}
    assert rows[marked]["false_positive"] == "true" and rows[marked]["note"] == "a shadow"
    assert all(rows[r["id"]]["false_positive"] == "" for r in records[1:])
    result = run_cli(*base)  # JSONL on stdout
    assert result.returncode == 0, result.stderr
    exported = {r["id"]: r for r in read_records_text(result.stdout)}
    assert exported[marked]["review"]["false_positive"] is True
    assert exported[marked]["peak_score"] == records[0]["peak_score"] and "timeline" in exported[marked]
    with review_server.client() as client:
        assert client.delete(f"/api/events/{marked}/review").status_code == 204
        assert client.get(f"/api/events/{marked}").json()["review"] is None


def read_records_text(text: str) -> list[dict]:
    return [json.loads(line) for line in io.StringIO(text) if line.strip()]


def test_no_token_set_means_open(analyzed: dict[str, Path], tmp_path: Path) -> None:
    server = ServeProcess(
        ["--events", str(analyzed["events"]), "--marks", str(tmp_path / "m.sqlite")],
        free_port(),
        cwd=analyzed["root"],
    )
    server.start()
    try:
        with server.client(token=None) as client:
            assert client.get("/api/events").json()["total"] == len(read_records(analyzed["events"]))
            # Without a metrics folder /metrics still answers, with the review's own gauges.
            names = {f.name for f in text_string_to_metric_families(client.get("/metrics").text)}
            assert "vidgru_review_events" in names and "vidgru_frames_decoded" not in names
    finally:
        server.stop()


def test_serve_errors_are_one_line(analyzed: dict[str, Path], tmp_path: Path) -> None:
    result = run_cli("serve", "--events", str(tmp_path / "nowhere" / "events.jsonl"))
    assert_one_line_error(result, 3, "does not exist")
    result = run_cli("serve")
    assert_one_line_error(result, 3, "--events")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--events", str(analyzed["events"]), "--port", str(port))
    assert_one_line_error(result, 2, "another --port")
    bad = tmp_path / "bad.yaml"
    bad.write_text("serve:\n  prot: 80\n")
    assert_one_line_error(run_cli("serve", "--config", str(bad)), 2, "serve.prot")
    result = run_cli(
        "events", "export", "--events", str(analyzed["events"]), "--marks", str(tmp_path / "x.sqlite")
    )
    assert_one_line_error(result, 3, "no review marks file")


def test_store_follows_growing_and_rewritten_files(analyzed: dict[str, Path], tmp_path: Path) -> None:
    """A live watch appends to its file and analyze rewrites it: the store follows both."""
    folder = tmp_path / "live"
    folder.mkdir()
    events = folder / "events.jsonl"
    shutil.copy(analyzed["events"], events)
    store = EventStore([folder])
    count = len(store.all())
    assert count == len(read_records(analyzed["events"]))
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    another = json.dumps({**read_records(events)[0], "id": "another-event"})
    with events.open("a") as fh:
        fh.write(json.dumps(camera_status_record("cam9", False, stamp, "stalled")) + "\n")
        fh.write("not json\n")
        fh.write(another[:40])  # a line still being written
    cameras = {c.camera: c for c in store.cameras()}
    assert cameras["cam9"].state == "offline" and cameras["cam9"].message == "stalled"
    assert len(store.all()) == count and store.skipped_lines == 1
    with events.open("a") as fh:
        fh.write(another[40:] + "\n")
        fh.write(json.dumps(camera_status_record("cam9", True, stamp.replace(".000Z", ".500Z"))) + "\n")
    assert {c.camera: c.state for c in store.cameras()}["cam9"] == "online"
    assert store.get("another-event") is not None and len(store.all()) == count + 1
    events.write_text(events.read_text().splitlines()[0] + "\n")  # rewritten, shorter
    assert len(store.all()) == 1 and "cam9" not in {c.camera for c in store.cameras()}


def test_media_is_served_only_from_the_event_folders(analyzed: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "served"
    folder.mkdir()
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(b"not for you")
    record = read_records(analyzed["events"])[0]
    thumb = folder / "events_thumbnails" / "peak.jpg"
    thumb.parent.mkdir()
    shutil.copy(analyzed["root"] / record["thumbnail"], thumb)
    (folder / "link.jpg").symlink_to(outside)
    lines = []
    for i, path in enumerate(
        [str(thumb), "../secret.jpg", str(outside), "link.jpg", "events_thumbnails/peak.jpg"]
    ):
        lines.append(json.dumps({**record, "id": f"e{i}", "thumbnail": path}))
    (folder / "events.jsonl").write_text("\n".join(lines) + "\n")
    store = EventStore([folder / "events.jsonl"])
    assert store.media("e0", "thumbnail") == thumb.resolve()
    assert store.media("e1", "thumbnail") is None  # ../ out of the folder
    assert store.media("e2", "thumbnail") is None  # absolute path elsewhere
    assert store.media("e3", "thumbnail") is None  # a link that leads out
    assert store.media("e4", "thumbnail") == thumb.resolve()  # relative to the events file


LIVE_CAMERA = """
import sys, time
from vidgru import telemetry
telemetry.enable()
cam = telemetry.camera("cam7")
cam.up(True)
base = float(sys.argv[1])
for i in range(20):  # 10 frames/s, each scored 50 ms after capture
    cam.analysed(captured=base + i * 0.1, scored=base + i * 0.1 + 0.05)
cam.reader_totals(frames_in=25, dropped=3)
cam.reader_totals(frames_in=30, dropped=5)
with telemetry.inference_timer("cnn", frames=8):
    time.sleep(0.01)
"""


def test_live_camera_metrics_reach_cameras_and_metrics(analyzed: dict[str, Path], tmp_path: Path) -> None:
    """What `vidgru watch` calls (vidgru.telemetry.camera) in one process shows in `vidgru serve`'s
    /api/cameras and /metrics in another, through the metrics folder."""
    metrics = tmp_path / "metrics"
    base = time.time() - 5
    env = {**os.environ, "VIDGRU_METRICS_DIR": str(metrics)}
    subprocess.run([sys.executable, "-c", LIVE_CAMERA, str(base)], check=True, env=env, timeout=60)
    server = ServeProcess(
        [
            "--events",
            str(analyzed["events"]),
            "--metrics-dir",
            str(metrics),
            "--marks",
            str(tmp_path / "m.sqlite"),
        ],
        free_port(),
        cwd=analyzed["root"],
    )
    server.start()
    try:
        with server.client(token=None) as client:
            cameras = {c["camera"]: c for c in client.get("/api/cameras").json()}
            text = client.get("/metrics").text
    finally:
        server.stop()
    cam = cameras["cam7"]
    assert cam["state"] == "online" and cam["up"] is True  # no status record yet: the gauge says
    assert cam["fps"] == pytest.approx(10.0, rel=1e-3)
    assert cam["frames_analysed"] == 20 and cam["frames_dropped"] == 5
    last = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(base + 1.9))
    assert cam["last_frame"].startswith(last)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples
    }
    assert samples[("vidgru_frames_decoded_total", (("camera", "cam7"),))] == 30
    assert samples[("vidgru_capture_to_score_seconds_count", (("camera", "cam7"),))] == 20
    assert samples[("vidgru_inference_seconds_count", (("stage", "cnn"),))] == 1
    assert samples[("vidgru_inference_frames_total", (("stage", "cnn"),))] == 8
    assert samples[("vidgru_camera_up", (("camera", "cam7"),))] == 1


def test_tampering_episodes_are_listed_with_their_kind(analyzed: dict[str, Path], tmp_path: Path) -> None:
    """A live camera's tampering (start, then end, one id) and a batch run's (one record) beside the events."""
    folder = tmp_path / "tamper"
    folder.mkdir()
    events = folder / "events.jsonl"
    shutil.copy(analyzed["events"], events)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())

    def clock(frame: int) -> str:
        return f"{stamp}.{frame:03d}Z"

    live = TamperEpisode("cover", start_frame=10, end_frame=None, score=0.9, confirmed_frame=18)
    batch = TamperEpisode("freeze", start_frame=40, end_frame=70, score=0.0, confirmed_frame=50)
    with events.open("a") as fh:
        fh.write(json.dumps(tamper_record("cam7", live, clock)) + "\n")
        fh.write(json.dumps(tamper_record("intruder", batch, lambda f: round(f / 10, 3))) + "\n")
    store = EventStore([folder])
    cam7 = {c.camera: c for c in store.cameras()}["cam7"]
    assert (cam7.events, cam7.open_events) == (1, 1)  # the cover is still going
    with events.open("a") as fh:
        live.end_frame = 30
        fh.write(json.dumps(tamper_record("cam7", live, clock, "camera_tampering_end")) + "\n")
    assert {c.camera: c for c in store.cameras()}["cam7"].open_events == 0

    server = ServeProcess(
        ["--events", str(events), "--marks", str(tmp_path / "m.sqlite")], free_port(), cwd=folder
    )
    server.start()
    try:
        with server.client(token=None) as client:
            listed = client.get("/api/events", params={"type": "camera_tampering"}).json()["events"]
            assert [(e["camera"], e["kind"], e["reason"]) for e in listed] == [
                ("intruder", "freeze", "tampering")
            ]
            ended = client.get("/api/events", params={"type": "camera_tampering_end"}).json()["events"]
            assert [(e["camera"], e["kind"], e["end_frame"]) for e in ended] == [("cam7", "cover", 30)]
            everything = client.get("/api/events").json()["total"]
            assert everything == len(read_records(analyzed["events"])) + 2
            page = client.get("/", params={"type": "camera_tampering"}).text
            assert "tampering: freeze" in page
    finally:
        server.stop()
