"""The two jobs, independent of where features are computed: fit a model on normal clips, and analyse
clips into scores and events.

Example::

    model = train_model(clips, cfg, LocalFeaturePipeline(cfg), "models/cam1")
    for result in analyze_clips(clips, model, pipeline, sinks=[JsonlSink("events.jsonl")]):
        result.events
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vidgru import telemetry
from vidgru.batches import ClipFeatures
from vidgru.behaviour import region_cell, run_lengths
from vidgru.config import EventsConfig, TamperingConfig, VidgruConfig
from vidgru.decode import DecodeReport, FrameReader, read_frames
from vidgru.event_clips import clip_span, write_event_clips
from vidgru.events import Event, EventDetector
from vidgru.model_store import save_model
from vidgru.occupancy import fit_background
from vidgru.outputs import ScoresCsv, cell_box, save_thumbnail, track_box
from vidgru.pipeline import FeaturePipeline, FramesDone
from vidgru.reasons import peak_reason
from vidgru.scoring import frame_scores
from vidgru.sinks import Sink
from vidgru.sources import Clip
from vidgru.tampering import TamperEpisode, fit_reference, tamper_record
from vidgru.timeline import build_timeline
from vidgru.tracks import box_cells, object_in
from vidgru.training import SCORE_FRAMES, Progress, TrainedModel, fit_model


def train_model(
    clips: Sequence[Clip],
    cfg: VidgruConfig,
    pipeline: FeaturePipeline,
    out: str | Path,
    on_frames: FramesDone | None = None,
    progress: Progress | None = None,
) -> tuple[TrainedModel, list[DecodeReport]]:
    background = None
    if cfg.behaviour.enabled:
        # Fitted first, since the features of the normal clips measure occupancy against it. A pass of
        # small grey frames in this process: they decode at over 1,000 frames/s.
        background = fit_background(
            ((frame for _, frame in FrameReader(clip)) for clip in clips),
            cfg.behaviour.background_size,
            cfg.temporal.seed,
        )
    features = list(pipeline.run(clips, on_frames=on_frames, background=background))
    model = fit_model(features, cfg, pipeline.weights, progress)
    model.background = background
    model.meta["decode_problems"] = [f.report.problem for f in features if f.report.problem]
    if cfg.tampering.enabled:
        model.tamper = fit_reference(
            ((frame for _, frame in FrameReader(clip)) for clip in clips), cfg.tampering, cfg.temporal.seed
        )
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
    tampering: list[TamperEpisode] = field(default_factory=list)


@dataclass
class ClipScores:
    raw: np.ndarray  # (T,) the short-window GRU's frame score (max cell logit)
    scores: np.ndarray  # (T,) calibrated; the larger of the two models' where there is a behaviour model
    cells: np.ndarray  # (T,) the cell that gave each frame's score
    from_behaviour: np.ndarray  # (T,) bool: the behaviour model gave the frame's score
    # (T, 4) where a track gave the frame's score, its box in fractions of the picture (else NaN)
    boxes: np.ndarray | None = None
    # (T,) where the behaviour models gave the frame's score, the frame their run of it began (else -1)
    since: np.ndarray | None = None
    # (T,) where a track gave the frame's score, its id (else -1); each track's first and last frame in view
    track: np.ndarray | None = None
    in_view: dict[int, tuple[int, int]] = field(default_factory=dict)
    # (frame, track, object): from that frame on, the track follows that object's id
    joins: list[tuple[int, int, int]] = field(default_factory=list)


def score_clip(features: ClipFeatures, model: TrainedModel, stretch: int = SCORE_FRAMES) -> ClipScores:
    """Calibrated frame scores from the temporal models (short-window, per region, per track), and
    where each came from. The short-window GRU reads ``stretch`` frames' descriptors at a time."""
    raw, cells = frame_scores(model.cell_logits(features, stretch))
    scores = model.calibration(raw)
    short_scores, short_cells = scores, cells
    behaviour = model.behaviour_logits(features)
    from_behaviour = np.zeros(len(raw), bool)
    if behaviour is not None and model.behaviour_calibration is not None:
        b_raw, b_cells = frame_scores(behaviour)
        b_scores = model.behaviour_calibration(b_raw)
        from_behaviour = (b_scores > scores) & (b_scores >= model.config.behaviour.floor)
        scores = np.where(from_behaviour, b_scores, scores).astype(np.float32)
        regions, grid = model.config.behaviour.regions, model.config.motion.grid
        occupancy = features.occupancy
        assert occupancy is not None  # behaviour_logits needs it
        cells = cells.copy()
        # Only the frames the behaviour model scored get its region's fullest cell.
        for t in np.flatnonzero(from_behaviour):
            cells[t] = region_cell(int(b_cells[t]), occupancy[t], grid, regions)
    tracked = model.track_logits(features)
    boxes = track = None
    if tracked is not None and model.tracks_calibration is not None:
        t_scores = model.tracks_calibration(tracked.logits)
        from_track = (t_scores > scores) & (t_scores >= model.config.behaviour.floor)
        scores = np.where(from_track, t_scores, scores).astype(np.float32)
        from_behaviour = from_behaviour | from_track
        boxes = np.where(from_track[:, None], tracked.boxes, np.nan).astype(np.float32)
        cells = np.where(from_track, box_cells(boxes, model.config.motion.grid), cells)
        track = np.where(from_track, tracked.track, -1)
    # A behaviour takes time: the behaviour models' scores count only once they have given the frame score
    # for min_run_s without a break (causal, as watch does it frame by frame); an event they open starts
    # where that run began.
    since = sustained_since(from_behaviour, round(model.config.behaviour.min_run_s * features.fps))
    brief = from_behaviour & (since < 0)
    if brief.any():
        scores = np.where(brief, short_scores, scores).astype(np.float32)
        cells = np.where(brief, short_cells, cells)
        if boxes is not None:
            boxes[brief] = np.nan
        if track is not None:
            track = np.where(brief, -1, track)
        from_behaviour = from_behaviour & ~brief
    in_view = tracked.in_view if tracked is not None else {}
    joins = tracked.joins if tracked is not None else []
    return ClipScores(raw, scores, cells, from_behaviour, boxes, since, track, in_view, joins)


