"""Calibrated frame scores -> events, with Frigate's lifecycle: an event starts, updates and ends.

A run of frames opens when the score reaches ``threshold``, stays open while it is above
``threshold * hysteresis`` (gaps shorter than ``merge_gap_s`` are bridged), and is reported only if it
lasts ``min_duration_s``. ``end_frame`` is the last frame of the run (inclusive).

A frame may say that its cause began earlier (``since``): a behaviour is confirmed only once it has held
for ``behaviour.min_run_s``, and an event it opens starts where it began, as Frigate's loitering event
starts when the object arrived, not when the loitering timer ran out. It never reaches back into the
previous event. An event whose last active frame was such a behaviour's bridges gaps of up to
``behaviour_merge_gap_s``, not ``merge_gap_s``. Given ``confirm_s`` (``behaviour.min_run_s``), such an event
ends only ``confirm_s`` after that gap has passed: a behaviour that came back inside the gap is confirmed
that much later, and then carries the same event on (one alert for a pacer whose score dips at a turn).

A behaviour that a tracked object drove (``track``) stays one alert about that object, as Frigate keeps one
event per tracked object: past its gap, its event stays open while that track is still in view
(``tracked``), up to ``behaviour_track_hold_s`` after its last active frame, and the same track's behaviour
coming back (confirmed) carries it on. Anything else that reaches ``threshold`` meanwhile ends it and
opens its own.

Example::

    detector = EventDetector("cam1", EventsConfig(), fps=10, model="m@abc")
    for i, s in enumerate(scores):
        for change in detector.update(i, s, cell=0):
            print(change.type, change.event.id)
    detector.close()
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Container
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from vidgru.config import EventsConfig

_NAMESPACE = uuid.UUID("0f5cf4a2-7f43-4c4e-9a55-8d6b0c2f3e11")
SCHEMA_VERSION = 1


@dataclass
class Event:
    id: str
    source: str
    start_frame: int
    end_frame: int
    start_time: float | str
    end_time: float | str
    peak_frame: int
    peak_score: float
    peak_cell: int
    threshold: float
    model: str
    box: list[int] | None = None
    thumbnail: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_record(self, kind: str) -> dict[str, Any]:
        record = {"schema_version": SCHEMA_VERSION, "type": kind, "camera": self.source, **asdict(self)}
        record.update(record.pop("extra"))
        record["peak_score"] = round(self.peak_score, 4)
        return record


def camera_status_record(camera: str, online: bool, time: str, message: str = "") -> dict[str, Any]:
    """A camera going offline or coming back; ``time`` is ISO-8601 UTC. Every sink takes it like an event."""
    return {
        "schema_version": SCHEMA_VERSION,
        "type": "camera_online" if online else "camera_offline",
        "id": str(uuid.uuid4()),
        "camera": camera,
        "time": time,
        "message": message,
    }


@dataclass
class EventChange:
    type: Literal["start", "end"]
    event: Event


class EventDetector:
    """Feed it one frame at a time; it returns the event changes that frame caused."""

    def __init__(
        self,
        source: str,
        cfg: EventsConfig,
        fps: float,
        model: str,
        clock: Callable[[int], float | str] | None = None,
        confirm_s: float = 0.0,
    ) -> None:
        """``confirm_s``: how long a behaviour must hold before its frames come with a ``since``."""
        self.source, self.cfg, self.fps, self.model = source, cfg, fps, model
        self.clock = clock or (lambda frame: round(frame / fps, 3))
        self.min_frames = max(1, round(cfg.min_duration_s * fps))
        self.gap_frames = max(0, round(cfg.merge_gap_s * fps))
        self.behaviour_gap_frames = max(self.gap_frames, round(cfg.behaviour_merge_gap_s * fps))
        self.confirm_frames = max(0, round(confirm_s * fps))
        self.track_hold_frames = round(cfg.behaviour_track_hold_s * fps)
        self._track: int | None = None  # the track that drove the open event's last behaviour frame
        self._last_from_behaviour = False  # whether the open event's last active frame came with a ``since``
        self._open: Event | None = None
        self._started = False
        self._last_active = -1
        self._last_end = -1  # the last reported event's last frame: a backdated start stays after it

    @property
    def open_event(self) -> Event | None:
        """The event in progress (started or not yet long enough to start), if any."""
        return self._open

    def update(
        self,
        frame: int,
        score: float,
        cell: int,
        since: int | None = None,
        track: int | None = None,
        tracked: Container[int] = (),
        object_of: Callable[[int], int] | None = None,
    ) -> list[EventChange]:
        """``since``: the frame where this frame's cause began, if before it; an event it opens starts there.
        ``track``: the tracked object whose behaviour gave this frame's score, if one did; ``tracked``: the
        tracks in view at this frame; ``object_of``: the object a track follows as of this frame, where a
        track found to follow an older one's object takes that object's id (vidgru.tracks.SameObjects)."""
        changes: list[EventChange] = []
        cfg = self.cfg
        ev = self._open
        if self._track is not None and object_of is not None:
            self._track = object_of(self._track)
        held = self._held_by_track(frame, tracked)
        if ev is None:
            if score >= cfg.threshold:
                self._begin(frame, score, cell, since, track)
        elif score >= cfg.threshold * cfg.hysteresis and not self._waiting(frame, since, track, held):
            self._active(frame, since, track)
            ev.end_frame, ev.end_time = frame, self.clock(frame)
            if score > ev.peak_score:
                ev.peak_frame, ev.peak_score, ev.peak_cell = frame, float(score), cell
        elif frame - self._last_active > self._gap(score) and (not held or score >= cfg.threshold):
            changes += self._finish()
            if score >= cfg.threshold:  # a new cause while a behaviour's event waited for its own
                self._begin(frame, score, cell, since, track)
        if self._open is not None and not self._started and self._duration(self._open) >= self.min_frames:
            self._started = True
            changes.append(EventChange("start", self._open))
        return changes

    def _begin(self, frame: int, score: float, cell: int, since: int | None, track: int | None) -> None:
        first = frame if since is None else min(frame, max(since, self._last_end + 1))
        start = self.clock(first)
        ev_id = str(uuid.uuid5(_NAMESPACE, f"{self.source}|{start}|{frame}|{self.model}"))
        self._open = Event(
            ev_id,
            self.source,
            first,
            frame,
            start,
            self.clock(frame),
            frame,
            float(score),
            cell,
            self.cfg.threshold,
            self.model,
        )
        self._started = False
        self._active(frame, since, track)

    def _active(self, frame: int, since: int | None, track: int | None) -> None:
        """The open event's latest active frame, and whether (and which track's) behaviour it was."""
        self._last_active, self._last_from_behaviour = frame, since is not None
        self._track = track if since is not None else None

    def forget_tracks(self) -> None:
        """The tracker restarted (its ids start again): no event is held for a track any longer."""
        self._track = None

    def _held_by_track(self, frame: int, tracked: Container[int]) -> bool:
        """Whether the open event is a tracked object's behaviour, that object is still in view, and its
        last active frame is at most ``behaviour_track_hold_s`` ago."""
        return (
            self._track is not None
            and frame - self._last_active <= self.track_hold_frames
            and self._track in tracked
        )

    def _waiting(self, frame: int, since: int | None, track: int | None, held: bool) -> bool:
        """Whether a behaviour's event is past its gap, waiting to see whether a run that began inside the
        gap (or, while its track is in view, a run of that track) is confirmed, and this frame is not such
        a run."""
        if not (self.confirm_frames and self._last_from_behaviour):
            return False
        limit = self._last_active + self.behaviour_gap_frames
        if held and since is not None and track == self._track:
            return False
        return frame > limit and (since is None or since > limit)

    def _gap(self, score: float) -> int:
        """Frames without activity after which the open event ends."""
        if not self._last_from_behaviour:
            return self.gap_frames
        if score >= self.cfg.threshold:  # past the gap, only a run that began inside it carries the event on
            return self.behaviour_gap_frames
        return self.behaviour_gap_frames + self.confirm_frames

    def _duration(self, ev: Event) -> int:
        return ev.end_frame - ev.start_frame + 1

    def _finish(self) -> list[EventChange]:
        ev, started = self._open, self._started
        self._open, self._started, self._track = None, False, None
        if ev is not None and started:
            self._last_end = ev.end_frame
        return [EventChange("end", ev)] if ev is not None and started else []

    def close(self) -> list[EventChange]:
        """End of the clip or stream: close the open event, if any."""
        return self._finish()
