"""Score timelines (vidgru/timeline.py): the span around an event, binning of long spans, live history."""

from __future__ import annotations

import numpy as np

from vidgru.schemas import validate_record
from vidgru.timeline import ScoreHistory, build_timeline


def seconds(fps: float):
    return lambda frame: round(frame / fps, 3)


def test_span_covers_padding_and_is_clipped_to_the_clip() -> None:
    scores = np.linspace(0, 5, 200)
    t = build_timeline(scores, 50, 60, 10.0, seconds(10.0), pad_s=3.0)
    assert t is not None and t["t0"] == 2.0 and t["step"] == 0.1
    assert t["scores"] == [round(float(v), 3) for v in scores[20:91]]
    early = build_timeline(scores, 5, 10, 10.0, seconds(10.0), pad_s=3.0)
    assert early["t0"] == 0.0 and len(early["scores"]) == 41  # frames 0..40
    late = build_timeline(scores, 190, 199, 10.0, seconds(10.0), pad_s=3.0)
    assert len(late["scores"]) == 40  # frames 160..199


def test_long_spans_are_binned_keeping_the_peak() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(0, 0.3, 10_000)
    scores[4321] = 9.5
    t = build_timeline(scores, 100, 9_800, 25.0, seconds(25.0), max_points=300)
    assert len(t["scores"]) <= 300
    assert max(t["scores"]) == 9.5
    assert t["step"] > 1 / 25.0


def test_live_history_marks_dropped_frames_and_fits_the_schema() -> None:
    history = ScoreHistory(fps=5.0, pad_s=1.0)
    for seq in range(40):
        if seq not in (21, 22):  # dropped while analysis was behind
            history.append(seq, f"2026-11-25T10:00:{seq // 5:02d}.{seq % 5 * 200:03d}Z", seq / 10)
    t = history.timeline(20, 30)
    assert t["t0"] == "2026-11-25T10:00:03.000Z"  # 5 frames (1 s) before frame 20
    assert len(t["scores"]) == 21 and t["scores"][2] == 1.7 and t["scores"][6:8] == [None, None]
    record = {
        "schema_version": 1,
        "type": "end",
        "id": "e",
        "camera": "cam1",
        "source": "cam1",
        "start_frame": 20,
        "end_frame": 30,
        "start_time": "2026-11-25T10:00:04.000Z",
        "end_time": "2026-11-25T10:00:06.000Z",
        "peak_frame": 30,
        "peak_score": 3.0,
        "peak_cell": 0,
        "threshold": 1.5,
        "model": "m@1",
        "box": None,
        "thumbnail": None,
        "timeline": t,
    }
    validate_record(record)
    history.append(0, "2026-11-25T10:01:00.000Z", 0.1)  # the camera's count restarted
    assert history.timeline(20, 30) is None