def sustained_since(mask: np.ndarray, frames: int) -> np.ndarray:
    """Where ``mask`` has held for at least ``frames`` frames in a row (counting the frame itself): the
    frame that run began at; -1 elsewhere. Causal: a frame's answer depends on no later frame."""
    runs = run_lengths(mask)
    return np.where(runs >= max(1, frames), np.arange(len(runs)) - runs + 1, -1)


def detector_clock(fps: float) -> Callable[[int], float]:
    """Batch analysis's clock: a frame's time in seconds from the start of the video, as events carry it."""
    return lambda frame: round(frame / fps, 3)


class _InView:
    """The tracks in view at ``frame``, from each track's first and last frame in view, and the object each
    track follows as of ``frame``, from the joins (frame, track, object) that :class:`TrackScorer` makes live."""

    def __init__(
        self, spans: Mapping[int, tuple[int, int]], joins: Sequence[tuple[int, int, int]] = ()
    ) -> None:
        self.spans, self.frame = spans, 0
        self._joins = sorted(joins)
        self._applied = 0
        self._parent: dict[int, int] = {}

    def __contains__(self, track: object) -> bool:
        span = self.spans.get(track) if isinstance(track, int) else None
        return span is not None and span[0] <= self.frame <= span[1]

    def object_of(self, track: int) -> int:
        while self._applied < len(self._joins) and self._joins[self._applied][0] <= self.frame:
            _, joined, oldest = self._joins[self._applied]
            self._parent[joined] = oldest
            self._applied += 1
        return object_in(self._parent, track)


