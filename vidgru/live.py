"""Live scoring: frames of many cameras -> one CNN batch -> per-camera GRU state -> events as they happen.

Stages, in order:

1. :class:`FramePrep` (beside each camera's reader) turns a sampled frame into a :class:`LiveFrame`:
   motion statistics from the previous sampled frame, the CNN input on every ``interval + 1``-th frame,
   and a small preview for thumbnails. After a reconnect or dropped frames the flow restarts: flow
   across a gap would read as a speed-up.
2. :class:`WatchSession` batches the CNN inputs of all cameras into one call (as DeepStream's stream
   muxer does), then hands each camera its frames in order.
3. :class:`CameraScorer` keeps one camera's GRU :class:`~vidgru.temporal.StreamState`, applies its
   region-of-interest mask to the cell logits, calibrates, and runs an :class:`~vidgru.events.EventDetector`
   whose clock is the frame's capture time in ISO-8601 UTC. Records go out on ``start`` and ``end``.

Every record carries ``captured`` (capture time of the frame that caused it) and ``emitted`` (when it
was handed to the sinks), so capture-to-alert latency can be measured from the records alone.

Example::

    session = WatchSession({"cam1": CameraScorer("cam1", model, events_cfg, fps=10)}, extract, [sink])
    session.process({"cam1": [prep(frame) for frame in frames]})
    session.close()
"""

from __future__ import annotations

import csv
import datetime as dt
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vidgru import telemetry
from vidgru.batches import FrameBatch
from vidgru.behaviour import BehaviourState, frame_features, region_cell, step_stride
from vidgru.config import BackboneConfig, EventsConfig, MotionConfig
from vidgru.events import Event, EventDetector, camera_status_record
from vidgru.motion import MotionAnalyzer
from vidgru.occupancy import SceneBackground
from vidgru.outputs import cell_box, save_thumbnail, track_box
from vidgru.reasons import window_reason
from vidgru.sinks import Sink
from vidgru.streams import CapturedFrame, StatusChange
from vidgru.tampering import TamperChange, TamperDetector, tamper_record
from vidgru.temporal import StreamState
from vidgru.timeline import ScoreHistory
from vidgru.track_model import TrackScorer
from vidgru.tracks import box_cells, detect
from vidgru.training import TrainedModel

PREVIEW_WIDTH = 640  # thumbnails are drawn on frames at most this wide


