"""Tampering through the real commands: `vidgru train` fits the reference, `vidgru analyze` reports it."""

from __future__ import annotations

import json
from pathlib import Path

import cv2

from tests.conftest import run_cli
from vidgru.decode import FrameReader
from vidgru.schemas import validate_record
from vidgru.sources import Clip
from vidgru.synthetic import inject_tampering


def _write(frames: list, path: Path, fps: float) -> Path:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def test_model_dir_holds_the_tampering_reference(model_dir: Path) -> None:
    assert (model_dir / "tampering.json").is_file()
    assert (model_dir / "tampering_background.png").is_file()


def test_analyze_reports_a_frozen_picture_and_nothing_on_the_untouched_clip(
    clips: dict, model_dir: Path, tmp_path: Path
) -> None:
    normal = sorted(Path(clips["normal"]).glob("*.mp4"))[0]
    reader = FrameReader(Clip(normal.stem, normal, "video"))
    frames = [frame for _, frame in reader]
    frozen = _write(
        inject_tampering(frames, "freeze", start=40, duration=30), tmp_path / "frozen.avi", reader.fps
    )
    untouched = _write(frames, tmp_path / "untouched.avi", reader.fps)
    events = tmp_path / "events.jsonl"
    result = run_cli(
        "analyze", str(frozen), str(untouched), "--model", str(model_dir), "--events", str(events)
    )
    assert result.returncode == 0, result.stderr
    assert "1 camera tampering episode(s)" in result.stdout
    records = [json.loads(line) for line in events.read_text().splitlines()]
    for record in records:
        validate_record(record)
    tampering = [r for r in records if r["type"] == "camera_tampering"]
    assert [(r["camera"], r["kind"], r["reason"]) for r in tampering] == [("frozen", "freeze", "tampering")]
    # Raised within 2 s of the freeze's start, and ended by its end.
    assert 40 <= tampering[0]["start_frame"] <= 40 + 2 * reader.fps
    assert tampering[0]["end_frame"] <= 70


def test_watch_session_raises_freeze_start_then_end_with_iso_times(
    clips: dict, model_dir: Path, tmp_path: Path
) -> None:
    """The live path: a frozen stretch of a camera gives camera_tampering when confirmed and
    camera_tampering_end when the picture moves again, same id, ISO-8601 UTC times."""
    import time

    from vidgru.config.cameras import CamerasConfig
    from vidgru.features import FeatureExtractor
    from vidgru.live import FramePrep, WatchSession, iso_utc
    from vidgru.model_store import load_model
    from vidgru.sinks import JsonlSink
    from vidgru.streams import CapturedFrame
    from vidgru.watching import plan_cameras

    normal = sorted(Path(clips["normal"]).glob("*.mp4"))[0]
    frames = [f for _, f in FrameReader(Clip(normal.stem, normal, "video"))]
    frames = inject_tampering(frames, "freeze", start=40, duration=30)
    model = load_model(model_dir)
    cfg = CamerasConfig.model_validate({"model": str(model_dir), "cameras": [{"id": "cam", "url": "x"}]})
    (plan,) = plan_cameras(cfg, tmp_path / "thumbs")
    extractor = FeatureExtractor(model.config.features, model.config.motion.grid)
    prep = FramePrep("cam", model.config.motion, model.config.features)
    sink = JsonlSink(tmp_path / "events.jsonl")
    session = WatchSession({"cam": plan.scorer}, lambda b: extractor(b.cnn_input), [sink])
    start = time.time() - 600.0
    live = [prep(CapturedFrame(i, start + i / 10, image, i == 0)) for i, image in enumerate(frames)]
    for lo in range(0, len(live), 8):
        session.process({"cam": live[lo : lo + 8]})
    session.close()
    sink.close()
    records = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    for record in records:
        validate_record(record)
    tampering = [r for r in records if r["type"].startswith("camera_tampering")]
    assert [(r["type"], r["kind"]) for r in tampering] == [
        ("camera_tampering", "freeze"),
        ("camera_tampering_end", "freeze"),
    ]
    opened, ended = tampering
    assert opened["id"] == ended["id"]
    assert 40 <= opened["start_frame"] <= 60 and opened["start_time"] == iso_utc(
        start + opened["start_frame"] / 10
    )
    assert ended["end_frame"] <= 75