def detect_events(
    source: str,
    scores: np.ndarray,
    cells: np.ndarray,
    fps: float,
    cfg: EventsConfig,
    model_id: str,
    since: np.ndarray | None = None,
    confirm_s: float = 0.0,
    track: np.ndarray | None = None,
    in_view: Mapping[int, tuple[int, int]] | None = None,
    joins: Sequence[tuple[int, int, int]] = (),
) -> list[Event]:
    """A clip's events from its frame scores; ``since`` (-1 where none): each frame's cause began there,
    once it had held ``confirm_s``; ``track`` (-1 where none): the object whose track's behaviour gave the
    frame's score; ``in_view``: each track's first and last frame in view; ``joins``: (frame, track, object),
    from that frame on the track follows that object (:class:`vidgru.events.EventDetector`)."""
    detector = EventDetector(source, cfg, fps, model_id, confirm_s=confirm_s)
    changes = []
    began = since.tolist() if since is not None else [-1] * len(scores)
    by = track.tolist() if track is not None else [-1] * len(scores)
    tracked = _InView(in_view or {}, joins)
    for frame, (score, cell, first, k) in enumerate(
        zip(scores.tolist(), cells.tolist(), began, by, strict=True)
    ):
        tracked.frame = frame  # the detector reads it within update() only
        changes += detector.update(
            frame,
            score,
            cell,
            first if first >= 0 else None,
            k if k >= 0 else None,
            tracked,
            tracked.object_of,
        )
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
    tampering: TamperingConfig | None = None,
    frame_counts: Sequence[int | None] | None = None,
) -> Iterator[ClipResult]:
    """Each clip's result once its events went to ``sinks`` and its scores to ``scores_csv`` (flushed), in
    the order of ``clips``. ``frame_counts``: the clips' frame counts, when already probed."""
    tampering_on = (tampering or model.config.tampering).enabled
    tamper = model.tamper if tampering_on else None
    background = model.background if model.behaviour is not None or model.tracks is not None else None
    runs = pipeline.run(clips, on_frames=on_frames, tamper=tamper, frames=frame_counts, background=background)

    def scored(features: ClipFeatures) -> ClipScores:
        with telemetry.inference_timer("gru", features.n_frames):
            return score_clip(features, model)

    # A clip is scored in a thread while the pipeline's loop (which hands decoded batches to the CNN
    # actors) waits for the next one: scoring a clip with tracks takes long enough (DeepSORT, in Python)
    # that the actors would otherwise sit idle through it. Results still come out in the clips' order.
    with ThreadPoolExecutor(1, thread_name_prefix="vidgru-score") as pool:
        queue: deque[tuple[ClipFeatures, Future[ClipScores]]] = deque()
        for features in runs:
            telemetry.frames_decoded(features.clip.name, features.n_frames)
            queue.append((features, pool.submit(scored, features)))
            if len(queue) > 1:
                yield _finish_clip(*queue.popleft(), model, events_cfg, sinks, scores_csv, thumbnails)
        while queue:
            yield _finish_clip(*queue.popleft(), model, events_cfg, sinks, scores_csv, thumbnails)


def _finish_clip(
    features: ClipFeatures,
    scoring: Future[ClipScores],
    model: TrainedModel,
    events_cfg: EventsConfig,
    sinks: Sequence[Sink],
    scores_csv: ScoresCsv | None,
    thumbnails: Path | None,
) -> ClipResult:
    """A scored clip's events, thumbnails and scores, sent to ``sinks`` and ``scores_csv``."""
    model_id = str(model.meta.get("model_id", "unknown"))
    grid = model.config.motion.grid
    name, frames = features.clip.name, features.n_frames
    scored = scoring.result()
    raw, scores, cells = scored.raw, scored.scores, scored.cells
    telemetry.frames_analysed(name, frames)
    events = detect_events(
        features.clip.name,
        scores,
        cells,
        features.fps,
        events_cfg,
        model_id,
        scored.since,
        model.config.behaviour.min_run_s,
        scored.track,
        scored.in_view,
        scored.joins,
    )
    peaks = read_frames(features.clip, (e.peak_frame for e in events)) if events else {}
    stems = {e.id: f"{features.clip.name}_{e.peak_frame:06d}_{e.id[:8]}" for e in events}
    clips_written: dict[str, str] = {}
    if thumbnails is not None and events_cfg.clip_seconds > 0:
        spans = {
            e.id: clip_span(e.start_frame, e.end_frame, features.fps, events_cfg.clip_seconds) for e in events
        }
        out = {e.id: thumbnails / f"{stems[e.id]}.mp4" for e in events}
        clips_written = write_event_clips(features.clip, features.fps, spans, out)
    for event in events:
        event.extra["reason"] = (
            "time_pattern"
            if scored.from_behaviour[event.peak_frame]
            else peak_reason(model.temporal, model.descriptors, features, event.peak_frame, event.peak_cell)
        )
        frame = peaks.get(event.peak_frame)
        if frame is not None:
            event.box = cell_box(event.peak_cell, grid, frame.shape)
            if scored.boxes is not None and not np.isnan(scored.boxes[event.peak_frame]).any():
                event.box = track_box(scored.boxes[event.peak_frame], frame.shape)
            if thumbnails is not None and events_cfg.thumbnails:
                event.thumbnail = save_thumbnail(frame, event.box, thumbnails / f"{stems[event.id]}.jpg")
        if event.id in clips_written:
            event.extra["clip"] = clips_written[event.id]
        event.extra["timeline"] = build_timeline(
            scores, event.start_frame, event.end_frame, features.fps, detector_clock(features.fps)
        )
        for sink in sinks:
            sink.emit(event.to_record("end"))
    # A recording's tampering is reported once per episode, when it is known to have ended.
    tampering = [change.episode for change in features.tamper if change.type == "end"]
    for episode in tampering:
        record = tamper_record(name, episode, detector_clock(features.fps))
        for sink in sinks:
            sink.emit(record)
    if scores_csv is not None:
        scores_csv.write_clip(features.clip.name, features.fps, scores)
    return ClipResult(features.clip, features.fps, raw, scores, cells, events, features.report, tampering)
