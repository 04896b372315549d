"""The two jobs, independent of where features are computed: fit a model on normal clips, and analyse
clips into scores and events.

Example::

    model = train_model(clips, cfg, LocalFeaturePipeline(cfg), "models/cam1")
    for result in analyze_clips(clips, model, pipeline, sinks=[JsonlSink("events.jsonl")]):
        result.events
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidgru.batches import ClipFeatures
from vidgru.config import EventsConfig, VidgruConfig
from vidgru.decode import DecodeReport, read_frames
from vidgru.events import Event, EventDetector
from vidgru.model_store import save_model
from vidgru.outputs import ScoresCsv, cell_box, save_thumbnail
from vidgru.pipeline import FeaturePipeline, FramesDone
from vidgru.scoring import frame_scores
from vidgru.sinks import Sink
from vidgru.sources import Clip
from vidgru.training import Progress, TrainedModel, fit_model


def train_model(
    clips: Sequence[Clip],
    cfg: VidgruConfig,
    pipeline: FeaturePipeline,
    out: str | Path,
    on_frames: FramesDone | None = None,
    progress: Progress | None = None,
) -> tuple[TrainedModel, list[DecodeReport]]:
    features = list(pipeline.run(clips, on_frames=on_frames))
    model = fit_model(features, cfg, pipeline.weights, progress)
    model.meta["decode_problems"] = [f.report.problem for f in features if f.report.problem]
    save_model(model, out)
    return model, [f.report for f in features]


@dataclass
class ClipResult:
    clip: Clip
    fps: float
    raw: np.ndarray  # (T,) max cell logit
    scores: np.ndarray  # (T,) calibrated
    cells: np.ndarray  # (T,) the cell that gave each frame's score
    events: list[Event]
    report: DecodeReport


def score_clip(features: ClipFeatures, model: TrainedModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    raw, cells = frame_scores(model.cell_logits(features))
    return raw, model.calibration(raw), cells


def detect_events(
    source: str, scores: np.ndarray, cells: np.ndarray, fps: float, cfg: EventsConfig, model_id: str
) -> list[Event]:
    detector = EventDetector(source, cfg, fps, model_id)
    changes = []
    for frame, (score, cell) in enumerate(zip(scores.tolist(), cells.tolist(), strict=True)):
        changes += detector.update(frame, score, cell)
    changes += detector.close()
    return [c.event for c in changes if c.type == "end"]


def analyze_clips(
    clips: Sequence[Clip],
    model: TrainedModel,
    pipeline: FeaturePipeline,
    events_cfg: EventsConfig,
    sinks: Sequence[Sink] = (),
    scores_csv: ScoresCsv | None = None,
    thumbnails: Path | None = None,
    on_frames: FramesDone | None = None,
) -> Iterator[ClipResult]:
    model_id = str(model.meta.get("model_id", "unknown"))
    grid = model.config.motion.grid
    for features in pipeline.run(clips, on_frames=on_frames):
        raw, scores, cells = score_clip(features, model)
        events = detect_events(features.clip.name, scores, cells, features.fps, events_cfg, model_id)
        peaks = read_frames(features.clip, (e.peak_frame for e in events)) if events else {}
        for event in events:
            frame = peaks.get(event.peak_frame)
            if frame is not None:
                event.box = cell_box(event.peak_cell, grid, frame.shape)
                if thumbnails is not None:
                    name = f"{features.clip.name}_{event.peak_frame:06d}_{event.id[:8]}.jpg"
                    event.thumbnail = save_thumbnail(frame, event.box, thumbnails / name)
            for sink in sinks:
                sink.emit(event.to_record("end"))
        if scores_csv is not None:
            scores_csv.write_clip(features.clip.name, features.fps, scores)
        yield ClipResult(features.clip, features.fps, raw, scores, cells, events, features.report)