def iso_utc(t: float) -> str:
    """Seconds since the epoch -> ISO-8601 UTC with milliseconds, e.g. 2026-11-25T10:58:04.123Z."""
    return (
        dt.datetime.fromtimestamp(t, dt.timezone.utc)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


@dataclass
class LiveFrame:
    camera: str
    seq: int
    captured: float
    restart: bool  # flow and GRU history start afresh here
    motion: np.ndarray  # (cells, N_MOTION)
    cnn_input: np.ndarray | None  # (h, w, 3) RGB at features.input_size, on the frames the CNN runs on
    preview: np.ndarray  # BGR, at most PREVIEW_WIDTH wide
    shape: tuple[int, int]  # the stream's frame size, (height, width)
    occupancy: np.ndarray | None = None  # (cells,), when the model has a region GRU
    # the blobs to track (vidgru.tracks.detect), likewise; None also on frames the background does not look at
    detections: np.ndarray | None = None
    box: np.ndarray | None = None  # set when a track gave the frame's score: its box, in fractions


class FramePrep:
    """One camera's motion analyzer and CNN cadence; runs beside its reader."""

    def __init__(
        self,
        camera: str,
        motion: MotionConfig,
        features: BackboneConfig,
        background: SceneBackground | None = None,
        occupancy: bool = True,
    ) -> None:
        """``background``: the model's empty scene, for blobs to track and (with ``occupancy``, which a
        region GRU needs: ``behaviour.reads_regions``, as :func:`vidgru.batches.frame_batches` reads it)
        each frame's cell occupancy."""
        self.camera = camera
        self.motion = MotionAnalyzer(motion)
        self.grid = motion.grid
        self.background = background
        self.occupancy = occupancy
        self.input_size = features.input_size
        self.every = features.interval + 1
        self._last_seq: int | None = None
        # Frames since the stream (re)started, as a video's index: the CNN runs, and blobs are made, on the
        # frames a video's analysis would use.
        self._since_restart = 0

    def __call__(self, frame: CapturedFrame) -> LiveFrame:
        restart = frame.restart or self._last_seq is None or frame.seq != self._last_seq + 1
        self._last_seq = frame.seq
        if restart:
            self.motion.reset()
            self._since_restart = 0
        stats = self.motion.push(frame.image)
        cnn_input = None
        if self._since_restart % self.every == 0:
            height, width = self.input_size
            small = cv2.resize(frame.image, (width, height), interpolation=cv2.INTER_AREA)
            cnn_input = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        h, w = frame.image.shape[:2]
        preview = frame.image
        if w > PREVIEW_WIDTH:
            preview = cv2.resize(
                frame.image, (PREVIEW_WIDTH, round(h * PREVIEW_WIDTH / w)), interpolation=cv2.INTER_AREA
            )
        occupancy = detections = None
        if self.background is not None:
            looks = self.background.looks_at(self._since_restart)
            differs = self.background.foreground(frame.image) if looks or self.occupancy else None
            if self.occupancy:
                occupancy = self.background.occupancy(frame.image, self.grid, differs)
            if looks:
                detections = detect(frame.image, self.background, differs)
        self._since_restart += 1
        return LiveFrame(
            self.camera,
            frame.seq,
            frame.captured,
            restart,
            stats,
            cnn_input,
            preview,
            (h, w),
            occupancy,
            detections,
        )


def roi_cells(polygons: Sequence[Sequence[Sequence[float]]] | None, grid: tuple[int, int]) -> np.ndarray:
    """``(cells,)`` bool: the grid cells at least half covered by the polygons (fractions of the frame)."""
    rows, cols = grid
    if not polygons:
        return np.ones(rows * cols, bool)
    scale = 16  # pixels per cell side when rasterising
    height, width = rows * scale, cols * scale
    mask = np.zeros((height, width), np.uint8)
    for poly in polygons:
        points = np.array([[x * width, y * height] for x, y in poly], np.float32)
        cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    coverage = mask.reshape(rows, scale, cols, scale).mean(axis=(1, 3))
    return (coverage >= 0.5).ravel()


@dataclass
class CameraCounters:
    analysed: int = 0
    latencies: list[float] = field(default_factory=list)  # capture -> score, since the last status line


class CameraScorer:
    """One camera's scoring state: GRU history, ROI mask, event detector, and the peak frame's preview."""

    def __init__(
        self,
        camera: str,
        model: TrainedModel,
        events: EventsConfig,
        fps: float,
        roi: np.ndarray | None = None,
        thumbnails: Path | None = None,
    ) -> None:
        self.camera, self.model, self.events, self.fps = camera, model, events, fps
        self.grid = model.config.motion.grid
        self.roi = roi if roi is not None else np.ones(self.grid[0] * self.grid[1], bool)
        self.thumbnails = thumbnails if events.thumbnails else None
        self.model_id = str(model.meta.get("model_id", "unknown"))
        self.state = StreamState()
        self.behaviour = BehaviourState()
        self.tracks = self._track_scorer()
        self._behaviour_run = 0  # frames in a row that the behaviour models gave the score, ...
        self._behaviour_since = -1  # ... since this frame
        self._min_run = round(model.config.behaviour.min_run_s * fps)
        # A region of the behaviour model counts when any of its cells is in the region of interest.
        (rows, cols), (r, c) = self.grid, model.config.behaviour.regions
        blocks = self.roi.reshape(r, rows // r, c, cols // c)
        self._region_roi = blocks.any(axis=(1, 3)).ravel()
        self.counters = CameraCounters()
        self.telemetry = telemetry.camera(camera)
        self.history = ScoreHistory(fps=fps)  # scores around each event, for the review page's chart
        tampering = model.config.tampering
        self.tamper = (
            TamperDetector(model.tamper, tampering, fps)
            if model.tamper is not None and tampering.enabled
            else None
        )
        # Capture times of the last minute's frames: a tampering episode starts a second before it is
        # confirmed, a behaviour's event min_run_s before.
        self._captured: dict[int, float] = {}
        self._captured_order: deque[int] = deque(maxlen=max(1, round(60 * fps)))
        self._now: tuple[int, str] = (-1, "")
        self.detector = EventDetector(
            camera, events, fps, self.model_id, clock=self._clock, confirm_s=model.config.behaviour.min_run_s
        )
        # An event starts once it has lasted min_frames (gaps included); its peak is among those frames.
        self._recent: deque[LiveFrame] = deque(maxlen=self.detector.min_frames + self.detector.gap_frames + 2)
        self._open: Event | None = None
        self._peak: LiveFrame | None = None
        self._last: LiveFrame | None = None
        self._appearance: np.ndarray | None = None

    def _clock(self, frame: int) -> str:
        seq, iso = self._now
        if frame == seq:
            return iso
        # A behaviour's event starts where it began: a frame of the last minute, or estimated from the rate.
        known = self._captured.get(frame)
        return iso_utc(known if known is not None else self._captured[seq] - (seq - frame) / self.fps)

    def score(
        self, frame: LiveFrame, appearance: np.ndarray | None
    ) -> tuple[float, int, list[dict[str, Any]]]:
        """Score one frame; ``appearance`` is None on frames that reuse the last CNN features.
        Returns the calibrated score, the cell that gave it, and the records to emit."""
        if appearance is not None:
            self._appearance = appearance
        if self._appearance is None:
            raise ValueError(f"{self.camera}: the first frame after a restart must carry CNN features")
        if frame.restart:
            self.state = StreamState()
            self.behaviour = BehaviourState()
            self.tracks = self._track_scorer()
            self.detector.forget_tracks()
            self._behaviour_run, self._behaviour_since = 0, -1
        desc = self.model.descriptors.transform(frame.motion[None], self._appearance[None])[0]
        history = self.state.history  # step() replaces it; the reason below needs this frame's window
        logits = np.where(self.roi, self.model.temporal.step(desc, self.state), -np.inf)
        cell = int(np.argmax(logits))
        score = float(self.model.calibration(np.array([logits[cell]]))[0])
        short_score, short_cell = score, cell
        from_behaviour = False
        behaviour = self._behaviour_logits(frame)
        if behaviour is not None and self.model.behaviour_calibration is not None:
            b_logits = np.where(self._region_roi, behaviour, -np.inf)
            b_cell = int(np.argmax(b_logits))
            b_score = float(self.model.behaviour_calibration(np.array([b_logits[b_cell]]))[0])
            if (
                b_score > score
                and b_score >= self.model.config.behaviour.floor
                and frame.occupancy is not None
            ):
                regions = self.model.config.behaviour.regions
                score, from_behaviour = b_score, True
                cell = region_cell(b_cell, frame.occupancy * self.roi, self.grid, regions)
        calibration = self.model.tracks_calibration
        track: int | None = None
        # A frame without detections still moves the tracker on (TrackStepper.push).
        if self.tracks is not None and calibration is not None:
            t_logit, t_box = self.tracks.push(frame.detections)
            t_score = float(calibration(np.array([t_logit], np.float32))[0])
            if t_box is not None and t_score > score and t_score >= self.model.config.behaviour.floor:
                score, from_behaviour, frame.box = t_score, True, t_box
                cell = int(box_cells(t_box[None], self.grid)[0])
                track = self.tracks.track
        # As in batch (jobs.score_clip): the behaviour models count once they have held for min_run_s.
        if from_behaviour and self._behaviour_run == 0:
            self._behaviour_since = frame.seq
        self._behaviour_run = self._behaviour_run + 1 if from_behaviour else 0
        if from_behaviour and self._behaviour_run < max(1, self._min_run):
            score, cell, from_behaviour, frame.box, track = short_score, short_cell, False, None, None
        self._now = (frame.seq, iso_utc(frame.captured))
        if len(self._captured_order) == self._captured_order.maxlen:
            self._captured.pop(self._captured_order[0], None)
        self._captured_order.append(frame.seq)
        self._captured[frame.seq] = frame.captured
        self.history.append(frame.seq, self._now[1], score)
        tampering = self._tampering(frame)
        self._recent.append(frame)
        self._last = frame
        since = self._behaviour_since if from_behaviour else None
        in_view = self.tracks.in_view if self.tracks is not None else ()
        object_of = self.tracks.object_of if self.tracks is not None else None
        changes = self.detector.update(frame.seq, score, cell, since, track, in_view, object_of)
        current = self.detector.open_event
        if current is not None and current.peak_frame == frame.seq:  # a new peak: say why, while it is here
            pad = self.model.temporal.window - 1
            window = np.concatenate(
                [history if history is not None else np.repeat(desc[None], pad, 0), desc[None]]
            )
            current.extra["reason"] = (
                "time_pattern"
                if from_behaviour
                else window_reason(self.model.temporal, window[:, cell], cell)
            )
        if self._open is not None and (self._peak is None or self._peak.seq != self._open.peak_frame):
            self._peak = self._find(self._open.peak_frame)
        records = []
        for change in changes:
            if change.type == "start":
                self._open = change.event
                self._peak = self._find(change.event.peak_frame)
            records.append(self._record(change.type, change.event, frame))
        return score, cell, records + tampering

    def _track_scorer(self) -> TrackScorer | None:
        """A fresh tracker and per-track memory: at the start and after every restart of the stream."""
        if self.model.tracks is None:
            return None
        stride = step_stride(self.fps, self.model.config.behaviour.step_s)
        return TrackScorer(self.model.tracks, stride, self.fps, self.roi, self.grid)

    def _behaviour_logits(self, frame: LiveFrame) -> np.ndarray | None:
        """The behaviour GRU steps on every ``step_s`` seconds of frames from the stream's (re)start, as
        it does from a video's first frame; frames between steps keep the last step's logits."""
        model = self.model.behaviour
        if model is None or frame.occupancy is None:
            return None
        state, cfg = self.behaviour, self.model.config.behaviour
        state.pending.append(frame_features(frame.motion, frame.occupancy, self.grid, cfg.regions))
        if len(state.pending) == step_stride(self.fps, cfg.step_s):
            state.logits = model.step(np.mean(state.pending, axis=0), state)
            state.pending.clear()
        return state.logits

    def _tampering(self, frame: LiveFrame) -> list[dict[str, Any]]:
        if self.tamper is None:
            return []
        if frame.restart:
            self.tamper.reset()  # no frame difference across a gap; open episodes stay open
        return self._tamper_records(self.tamper.push(frame.preview, frame.seq), frame.captured)

    def _tamper_records(self, changes: list[TamperChange], now: float) -> list[dict[str, Any]]:
        def clock(seq: int) -> str:
            return iso_utc(self._captured.get(seq, now))

        return [
            tamper_record(
                self.camera,
                c.episode,
                clock,
                "camera_tampering" if c.type == "start" else "camera_tampering_end",
            )
            for c in changes
        ]

    def _find(self, seq: int) -> LiveFrame | None:
        return next((f for f in self._recent if f.seq == seq), self._peak)

    def _record(self, kind: str, event: Event, cause: LiveFrame) -> dict[str, Any]:
        peak = self._peak if self._peak is not None and self._peak.seq == event.peak_frame else None
        if peak is not None:
            event.box = self._box(peak, peak.shape, event.peak_cell)
        if kind == "end":
            if peak is not None and self.thumbnails is not None:
                name = f"{self.camera}_{event.peak_frame:08d}_{event.id[:8]}.jpg"
                box = self._box(peak, peak.preview.shape, event.peak_cell)
                event.thumbnail = save_thumbnail(peak.preview, box, self.thumbnails / name)
            self._open = self._peak = None
        record = event.to_record(kind)
        record["captured"] = iso_utc(cause.captured)
        if kind == "end":
            record["timeline"] = self.history.timeline(event.start_frame, event.end_frame)
        return record

    def _box(self, frame: LiveFrame, shape: tuple[int, ...], cell: int) -> list[int]:
        """The box of what gave the frame's score: the track's, else the cell's."""
        if frame.box is not None:
            return track_box(frame.box, shape)
        return cell_box(cell, self.grid, shape)

    def close(self) -> list[dict[str, Any]]:
        """The stream stopped (offline or shutdown): end the open event, forget the GRU history."""
        self.state = StreamState()
        self.behaviour = BehaviourState()
        self.tracks = self._track_scorer()
        self._behaviour_run, self._behaviour_since = 0, -1
        self._appearance = None
        last, self._last = self._last, None
        if last is None:
            return []
        records = [self._record(c.type, c.event, last) for c in self.detector.close()]
        if self.tamper is not None:
            records += self._tamper_records(self.tamper.close(), last.captured)
            self.tamper.reset()
        self._recent.clear()  # a restarted reader numbers its frames from zero again
        self._peak = None
        return records


class LiveScoresCsv:
    """Every analysed frame: ``camera,frame,captured,scored,score`` (times in seconds since the epoch)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._fh)
        self._writer.writerow(("camera", "frame", "captured", "scored", "score"))

    def write(self, frame: LiveFrame, scored: float, score: float) -> None:
        self._writer.writerow(
            (frame.camera, frame.seq, f"{frame.captured:.3f}", f"{scored:.3f}", f"{score:.5f}")
        )

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


Extract = Callable[[FrameBatch], np.ndarray]  # CNN frames -> (B, cells, channels) appearance
Item = LiveFrame | StatusChange


class WatchSession:
    """Scores what the cameras delivered, one CNN batch for all of them, and emits records to the sinks."""

    def __init__(
        self,
        scorers: Mapping[str, CameraScorer],
        extract: Extract,
        sinks: Sequence[Sink],
        scores: LiveScoresCsv | None = None,
    ) -> None:
        self.scorers, self.extract, self.sinks, self.scores = scorers, extract, sinks, scores
        self.records = 0

    def emit(self, record: dict[str, Any]) -> None:
        record["emitted"] = iso_utc(time.time())
        for sink in self.sinks:
            sink.emit(record)
        self.records += 1

    def process(self, takes: Mapping[str, Sequence[Item]]) -> None:
        frames = [
            i
            for items in takes.values()
            for i in items
            if isinstance(i, LiveFrame) and i.cnn_input is not None
        ]
        appearance: dict[tuple[str, int], np.ndarray] = {}
        if frames:
            batch = FrameBatch(
                clip="live",
                start=0,
                fps=0.0,
                cnn_input=np.stack([f.cnn_input for f in frames]),  # type: ignore[misc]
                cnn_rows=np.arange(len(frames)),
                motion=np.stack([f.motion for f in frames]),
            )
            with telemetry.inference_timer("cnn", frames=len(frames)):
                features = self.extract(batch)
            appearance = {(f.camera, f.seq): features[i] for i, f in enumerate(frames)}
        for camera, items in takes.items():
            scorer = self.scorers[camera]
            for item in items:
                if isinstance(item, StatusChange):
                    self._status(camera, item)
                    continue
                with telemetry.inference_timer("gru", 1):
                    score, _, records = scorer.score(item, appearance.get((camera, item.seq)))
                scored = time.time()
                scorer.telemetry.analysed(captured=item.captured, scored=scored)
                scorer.counters.analysed += 1
                scorer.counters.latencies.append(scored - item.captured)
                if self.scores is not None:
                    self.scores.write(item, scored, score)
                for record in records:
                    self.emit(record)
        if self.scores is not None:
            self.scores.flush()

    def _status(self, camera: str, change: StatusChange) -> None:
        self.scorers[camera].telemetry.up(change.online)
        if not change.online:
            for record in self.scorers[camera].close():
                self.emit(record)
        self.emit(camera_status_record(camera, change.online, iso_utc(change.time), change.message))

    def finish(self, camera: str) -> None:
        """A replayed file ended: end its open event."""
        for record in self.scorers[camera].close():
            self.emit(record)

    def close(self) -> None:
        """Shutdown: end every open event."""
        for scorer in self.scorers.values():
            scorer.telemetry.up(False)
            for record in scorer.close():
                self.emit(record)
