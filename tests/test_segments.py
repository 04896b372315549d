"""Segmented decoding (vidgru/segments.py) on real local Ray: a video split into segment tasks scores, and
gives events and tampering episodes, exactly as the same video decoded in one piece."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from vidgru.decode import FrameReader
from vidgru.jobs import analyze_clips
from vidgru.model_store import load_model
from vidgru.segments import plan_segments
from vidgru.sources import Clip
from vidgru.synthetic import inject_tampering
from workers.pipeline import RayFeaturePipeline

CLIP = Clip("c", Path("c.mp4"), "video")


def test_plan_segments_whole_batches_last_open_ended() -> None:
    segments = plan_segments(CLIP, 200, 40, 16)  # 40 rounds up to 48, three batches
    assert [(s.start, s.stop) for s in segments] == [(0, 48), (48, 96), (96, 144), (144, None)]
    assert [s.index for s in segments] == [0, 1, 2, 3] and segments[-1].last
    # a tail under half a segment joins the one before it
    assert [(s.start, s.stop) for s in plan_segments(CLIP, 150, 48, 16)] == [(0, 48), (48, 96), (96, None)]
    assert [(s.start, s.stop) for s in plan_segments(CLIP, 170, 48, 16)] == [
        (0, 48),
        (48, 96),
        (96, 144),
        (144, None),
    ]
    for frames, size in ((200, 0), (None, 48), (40, 48)):
        assert [(s.start, s.stop) for s in plan_segments(CLIP, frames, size, 16)] == [(0, None)]


def test_plan_segments_at_most_one_per_decoder() -> None:
    """Each segment decodes and drops the frames before it: an hour at 10 frames/s in 75 segments would
    decode the hour about 38 times over. Capped at the decoders, segments grow instead (whole batches)."""
    hour = plan_segments(CLIP, 36000, 480, 16, max_segments=2)
    assert [(s.start, s.stop) for s in hour] == [(0, 18000), (18000, None)]
    sixteen = plan_segments(CLIP, 36000, 480, 16, max_segments=16)
    assert len(sixteen) == 16 and all(s.start % 16 == 0 for s in sixteen)
    assert len(plan_segments(CLIP, 36000, 480, 16, max_segments=100)) == 75  # under the cap: unchanged
    assert [(s.start, s.stop) for s in plan_segments(CLIP, 150, 48, 16, max_segments=3)] == [
        (0, 48),
        (48, 96),
        (96, None),
    ]
    assert [(s.start, s.stop) for s in plan_segments(CLIP, 36000, 480, 16, max_segments=1)] == [(0, None)]


def _write(frames: list[np.ndarray], path: Path, fps: float) -> Path:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def frozen_intruder(clips: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The intruder clip with its picture frozen across a segment boundary (frames 40-75)."""
    reader = FrameReader(Clip("intruder", clips["intruder"], "video"))
    frames = [frame for _, frame in reader]
    out = tmp_path_factory.mktemp("frozen") / "frozen_intruder.avi"
    return _write(inject_tampering(frames, "freeze", start=40, duration=36), out, reader.fps)


def test_segmented_video_scores_as_the_whole_video(
    clips: dict[str, Path], model_dir: Path, frozen_intruder: Path, ray_local: None
) -> None:
    model = load_model(model_dir)
    cfg = model.config.model_copy(deep=True)
    cfg.events.threshold = 1.0  # the intruder's events, so that event stitching is checked too
    cfg.ray.decoders = 3
    sources = [
        Clip("intruder", clips["intruder"], "video"),
        Clip("frozen_intruder", frozen_intruder, "video"),
    ]
    pipeline = RayFeaturePipeline(cfg)

    def analyse(segment_frames: int) -> list:
        pipeline.cfg.ray.segment_frames = segment_frames
        return list(analyze_clips(sources, model, pipeline, cfg.events, tampering=cfg.tampering))

    whole = analyse(0)
    split = analyse(40)  # segments of 48 frames: 0-47, 48-95, 96-end
    assert [len(pipeline.segments(c)) for c in sources] == [3, 3]
    assert any(r.events for r in whole), "the intruder gave no event; the comparison would be weak"
    assert [len(r.tampering) for r in whole] == [0, 1]  # the freeze spans the boundary at frame 48
    for w, s in zip(whole, split, strict=True):
        assert len(w.scores) == len(s.scores) == w.report.frames == s.report.frames
        np.testing.assert_array_equal(s.raw, w.raw)
        np.testing.assert_array_equal(s.scores, w.scores)
        assert [e.to_record("end") for e in s.events] == [e.to_record("end") for e in w.events]
        assert s.tampering == w.tampering
        assert s.report.problem is None and w.report.problem is None
