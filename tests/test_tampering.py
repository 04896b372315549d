"""Camera tampering: a reference fitted on a generated normal clip, and tampering injected into another
generated clip of the same camera, written to MP4 and decoded again, as footage reaches the detector."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import jsonschema
import numpy as np
import pytest
from pydantic import ValidationError

from vidgru.config import TamperingConfig, VidgruConfig
from vidgru.decode import video_frames
from vidgru.errors import ModelError, TrainingError
from vidgru.schemas import validate_record
from vidgru.synthetic import SceneSpec, inject_tampering, render_scene
from vidgru.tampering import (
    TamperChange,
    TamperDetector,
    TamperReference,
    fit_reference,
    tamper_record,
)

FPS = 10.0
START = 40  # frame at which tampering is injected; the test clip has 120


def through_mp4(frames: list[np.ndarray], path: Path) -> list[np.ndarray]:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (w, h))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return video_frames(path)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("tampering")
    render_scene(root / "normal_a.mp4", SceneSpec(seconds=15, seed=1))
    render_scene(root / "normal_b.mp4", SceneSpec(seconds=10, seed=3))
    render_scene(root / "live.mp4", SceneSpec(seconds=12, seed=2))
    normal = [video_frames(root / "normal_a.mp4"), video_frames(root / "normal_b.mp4")]
    return {
        "root": root,
        "reference": fit_reference(normal, TamperingConfig()),
        "live": video_frames(root / "live.mp4"),
    }


def run(
    frames: list[np.ndarray], reference: TamperReference, reset_at: int | None = None
) -> list[TamperChange]:
    detector, changes = TamperDetector(reference, TamperingConfig(), FPS), []
    for index, frame in enumerate(frames):
        if index == reset_at:
            detector.reset()
        changes += detector.push(frame, index)
    return changes + detector.close()


def tampered(scene: dict, name: str, kind: str, duration: int | None, **kw) -> list[np.ndarray]:
    frames = inject_tampering(scene["live"], kind, START, duration, seed=4, **kw)  # type: ignore[arg-type]
    return through_mp4(frames, scene["root"] / f"{name}.mp4")


def only_episode(changes: list[TamperChange], kind: str) -> TamperChange:
    starts = [c for c in changes if c.type == "start"]
    assert [c.episode.kind for c in starts] == [kind], [
        (c.episode.kind, c.episode.start_frame) for c in starts
    ]
    ends = [c for c in changes if c.type == "end"]
    assert [c.episode for c in ends] == [starts[0].episode]
    episode = starts[0].episode
    # Raised within 2 s of the injection, and not before it.
    assert START <= episode.confirmed_frame <= START + 2 * FPS
    assert START - 1 <= episode.start_frame <= episode.confirmed_frame
    return starts[0]


def test_untouched_clip_raises_nothing(scene: dict) -> None:
    assert run(scene["live"], scene["reference"]) == []


def test_frozen_clip_raises_freeze(scene: dict) -> None:
    change = only_episode(run(tampered(scene, "frozen", "freeze", 30), scene["reference"]), "freeze")
    # Frames 40-69 repeat frame 39; the episode ends with them, not with the clip.
    assert change.episode.end_frame is not None and START + 25 <= change.episode.end_frame <= START + 30
    assert change.episode.score > 0.5


@pytest.mark.parametrize("style", ["dark", "blob"])
def test_covered_clip_raises_cover(scene: dict, style: str) -> None:
    changes = run(tampered(scene, f"covered_{style}", "cover", 20, cover_style=style), scene["reference"])
    change = only_episode(changes, "cover")
    assert change.episode.end_frame is not None and change.episode.end_frame <= START + 21
    assert change.episode.score >= TamperingConfig().cover_area


def test_shifted_clip_raises_shift_held_to_the_end(scene: dict) -> None:
    frames = tampered(scene, "shifted", "shift", None)
    change = only_episode(run(frames, scene["reference"]), "shift")
    assert change.episode.end_frame == len(frames) - 1
    assert change.episode.score == pytest.approx(0.15, abs=0.02)  # displacement, fraction of the width


def test_a_small_shift_is_not_a_shift(scene: dict) -> None:
    frames = inject_tampering(scene["live"], "shift", START, None, shift_fraction=0.01)
    assert run(frames, scene["reference"]) == []


def test_reset_keeps_an_open_episode_and_forgets_the_previous_frame(scene: dict) -> None:
    frames = inject_tampering(scene["live"], "freeze", START, 40)
    changes = run(frames, scene["reference"], reset_at=START + 25)
    starts = [c for c in changes if c.type == "start"]
    # One episode across the reset (no second start), ended when the picture moved again.
    assert [c.episode.kind for c in starts] == ["freeze"]
    assert starts[0].episode.end_frame == START + 39


def test_reference_round_trip(scene: dict, tmp_path: Path) -> None:
    reference: TamperReference = scene["reference"]
    reference.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tampering.json", "tampering_background.png"]
    loaded = TamperReference.load(tmp_path)
    assert loaded.size == reference.size and loaded.frames == reference.frames
    assert np.array_equal(loaded.background, reference.background)
    assert np.allclose(loaded.detail_low, reference.detail_low, atol=1e-4)
    assert (loaded.change_low, loaded.shift_high, loaded.response_low) == (
        reference.change_low,
        reference.shift_high,
        reference.response_low,
    )
    frames = tampered(scene, "roundtrip", "cover", 20)
    assert [(c.type, c.episode) for c in run(frames, loaded)] == [
        (c.type, c.episode) for c in run(frames, reference)
    ]


def test_missing_or_broken_reference_is_a_model_error(scene: dict, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no tampering reference"):
        TamperReference.load(tmp_path)
    scene["reference"].save(tmp_path)
    meta = json.loads((tmp_path / "tampering.json").read_text())
    (tmp_path / "tampering.json").write_text(json.dumps({**meta, "detail_low": [[1.0]]}))
    with pytest.raises(ModelError, match="do not match"):
        TamperReference.load(tmp_path)
    (tmp_path / "tampering.json").write_text("{")
    with pytest.raises(ModelError, match="unreadable"):
        TamperReference.load(tmp_path)


def test_too_little_footage_is_a_training_error(scene: dict) -> None:
    with pytest.raises(TrainingError, match="too few"):
        fit_reference([scene["live"][:5]], TamperingConfig())


def test_records_validate_against_the_schema(scene: dict) -> None:
    frames = tampered(scene, "records", "freeze", 30)
    detector = TamperDetector(scene["reference"], TamperingConfig(), FPS)
    records, episodes = [], []

    def clock(frame: int) -> float:
        return round(frame / FPS, 3)

    for index, frame in enumerate(frames):
        for change in detector.push(frame, index):
            kind = "camera_tampering" if change.type == "start" else "camera_tampering_end"
            records.append(tamper_record("cam1", change.episode, clock, kind))
            episodes.append(change.episode)
    start, end = records
    assert (start["type"], end["type"]) == ("camera_tampering", "camera_tampering_end")
    assert start["id"] == end["id"] and start["kind"] == "freeze" and start["reason"] == "tampering"
    assert start["end_frame"] is None and start["end_time"] is None
    assert end["end_time"] == pytest.approx(end["end_frame"] / FPS)
    # Live cameras' clocks give ISO-8601 UTC times.
    live = tamper_record(
        "cam1", episodes[-1], lambda f: f"2026-11-25T10:00:{f % 60:02d}.000Z", "camera_tampering_end"
    )
    for record in [*records, live]:
        validate_record(json.loads(json.dumps(record)))
    with pytest.raises(jsonschema.ValidationError):
        validate_record({**start, "kind": "smudge"})
    with pytest.raises(jsonschema.ValidationError):
        validate_record({**end, "end_frame": None, "end_time": None})


def test_ids_are_stable_and_an_open_episode_has_no_end_record(scene: dict) -> None:
    frames = tampered(scene, "ids", "shift", None)
    first = next(c for c in run(frames, scene["reference"]) if c.type == "start").episode
    again = next(c for c in run(frames, scene["reference"]) if c.type == "start").episode
    clock = lambda f: f / FPS  # noqa: E731
    assert tamper_record("cam1", first, clock)["id"] == tamper_record("cam1", again, clock)["id"]
    assert tamper_record("cam1", first, clock)["id"] != tamper_record("cam2", first, clock)["id"]
    first.end_frame = None
    with pytest.raises(ValueError, match="has ended"):
        tamper_record("cam1", first, clock, "camera_tampering_end")


def test_inject_tampering_shapes(scene: dict) -> None:
    frames = scene["live"][:60]
    frozen = inject_tampering(frames, "freeze", 20, 10)
    assert all(np.array_equal(frozen[t], frames[19]) for t in range(20, 30))
    assert np.array_equal(frozen[30], frames[30]) and len(frozen) == len(frames)
    shifted = inject_tampering(frames, "shift", 20, None, ramp=1, seed=4)
    dx = round(0.15 * frames[0].shape[1])
    (got, _), _ = cv2.phaseCorrelate(
        cv2.cvtColor(frames[40], cv2.COLOR_BGR2GRAY).astype(np.float32),
        cv2.cvtColor(shifted[40], cv2.COLOR_BGR2GRAY).astype(np.float32),
    )
    assert abs(abs(got) - dx) < 1.0
    dark = inject_tampering(frames, "cover", 20, 5)
    assert float(np.mean(dark[22])) < 40 and np.array_equal(dark[25], frames[25])
    with pytest.raises(ValueError, match="unknown tampering kind"):
        inject_tampering(frames, "smudge", 20, 5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="outside"):
        inject_tampering(frames, "freeze", 70, 5)


def test_config_section() -> None:
    assert VidgruConfig().tampering.enabled
    with pytest.raises(ValidationError, match="size"):
        TamperingConfig(size=(8, 8))
    with pytest.raises(ValidationError):
        TamperingConfig(freeze_ratio=1.5)
